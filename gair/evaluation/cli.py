"""`gair eval --checkpoint RUN [--json] [--seeds N]`."""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("eval", help="downstream probes, retrieval and geolocalization vs baselines")
    p.add_argument("--checkpoint", required=True, help="run dir")
    p.add_argument("--world", default="data/world")
    p.add_argument(
        "--seeds", type=int, default=3, help="probe seeds (mean and spread are reported)"
    )
    p.add_argument(
        "--n-train", type=int, default=2000, help="training-region points for the probes"
    )
    p.add_argument(
        "--n-test", type=int, default=1000, help="held-out points (and retrieval candidates)"
    )
    p.add_argument("--probes", default="linear,mlp", help="comma list of linear, mlp")
    p.add_argument(
        "--no-heads", action="store_true", help="do not save prediction heads into the run dir"
    )
    p.add_argument(
        "--json", action="store_true", help="print the tidy JSON instead of the markdown table"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from gair.evaluation.run import evaluate, markdown_table
    from gair.world import World

    probes = tuple(s.strip() for s in args.probes.split(",") if s.strip())
    bad = [p for p in probes if p not in ("linear", "mlp")]
    if bad or not probes:
        raise ValueError(f"--probes must be a comma list of linear, mlp; got {args.probes!r}")
    if not Path(args.checkpoint).is_dir():
        raise FileNotFoundError(f"checkpoint run dir {args.checkpoint} does not exist")
    result = evaluate(
        args.checkpoint,
        World.open(args.world),
        n_train=args.n_train,
        n_test=args.n_test,
        seeds=args.seeds,
        probes=probes,
        save_heads=not args.no_heads,
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(markdown_table(result, probes[0]))
        print(f"(eval.json written to {Path(args.checkpoint) / 'eval.json'})")
    return 0
