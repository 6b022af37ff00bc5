"""`gair data prepare`."""

from __future__ import annotations

import json
import logging
import sys

log = logging.getLogger("gair.data")


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="real data: prepare training triples")
    sub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    prep = sub.add_parser(
        "prepare",
        help="triples from a Streetscapes-style CSV, images and Sentinel-2 GeoTIFFs",
        description="Build (RS chip, street view, location) triples: CSV columns id, lat, lon "
        "and an image path relative to --images; GeoTIFFs in any CRS under --rasters. Bad rows "
        "are skipped and counted in report.json. Exit 0 (with warnings), or 2 when nothing is "
        "usable.",
    )
    prep.add_argument("--csv", required=True, help="CSV with id, lat, lon, image path")
    prep.add_argument("--images", required=True, help="folder the image paths are relative to")
    prep.add_argument("--rasters", required=True, help="folder of GeoTIFFs (searched recursively)")
    prep.add_argument("--out", required=True, help="output folder (created atomically)")
    prep.add_argument(
        "--bands",
        default=None,
        help="comma-separated band names (default: B2,B3,B4,B5,B6,B7,B8,B8A,B11,B12)",
    )
    prep.add_argument("--chip-km", type=float, default=2.0, help="chip side on the ground (2.0)")
    prep.add_argument("--chip-px", type=int, default=96, help="chip side in pixels (96)")
    prep.add_argument("--sv-px", type=int, default=224, help="street-view side in pixels (224)")
    prep.add_argument("--shard-size", type=int, default=256, help="samples per shard (256)")
    prep.add_argument(
        "--min-coverage",
        type=float,
        default=0.75,
        help="least fraction of the chip the raster must cover (0.75)",
    )
    prep.add_argument("--force", action="store_true", help="replace an existing output folder")
    prep.add_argument("--json", action="store_true", help="print the report as JSON")
    prep.set_defaults(func=_prepare)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _prepare(args) -> int:
    from gair.data.prepare import NothingUsableError, prepare

    bands = [b for b in args.bands.split(",") if b.strip()] if args.bands else None
    try:
        report = prepare(
            args.csv,
            args.images,
            args.rasters,
            args.out,
            bands=bands,
            chip_km=args.chip_km,
            chip_px=args.chip_px,
            sv_px=args.sv_px,
            shard_size=args.shard_size,
            min_coverage=args.min_coverage,
            force=args.force,
        )
    except NothingUsableError as err:
        if args.json:
            print(json.dumps({"error": str(err), "report": err.report}, indent=2))
        print(f"gair: error: {err}", file=sys.stderr)
        for reason, examples in err.report["examples"].items():
            for ex in examples[:2]:
                print(f"  {reason}: row {ex['row']} id={ex['id']}: {ex['detail']}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"prepared {report['kept']} triples of {report['rows']} rows into {args.out}"
            + (f"; skipped {report['skipped']}" if report["skipped"] else "")
        )
    return 0
