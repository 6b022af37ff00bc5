"""Portable vectors: one table of a built index (cells or street views) as ONE GeoParquet file
with its embeddings in a fixed-size vector column, to take to DuckDB, GeoPandas, Arrow, etc.

    gair index export --index data/index --out cells.parquet [--vectors int8|float16|float32]

The file holds every column of the table (ids, lat, lon, labels, predictions), `geometry`
(EPSG:4326: the point, or for cells the H3 hexagon), `embedding` as Arrow
FixedSizeList<int8|float16|float32>[E] (and for cells optionally `location_embedding`, the
location-encoder vectors, same dtype), GeoParquet `geo` metadata and a file-level key `gair`
(JSON, `read_metadata`): format, version, checkpoint_hash, dim, table, vectors {dtype,
quantisation, scale, unit_norm, metric}, source, grid, index_manifest_sha256.

Vectors are the index's L2-normalised float32 embeddings [N, E]:
- int8: symmetric, `round(v * 127)` clipped to [-127, 127] (`quantize_int8`); cosine ~=
  dot(a, b) / 127^2 between codes, dot(q, b) / 127 for a float unit query q. 1 byte per
  dimension in memory; on disk the Parquet INT8 is dictionary-coded and zstd-compressed
  (~0.73 byte per dimension on the demo index). Cosine error up to ~0.01: recall@10 against
  float32 is 0.76-0.85 on the demo index (near-tied neighbours; docs/EXPORT.md).
- float16: IEEE half (cosine = dot(a, b), error <= 1e-4 on the demo index, recall@10 >= 0.98);
  2 bytes per dimension.
- float32: the index's vectors unchanged; 4 bytes per dimension.

DuckDB (>= 1.3; tested with 2.0.1) reads the vector column as a LIST (`TINYINT[]`,
`FLOAT[]`; float16 is widened to FLOAT: Parquet FLOAT16 read support came in duckdb#16395,
older DuckDB may not read a float16 file), not as a fixed-size ARRAY:
`list_dot_product(embedding::FLOAT[], q::FLOAT[])` works on it, array functions need
`embedding::FLOAT[E]`.

The file is written to a temp path beside `out` and renamed when complete (`gair.atomic`):
a failed or killed export leaves no file (and an existing `out` untouched).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from gair.atomic import atomic_path

TABLES = {"cells": "cell_id", "streetviews": "sv_id"}  # table -> id column
DTYPES = ("int8", "float16", "float32")
GEOMETRIES = ("point", "h3")
SUFFIXES = (".parquet", ".geoparquet")
INT8_SCALE = 127
FORMAT, VERSION = "gair-embeddings", 1
METADATA_KEY = b"gair"
ROW_GROUP = 16384  # rows per Parquet row group (~4 MB of int8 vectors at E=256)
UNIT_TOLERANCE = 1e-3  # | |v| - 1 | allowed in the index's vectors
ZSTD_LEVEL = 3


def quantize_int8(unit_vectors: np.ndarray) -> np.ndarray:
    """Symmetric int8 codes of unit vectors: round(v * 127), clipped to [-127, 127].

    Args:
        unit_vectors: float [N, E] (or [E]), L2-normalised, so every component is in [-1, 1].
    Returns:
        int8 of the same shape; `dequantize` maps it back (error <= 0.5 / 127 per component).
    """
    v = np.asarray(unit_vectors, dtype=np.float32)
    return np.clip(np.rint(v * INT8_SCALE), -INT8_SCALE, INT8_SCALE).astype(np.int8)


def dequantize(codes: np.ndarray, scale: float = INT8_SCALE) -> np.ndarray:
    """float32 vectors [N, E] from int8 codes [N, E]: codes / scale (near unit norm, not exactly;
    renormalise when exact cosines matter)."""
    return np.asarray(codes, dtype=np.float32) / np.float32(scale)


# -- geometry -------------------------------------------------------------------------------------
def _wrap(d: np.ndarray) -> np.ndarray:
    """Longitude differences into [-180, 180)."""
    return (np.asarray(d) + 180.0) % 360.0 - 180.0


def _polar_cap(lng: np.ndarray, lat: np.ndarray, winding: float):
    """The polygon of a cell around a pole, given its boundary with unwrapped longitudes that
    wind once (+-360 degrees) around it: the ring cut at +-180 and closed along the pole."""
    from shapely.geometry import Polygon

    pole = 90.0 if lat.mean() > 0 else -90.0
    if winding < 0:  # walk east
        lng, lat = lng[::-1], lat[::-1]
    lng = lng - 360.0 * np.floor((lng[0] + 180.0) / 360.0)  # start in [-180, 180)
    lng = np.append(lng, lng[0] + 360.0)  # close the ring one turn later
    lat = np.append(lat, lat[0])
    i = int(np.searchsorted(lng, 180.0, side="right"))  # first vertex east of 180
    t = (180.0 - lng[i - 1]) / (lng[i] - lng[i - 1])
    lat_cut = float(lat[i - 1] + t * (lat[i] - lat[i - 1]))
    ring = (
        [(-180.0, lat_cut)]
        + list(zip(lng[i:-1] - 360.0, lat[i:-1]))  # east of 180, moved to the west end
        + list(zip(lng[:i], lat[:i]))
        + [(180.0, lat_cut), (180.0, pole), (-180.0, pole)]
    )
    return Polygon(ring)


def _wrapped_polygon(lng: np.ndarray, lat: np.ndarray):
    """A cell whose boundary spans more than 180 degrees of longitude: a polar cap, or a cell
    across the antimeridian split at +-180 into a MultiPolygon (as RFC 7946 asks)."""
    from shapely.affinity import translate
    from shapely.geometry import MultiPolygon, Polygon, box

    unwrapped = lng[0] + np.concatenate([[0.0], np.cumsum(_wrap(np.diff(lng)))])
    winding = unwrapped[-1] + _wrap(lng[0] - lng[-1]) - unwrapped[0]
    if abs(winding) > 180.0:
        return _polar_cap(unwrapped, lat, winding)
    unwrapped = unwrapped - 360.0 * np.floor((unwrapped.min() + 180.0) / 360.0)
    poly = Polygon(zip(unwrapped, lat))
    west = poly.intersection(box(-180.0, -90.0, 180.0, 90.0))
    east = translate(poly.intersection(box(180.0, -90.0, 540.0, 90.0)), xoff=-360.0)
    parts = [g for part in (west, east) for g in getattr(part, "geoms", [part])]
    return MultiPolygon([g for g in parts if g.geom_type == "Polygon" and not g.is_empty])


def cell_polygons(cell_ids, lat, lon) -> np.ndarray:
    """Shapely geometries [N] (lon, lat degrees) of H3 cells from `h3.cell_to_boundary`.

    Ordinary cells are Polygons. A cell across the antimeridian is split into a MultiPolygon at
    +-180 (never a polygon spanning the globe); a cell around a pole is a Polygon reaching
    +-90 between longitudes -180 and 180. An id that is not an H3 cell gets its Point
    (`lat`, `lon` [N] degrees).
    """
    import h3
    import shapely
    from shapely.geometry import Point

    out = np.empty(len(cell_ids), dtype=object)
    by_size: dict[int, tuple[list[int], list]] = {}
    for i, (cell, la, lo) in enumerate(zip(cell_ids, lat, lon)):
        if not isinstance(cell, str) or not h3.is_valid_cell(cell):
            out[i] = Point(float(lo), float(la))
            continue
        ring = np.asarray(h3.cell_to_boundary(cell), dtype=np.float64)[:, ::-1]  # (lng, lat)
        if np.ptp(ring[:, 0]) > 180.0:
            out[i] = _wrapped_polygon(ring[:, 0], ring[:, 1])
            continue
        rows, rings = by_size.setdefault(len(ring), ([], []))
        rows.append(i)
        rings.append(ring)
    for rows, rings in by_size.values():  # vectorised: one call per vertex count
        out[np.asarray(rows)] = shapely.polygons(np.stack(rings))
    return out


# -- export ---------------------------------------------------------------------------------------
def _vector_type(dtype: str, dim: int):
    import pyarrow as pa

    return pa.list_(
        {"int8": pa.int8(), "float16": pa.float16(), "float32": pa.float32()}[dtype], dim
    )


def _encode(vecs: np.ndarray, dtype: str):
    """Arrow FixedSizeList [n] of vectors [n, E] in `dtype`."""
    import pyarrow as pa

    if dtype == "int8":
        flat = quantize_int8(vecs)
    else:
        flat = np.asarray(vecs, dtype=np.float32).astype(dtype)
    n, dim = vecs.shape
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(n * dim)), dim)


def vector_metadata(dtype: str) -> dict:
    """The `vectors` entry of the file metadata for `dtype`."""
    if dtype == "int8":
        return {
            "dtype": "int8",
            "quantisation": "int8 symmetric: round(unit vector * 127)",
            "scale": INT8_SCALE,
            "unit_norm": True,
            "metric": "cosine = dot(a, b) / scale^2 (int8) or dot(q, b) / scale for a float "
            "unit query q",
        }
    return {
        "dtype": dtype,
        "quantisation": "none" if dtype == "float32" else "float16 cast (IEEE 754 half)",
        "scale": 1,
        "unit_norm": True,
        "metric": "cosine = dot(a, b)",
    }


def _source_record(manifest: dict) -> dict | None:
    """The manifest's RS source without machine-local paths (a demo world: its fingerprint)."""
    source = manifest.get("source")
    if source is None and manifest.get("world"):
        return {"kind": "world", "fingerprint": manifest["world"].get("fingerprint")}
    if source is None:
        return None
    return {k: v for k, v in source.items() if k not in ("path", "path_absolute")}


def _check_args(table: str, vectors: str, geometry: str, location: bool, out: Path) -> None:
    if table not in TABLES:
        raise ValueError(f"table must be one of {', '.join(TABLES)}, got {table!r}")
    if vectors not in DTYPES:
        raise ValueError(f"vectors must be one of {', '.join(DTYPES)}, got {vectors!r}")
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {geometry!r}")
    if table != "cells" and geometry == "h3":
        raise ValueError(f"geometry 'h3' is for cells only; {table} are points")
    if table != "cells" and location:
        raise ValueError(f"location embeddings exist for cells only, not {table}")
    if out.suffix.lower() not in SUFFIXES:
        raise ValueError(f"output {out} must end in .parquet or .geoparquet")
    if out.is_dir():
        raise IsADirectoryError(f"output {out} is a directory; give a file path")


def _read_table(index_dir: Path, manifest: dict, table: str, names: list[str]):
    """The table's attribute frame and memory-mapped vectors, checked against the manifest
    (sizes, row counts, id order, dimension): a damaged index is refused, not exported."""
    import pandas as pd
    import pyarrow.parquet as pq

    from index import integrity

    integrity.check_sizes(index_dir, manifest)
    frame = pq.read_table(index_dir / f"{table}.parquet").to_pandas()
    frame = pd.DataFrame(frame.drop(columns=["geometry"], errors="ignore"))
    want = int(manifest[table]["count"])
    id_col = TABLES[table]
    if len(frame) != want or id_col not in frame:
        raise integrity.IndexDamagedError(
            f"index {index_dir} is damaged: {table}.parquet has {len(frame):,} rows "
            f"(the build wrote {want:,}) or lacks {id_col!r}; rebuild it with `gair index build`"
        )
    if integrity.ids_sha256(frame[id_col]) != manifest[table]["ids_sha256"]:
        raise integrity.IndexDamagedError(
            f"index {index_dir} is damaged: the rows of {table}.parquet are not in the order "
            "the build wrote them; rebuild it with `gair index build`"
        )
    arrays = {}
    for column, name in zip(("embedding", "location_embedding"), names):
        vecs = np.load(index_dir / name, mmap_mode="r")
        if vecs.ndim != 2 or vecs.shape != (want, int(manifest["dim"])):
            raise integrity.IndexDamagedError(
                f"index {index_dir} is damaged: {name} holds {tuple(vecs.shape)} vectors, "
                f"expected ({want}, {manifest['dim']})"
            )
        if column in frame:
            raise ValueError(f"{table}.parquet already has a column {column!r}")
        arrays[column] = vecs
    return frame, arrays


def _geo_table(frame, geometry: str):
    """Arrow table of `frame` + geometry with GeoParquet `geo` metadata, written by GeoPandas
    (valid GeoParquet, CRS EPSG:4326) and read back."""
    import io

    import geopandas as gpd
    import pyarrow.parquet as pq

    if geometry == "h3":
        geoms = cell_polygons(frame["cell_id"].to_numpy(), frame["lat"], frame["lon"])
    else:
        geoms = gpd.points_from_xy(frame["lon"], frame["lat"])
    gdf = gpd.GeoDataFrame(frame, geometry=geoms, crs="EPSG:4326")
    buf = io.BytesIO()
    gdf.to_parquet(buf, index=False)
    return pq.read_table(io.BytesIO(buf.getvalue()))


def export_geoparquet(
    index_dir: str | os.PathLike,
    out: str | os.PathLike,
    table: str = "cells",
    vectors: str = "int8",
    geometry: str = "point",
    location: bool = False,
) -> dict:
    """Write one table of the index at `index_dir` as a GeoParquet file `out` with its vectors.

    Args:
        table: "cells" or "streetviews".
        vectors: "int8" (symmetric, scale 127), "float16" or "float32".
        geometry: "point" (lat/lon) or, for cells, "h3" (the cell's hexagon; see
            `cell_polygons` for the antimeridian and the poles).
        location: also write `location_embedding` (cells only), same dtype.
    Returns:
        Summary: out, table, rows, dim, dtype, bytes (file size), bytes_per_vector (file
        size / rows), vector_bytes_per_vector (compressed vector column(s) / rows), seconds,
        metadata (the `gair` key).
    Raises:
        ValueError for bad arguments or a damaged index, FileNotFoundError for a missing one.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from index.search import read_manifest

    started = time.perf_counter()
    index_dir, out = Path(index_dir), Path(out)
    _check_args(table, vectors, geometry, location, out)
    manifest = read_manifest(index_dir)
    names = [f"{table}.npy"] + (["cells_location.npy"] if location else [])
    frame, arrays = _read_table(index_dir, manifest, table, names)
    dim, n = int(manifest["dim"]), len(frame)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "checkpoint_hash": manifest["checkpoint_hash"],
        "dim": dim,
        "table": table,
        "count": n,
        "columns": list(arrays),
        "geometry": geometry,
        "vectors": vector_metadata(vectors),
        "source": _source_record(manifest),
        "grid": manifest.get("grid"),
        "index_manifest_sha256": hashlib.sha256(
            (index_dir / "manifest.json").read_bytes()
        ).hexdigest(),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    base = _geo_table(frame, geometry)
    attrs = base.drop_columns(["geometry"])
    schema_meta = {k: v for k, v in (base.schema.metadata or {}).items() if k != b"pandas"}
    schema_meta[METADATA_KEY] = json.dumps(meta).encode("utf-8")
    fields = list(attrs.schema) + [pa.field(c, _vector_type(vectors, dim)) for c in arrays]
    schema = pa.schema(fields + [base.schema.field("geometry")], metadata=schema_meta)
    # int8 codes take ~80 distinct values: a dictionary halves them before zstd; floats do not
    dictionary = list(attrs.column_names) + (list(arrays) if vectors == "int8" else [])
    with atomic_path(out) as tmp:
        writer = pq.ParquetWriter(
            tmp,
            schema,
            compression="zstd",
            compression_level=ZSTD_LEVEL,
            use_dictionary=[_leaf(c) if c in arrays else c for c in dictionary],
            write_statistics=list(attrs.column_names),
        )
        try:
            for start in range(0, max(n, 1), ROW_GROUP):
                stop = min(start + ROW_GROUP, n)
                cols = list(attrs.slice(start, stop - start).columns)
                for column, vecs in arrays.items():
                    chunk = np.asarray(vecs[start:stop], dtype=np.float32)
                    norms = np.linalg.norm(chunk, axis=1)
                    if len(chunk) and np.abs(norms - 1.0).max() > UNIT_TOLERANCE:
                        raise ValueError(
                            f"{column} rows {start}-{stop} are not unit vectors (norms "
                            f"{norms.min():.4f}-{norms.max():.4f}): the export assumes an "
                            "index of L2-normalised embeddings"
                        )
                    cols.append(_encode(chunk, vectors))
                cols.append(base.column("geometry").slice(start, stop - start))
                writer.write_table(pa.Table.from_arrays(cols, schema=schema), ROW_GROUP)
        finally:
            writer.close()
        size = tmp.stat().st_size
        vector_bytes = _column_bytes(tmp, set(arrays))
    return {
        "out": str(out),
        "table": table,
        "rows": n,
        "dim": dim,
        "dtype": vectors,
        "bytes": size,
        "bytes_per_vector": size / n if n else 0.0,
        "vector_bytes_per_vector": vector_bytes / n if n else 0.0,
        "seconds": round(time.perf_counter() - started, 3),
        "metadata": meta,
    }


def _leaf(column: str) -> str:
    """The Parquet column path of a list column's values."""
    return f"{column}.list.element"


def _column_bytes(path: Path, columns: set[str]) -> int:
    """Compressed bytes on disk of the named (top-level) columns."""
    import pyarrow.parquet as pq

    md = pq.ParquetFile(path).metadata
    total = 0
    for rg in range(md.num_row_groups):
        group = md.row_group(rg)
        for i in range(group.num_columns):
            col = group.column(i)
            if col.path_in_schema.split(".")[0] in columns:
                total += col.total_compressed_size
    return total


# -- reading back ---------------------------------------------------------------------------------
def read_metadata(path: str | os.PathLike) -> dict:
    """The `gair` metadata of an exported file (ValueError when it has none)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in meta:
        raise ValueError(f"{path} is not a GAIR embeddings export (no 'gair' metadata)")
    return json.loads(meta[METADATA_KEY])


def read_vectors(
    path: str | os.PathLike, column: str = "embedding", raw: bool = False
) -> np.ndarray:
    """The vectors [N, E] of an exported file: float32 (int8 codes divided by their scale), or
    with `raw` the stored dtype (int8 codes, float16, float32)."""
    import pyarrow.parquet as pq

    meta = read_metadata(path)
    col = pq.read_table(path, columns=[column]).column(column).combine_chunks()
    values = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), meta["dim"])
    if raw:
        return values
    return values.astype(np.float32) / np.float32(meta["vectors"]["scale"])
