"""`gair train`: registered through the "gair.commands" entry point (pyproject.toml).

gair train --config train/configs/demo.yaml [--resume [--revalidate]] [--out RUN_DIR]
           [--init RUN_DIR] [--max-steps N] [--set key=value ...] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

EPILOG = """examples:
  gair train --config train/configs/demo.yaml                 # -> checkpoints/demo/
  gair train --config train/configs/demo.yaml --resume        # continue after a kill
  gair train --config demo --resume --revalidate              # re-score a finished run
  gair train --config demo --set model.inr.mode=center-pool --out checkpoints/demo-pool
  gair train --config paper --set trainer.devices=8 --set trainer.num_nodes=4
  gair train --config real --init checkpoints/gair-official --set model=init --out runs/ft
see docs/TRAINING.md"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train GAIR from a YAML config into a run dir",
        description="Train GAIR (Lightning: DDP, bf16, resume) and write a run dir "
        "(model.safetensors + config.json + metrics.csv + last.ckpt).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", required=True, help="training YAML, or a shipped name (demo, paper, real, test)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.ckpt")
    parser.add_argument(
        "--init",
        metavar="RUN_DIR",
        help="fine-tune: start from the weights of a trained or imported run dir (the model "
        "config is the run's when the config sets `model: init` or none; else it must agree)",
    )
    parser.add_argument("--out", metavar="RUN_DIR", help="run dir (default: the config's run_dir)")
    parser.add_argument(
        "--revalidate",
        action="store_true",
        help="with --resume: validate the run's last weights again (the current metrics code) "
        "and rewrite config.json, even when training has nothing left to do",
    )
    parser.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set optimizer.base_lr=1e-3 (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from train.config import load_config

    if args.max_steps is not None and args.max_steps < 1:
        raise ValueError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.revalidate and not args.resume:
        raise ValueError("--revalidate needs --resume: it re-scores the run saved in last.ckpt")
    cfg = load_config(args.config, args.overrides, args.max_steps, init=args.init)
    from train.runner import train  # heavy imports (lightning) only once the config is valid

    # --json: stdout carries the summary alone (Lightning's progress bar writes to stdout)
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    with quiet:
        summary = train(cfg, out=args.out, resume=args.resume, revalidate=args.revalidate)
    summary.pop("module", None)
    if summary.pop("rank", 0) != 0:  # under DDP every rank runs this; rank 0 reports
        return 0
    if args.json:
        print(json.dumps(summary))
    else:
        m = summary["metrics"]
        print(
            f"trained {summary['steps_run']} steps (global step {summary['global_step']}) "
            f"into {summary['run_dir']}: R@10 {m.get('r10', float('nan')):.3f}, location median "
            f"{m.get('loc_median_km', float('nan')):.0f} km among the held-out places, "
            f"{m.get('loc_median_km_with_train', float('nan')):.0f} km with training places "
            f"(always-median baseline {m.get('baseline_median_km', float('nan')):.0f} km)"
        )
    return 0
