"""`gair index build` and `gair index query`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from index import classify_cli, export_cli  # issues 16 and 17

DEFAULT_INDEX = "data/index"
DEFAULT_WORLD = "data/world"


def register(sub) -> None:
    parser = sub.add_parser("index", help="build and query the grid index")
    isub = parser.add_subparsers(dest="index_command", metavar="ACTION", required=True)

    build = isub.add_parser(
        "build",
        help="embed a grid (global, a bbox or an area of interest) and the street-view "
        "gallery into FAISS",
    )
    build.add_argument(
        "--checkpoint", required=True, help="run dir (model.safetensors + config.json)"
    )
    build.add_argument("--grid", default="h3:4", help="grid spec, e.g. h3:4 (default) or h3:2")
    build.add_argument(
        "--land-only", action="store_true", help="only cells whose centre is on land"
    )
    build.add_argument("--bbox", help="W,S,E,N degrees (W > E crosses the antimeridian)")
    build.add_argument(
        "--aoi",
        metavar="GEOJSON|W,S,E,N",
        help="area of interest: a GeoJSON file (Polygon/MultiPolygon geometry, Feature or "
        "FeatureCollection) or a bbox W,S,E,N; its cells are filled from the area (resolutions "
        "up to h3:10), never listed over the globe; or `footprint`: the union of the RS "
        "source's imagery footprints (the default with --source)",
    )
    build.add_argument("--engine", default="local", choices=["local", "ray"])
    build.add_argument("--workers", type=int, default=2, help="Ray actors (engine ray)")
    build.add_argument("--world", default=DEFAULT_WORLD, help="the demo world (without --source)")
    build.add_argument(
        "--source",
        nargs="+",
        metavar="PATH",
        help="the RS source instead of the demo world: GeoTIFF/COG/VRT/JP2 files or folders "
        "(any CRS, one file per scene or per band), STAC Item/ItemCollection JSON, or a "
        "`gair data prepare` output dir",
    )
    build.add_argument(
        "--chip-km",
        type=float,
        help="ground size of an RS chip's side in km (default: the checkpoint's rs_chip.km)",
    )
    build.add_argument(
        "--min-coverage",
        type=float,
        default=0.9,
        help="share of a chip that must hold imagery for its cells to be indexed (default 0.9)",
    )
    build.add_argument(
        "--gallery-csv",
        help="street views: a CSV of lon,lat,path (paths relative to the CSV); default: the "
        "demo world's rendered views, or a prepared dir's photos",
    )
    build.add_argument(
        "--gallery-size",
        type=int,
        default=20000,
        help="street views in a rendered gallery (0: no gallery)",
    )
    build.add_argument(
        "--shard-size", type=int, default=4096, help="cells per resumable shard (default 4096)"
    )
    build.add_argument("--out", default=DEFAULT_INDEX)
    build.add_argument("--json", action="store_true", help="print the manifest as JSON")
    build.set_defaults(func=run_build)

    query = isub.add_parser("query", help="nearest places and street views")
    query.add_argument("--index", default=DEFAULT_INDEX)
    _add_overrides(query)
    what = query.add_mutually_exclusive_group(required=True)
    what.add_argument("--lat", type=str, help="with --lon: a point")
    what.add_argument("--sv-image", help="a street-view image file (jpg/png)")
    what.add_argument("--cell", help="a cell id of the index")
    query.add_argument("--lon", type=str)
    query.add_argument(
        "--k",
        type=int,
        default=10,
        help="neighbours to return (1 to 1000, capped at the index size)",
    )
    query.add_argument("--json", action="store_true")
    query.set_defaults(func=run_query)

    verify = isub.add_parser(
        "verify",
        help="check every file of an index against the sizes and SHA-256 it was built with",
    )
    verify.add_argument("--index", default=DEFAULT_INDEX)
    _add_overrides(verify)
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(func=run_verify)
    classify_cli.register(isub)  # `gair index classify` (issue 16, index/classify_cli.py)
    export_cli.register(isub)  # `gair index export` (issue 17, index/export_cli.py)


def _add_overrides(parser) -> None:
    """--checkpoint and --world: every command that opens an index takes them."""
    parser.add_argument(
        "--checkpoint", help="the run dir the index was built with (default: the manifest's)"
    )
    parser.add_argument(
        "--world",
        "--source",
        dest="world",
        help="the RS source: a demo world dir, rasters or prepared dir (default: the manifest's)",
    )


def run_build(args) -> int:
    from index.build import FOOTPRINT, BuildSpec, build_index
    from index.grid import check_grid_size, load_aoi, looks_like_bbox, parse_bbox, parse_grid_spec

    _, res = parse_grid_spec(args.grid)
    aoi_file = None
    if args.aoi is not None and args.bbox is not None:
        raise ValueError("give --aoi or --bbox, not both")
    if args.aoi is not None and looks_like_bbox(args.aoi):
        bbox = parse_bbox(args.aoi)
    else:
        bbox = parse_bbox(args.bbox)
        aoi_file = args.aoi
    if args.source and aoi_file is None and bbox is None:
        aoi_file = FOOTPRINT  # your own imagery: its footprint, never the globe
    if aoi_file == FOOTPRINT and not args.source:
        raise ValueError("--aoi footprint needs --source (the rasters whose footprint to fill)")
    # the area is read and the grid's size checked before the model loads
    if aoi_file != FOOTPRINT:
        check_grid_size(res, bbox, load_aoi(aoi_file) if aoi_file is not None else None)
    if not 0.0 < args.min_coverage <= 1.0:
        raise ValueError(f"--min-coverage must be in (0, 1], got {args.min_coverage}")
    if args.gallery_size < 0:
        raise ValueError(f"--gallery-size must be 0 or more, got {args.gallery_size}")
    if args.gallery_csv is not None:  # its columns are checked before the model loads
        from index.gallery import gallery_from_csv

        gallery_from_csv(args.gallery_csv, decode=False, limit=0)
    for name in ("shard_size", "workers"):
        if getattr(args, name) <= 0:
            raise ValueError(
                f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}"
            )
    if not Path(args.checkpoint).is_dir():
        raise FileNotFoundError(f"checkpoint run dir {args.checkpoint} does not exist")
    spec = BuildSpec(
        checkpoint=args.checkpoint,
        world=args.world,
        grid=args.grid,
        land_only=args.land_only,
        bbox=tuple(float(v) for v in bbox) if bbox is not None else None,
        gallery_size=args.gallery_size,
        shard_size=args.shard_size,
        engine=args.engine,
        workers=args.workers,
        aoi=aoi_file,
        source=args.source,
        chip_km=args.chip_km,
        min_coverage=args.min_coverage,
        gallery_csv=args.gallery_csv,
    )
    manifest = build_index(spec, args.out, progress=not args.json)
    if args.json:
        print(json.dumps(manifest, indent=2))
    else:
        cells = manifest["cells"]
        print(
            f"index written to {args.out}: {cells['count']} cells ({cells['factory']}, recall@10 "
            f"{cells['recall_at_10']:.3f}, {cells['recall_at_10_near_ties']:.3f} with near-ties), "
            f"{manifest['streetviews']['count']} street views, "
            f"{manifest['encoder_passes_per_point']:.3f} encoder passes per point, {manifest['build_seconds']} s"
        )
        cov = manifest.get("coverage") or {}
        if cov.get("cells_without_imagery"):
            print(
                f"left out {cov['cells_without_imagery']} of {cov['cells_listed']} cells without "
                f"imagery under them (e.g. {cov['examples_without_imagery'][:2]})"
            )
    return 0


def run_verify(args) -> int:
    """Check the checkpoint's weights, open the index (sizes, counts, id order, FAISS
    agreement) and hash every file. The world is not needed (`--world` is accepted and
    ignored, like every command that opens an index)."""
    import time

    from gair.deferred import DeferredEmbedder
    from index.search import GridIndex, read_manifest, recorded_path

    started = time.perf_counter()
    manifest = read_manifest(args.index)
    run_dir = args.checkpoint or recorded_path(args.index, manifest, "checkpoint")
    embedder = DeferredEmbedder(run_dir)  # the checkpoint's identity; the model never loads
    embedder.verify_weights()
    index = GridIndex(args.index, embedder)
    index.verify(
        progress=None if args.json else lambda name: print(f"hashing {name}", file=sys.stderr)
    )
    result = {
        "index": str(args.index),
        "ok": True,
        "files": len(index.manifest["files"]),
        "cells": index.manifest["cells"]["count"],
        "streetviews": index.manifest["streetviews"]["count"],
        "seconds": round(time.perf_counter() - started, 2),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"index {args.index} is intact: {result['files']} files match their SHA-256, "
            f"{result['cells']:,} cells, {result['streetviews']:,} street views ({result['seconds']} s)"
        )
    return 0


def _jsonable(result: dict) -> dict:
    out = {"query": result["query"], "embedding": np.asarray(result["embedding"]).round(6).tolist()}
    for key in ("cells", "streetviews"):
        out[key] = json.loads(result[key].to_json(orient="records"))
    return out


def load_image(path: str) -> np.ndarray:
    """Read an image file as uint8 RGB; clear errors for missing, non-image or huge files."""
    from gair.images import read_image

    return read_image(path)


def run_query(args) -> int:
    from gair import geo
    from index.search import MAX_K, GridIndex

    if not 1 <= args.k <= MAX_K:
        raise ValueError(f"--k must be from 1 to {MAX_K}, got {args.k}")
    if args.lat is not None and args.lon is None:
        raise ValueError("--lat needs --lon")
    if args.lon is not None and args.lat is None:
        raise ValueError("--lon needs --lat")
    if args.lat is not None:
        geo.validate_point(args.lat, args.lon)  # before the model loads
    image = load_image(args.sv_image) if args.sv_image else None
    index = GridIndex.open(args.index, checkpoint=args.checkpoint, world=args.world)
    if args.lat is not None:
        result = index.query_point(args.lat, args.lon, args.k)
    elif image is not None:
        result = index.query_image(image, args.k)
    else:
        result = index.query_cell(args.cell, args.k)
    if args.json:
        print(json.dumps(_jsonable(result)))
    else:
        q = result["query"]
        print(f"query: {q}")
        cols = ["rank", "similarity", "cell_id", "lat", "lon"] + (
            ["distance_km"] if "distance_km" in result["cells"] else []
        )
        print("nearest places:\n" + result["cells"][cols].to_string(index=False))
        sv_cols = ["rank", "similarity", "sv_id", "lat", "lon"] + (
            ["distance_km"] if "distance_km" in result["streetviews"] else []
        )
        print("nearest street views:\n" + result["streetviews"][sv_cols].to_string(index=False))
    sys.stdout.flush()
    return 0
