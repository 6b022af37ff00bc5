"""`gair index classify`: score every cell of an index for a GeoJSON label set and write the
hits (GeoParquet or GeoJSON), with the same functions as the app's *Label & find* tab.

    gair index classify --index DIR --labels set.geojson --out hits.parquet [--threshold T | --top N]

Exit 2 with a one-line message on bad input: a missing or malformed label set, an empty one,
one with no positive, unknown cell or street-view ids, uploaded photos embedded with another
checkpoint, a bad threshold or output suffix.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

DEFAULT_INDEX = "data/index"


def register(isub) -> None:
    """Add `classify` to the `gair index` subcommands."""
    p = isub.add_parser(
        "classify",
        help="find every cell like a label set's positives (hits as GeoParquet/GeoJSON)",
    )
    p.add_argument("--index", default=DEFAULT_INDEX)
    p.add_argument("--labels", required=True, help="a GeoJSON label set (from the app or by hand)")
    p.add_argument("--out", required=True, help="hits file: .parquet (GeoParquet) or .geojson")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--threshold",
        type=float,
        help="keep cells scoring at least T (default: 0.5 for a probability; one positive "
        "alone: the 100 most similar cells)",
    )
    which.add_argument("--top", type=int, help="keep the N best cells instead")
    p.add_argument(
        "--checkpoint", help="the run dir the index was built with (default: the manifest's)"
    )
    p.add_argument("--world", help="the world dir (default: the manifest's)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run_classify)


def run_classify(args) -> int:
    from index import classify_export
    from index.classify import check_trainable, classify
    from index.labelset import embed_labelset, read_labelset

    out = Path(args.out)
    suffixes = classify_export.PARQUET_SUFFIXES + classify_export.GEOJSON_SUFFIXES
    if out.suffix.lower() not in suffixes:
        raise ValueError(f"--out must end in .parquet or .geojson, got {args.out!r}")
    if args.threshold is not None and not math.isfinite(args.threshold):
        raise ValueError(f"--threshold must be a finite number, got {args.threshold}")
    if args.top is not None and args.top < 1:
        raise ValueError(f"--top must be a positive integer, got {args.top}")
    labelset = read_labelset(args.labels)  # before the model loads: bad input fails fast
    check_trainable(labelset)
    index = _open_index(args)
    labelset = embed_labelset(index, labelset)
    result = classify(index, labelset, threshold=args.threshold, top=args.top)
    meta = {
        "labels": str(args.labels),
        "mode": result.model.mode,
        "threshold": None if args.top else result.threshold,
        "top": args.top,
        "checkpoint": str(index.manifest["checkpoint_hash"]),
    }
    classify_export.write_hits(out, result.hits, meta)
    summary = {
        "out": str(out),
        "hits": len(result.hits),
        "cells": len(index.cells),
        "positives": labelset.n_positive,
        "negatives": labelset.n_negative,
        **meta,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        how = f"top {args.top}" if args.top else f"score >= {result.threshold:.4g}"
        print(
            f"{len(result.hits):,} of {len(index.cells):,} cells ({how}, {result.model.mode}, "
            f"{labelset.n_positive} positive / {labelset.n_negative} negative) written to {out}"
        )
    return 0


def _open_index(args):
    from index.search import GridIndex

    return GridIndex.open(args.index, checkpoint=args.checkpoint, world=args.world or None)
