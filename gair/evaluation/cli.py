"""`gair eval --checkpoint RUN [--world DIR] [--json] [--n-land N] [--boot B] [--seed S]
[--stages STAGE,...]`."""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="probes, retrieval and geolocation on held-out blocks vs baselines (95%% CIs)",
    )
    p.add_argument("--checkpoint", required=True, help="run dir")
    p.add_argument("--world", default="data/world")
    p.add_argument(
        "--n-land", type=int, default=16000, help="random land points drawn (all splits)"
    )
    p.add_argument(
        "--n-train", type=int, default=6000, help="training points for the probes (heads: all)"
    )
    p.add_argument("--boot", type=int, default=1000, help="bootstrap draws over test blocks")
    p.add_argument("--seed", type=int, default=0, help="seed of the points, probes and draws")
    p.add_argument("--no-geolocation", action="store_true", help="skip the geolocation rows")
    p.add_argument(
        "--geo-queries", type=int, default=1500, help="street-view places per split (geolocation)"
    )
    p.add_argument(
        "--geo-gallery", type=int, default=30000, help="training places in the geolocation gallery"
    )
    p.add_argument(
        "--stages",
        default=None,
        help="comma-separated stages to (re)compute, keeping the others from the run's eval.json "
        "(same checkpoint, world and points): probes (with the heads), retrieval, "
        "nearest-street-view, geolocation; default: all",
    )
    p.add_argument(
        "--no-heads", action="store_true", help="do not save prediction heads into the run dir"
    )
    p.add_argument(
        "--json", action="store_true", help="print the tidy JSON instead of the markdown tables"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from gair.evaluation.run import STAGES, evaluate, markdown_table
    from gair.world import World

    if not Path(args.checkpoint).is_dir():
        raise FileNotFoundError(f"checkpoint run dir {args.checkpoint} does not exist")
    stages = STAGES
    if args.stages is not None:
        stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
        bad = [s for s in stages if s not in STAGES]
        if bad or not stages:
            raise ValueError(f"--stages: expected some of {','.join(STAGES)}, got {args.stages!r}")
    result = evaluate(
        args.checkpoint,
        World.open(args.world),
        n_land=args.n_land,
        n_train=args.n_train,
        n_boot=args.boot,
        seed=args.seed,
        geolocation=not args.no_geolocation,
        geo_queries=args.geo_queries,
        geo_gallery=args.geo_gallery,
        save_heads=not args.no_heads,
        stages=stages,
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(markdown_table(result))
        print(f"(eval.json written to {Path(args.checkpoint) / 'eval.json'})")
    return 0
