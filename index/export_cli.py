"""`gair index export`: one table of an index (cells or street views) as one GeoParquet file with
its embeddings in a fixed-size vector column (int8, float16 or float32), for DuckDB, GeoPandas,
Arrow. See index/export.py for the format and docs/EXPORT.md for sizes and recall.

    gair index export --index DIR --out FILE.parquet [--table cells|streetviews]
        [--vectors int8|float16|float32] [--geometry point|h3] [--location] [--json]

Exit 2 with a one-line message on bad input: a missing or damaged index, a bad output path,
h3 geometry or --location for street views.
"""

from __future__ import annotations

import json

DEFAULT_INDEX = "data/index"


def register(isub) -> None:
    """Add `export` to the `gair index` subcommands."""
    from index.export import DTYPES, GEOMETRIES, TABLES

    p = isub.add_parser(
        "export",
        help="write a table's vectors and columns as one GeoParquet file (int8/float16/float32)",
    )
    p.add_argument("--index", default=DEFAULT_INDEX)
    p.add_argument("--out", required=True, help="the file to write: .parquet or .geoparquet")
    p.add_argument("--table", default="cells", choices=list(TABLES))
    p.add_argument(
        "--vectors",
        default="float16",
        choices=list(DTYPES),
        help="float16 (default: recall@10 0.98-1.00 against float32 on the demo index, half "
        "the size; DuckDB >= 1.3 reads it as FLOAT), int8 (symmetric, round(v * 127), cosine "
        "~= dot / 127^2: a quarter of the size, recall@10 only 0.76-0.85, near-ties reorder) "
        "or float32 (the index's vectors unchanged)",
    )
    p.add_argument(
        "--geometry",
        default="point",
        choices=list(GEOMETRIES),
        help="point (default) or, for cells, h3: the cell hexagon (split at the antimeridian)",
    )
    p.add_argument(
        "--location",
        action="store_true",
        help="cells: also write location_embedding (the location encoder's vectors)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    from index.export import export_geoparquet

    summary = export_geoparquet(
        args.index,
        args.out,
        table=args.table,
        vectors=args.vectors,
        geometry=args.geometry,
        location=args.location,
    )
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "metadata"}))
        return 0
    cols = len(summary["metadata"]["columns"])
    print(
        f"exported {summary['rows']:,} {summary['table']} to {summary['out']}: "
        f"{summary['bytes'] / 1e6:.1f} MB on disk, {summary['bytes_per_vector']:.0f} bytes per "
        f"row, of which {summary['vector_bytes_per_vector']:.0f} bytes of {summary['dtype']} "
        f"vectors ({cols} x {summary['dim']}-d), in {summary['seconds']:.1f} s"
    )
    return 0
