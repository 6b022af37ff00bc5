"""Index build throughput per engine and worker count, and whether the engines agree.

    python -m benchmarks.bench_build [--grid h3:3] [--aoi W,S,E,N] [--runs local,ray:1,ray:2]
        [--out build-NAME.json]

Each run is a fresh `gair index build --land-only` of the same grid with the demo checkpoint
and world (a subprocess, so Ray starts and stops as a user's command would), timed wall-clock;
cells/s counts grid cells only (the gallery is kept small). The vectors of every run are compared
with the first run's (max absolute difference). `--aoi` limits a fine grid to an area (h3:6 over
Europe: the per-cell cost at the global build's grain, in minutes). Writes
benchmarks/results/build.json (or `--out`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_result

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--grid", default="h3:3")
    p.add_argument("--aoi", default=None, help="W,S,E,N or a GeoJSON file (default: land)")
    p.add_argument("--runs", default="local,ray:1,ray:2")
    p.add_argument("--out", default="build", help="result name or .json path")
    p.add_argument("--checkpoint", default=str(REPO / "checkpoints/demo"))
    p.add_argument("--world", default=str(REPO / "data/world"))
    args = p.parse_args(argv)
    gair = str(Path(sys.executable).with_name("gair"))
    runs, first = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for run in args.runs.split(","):
            engine, _, workers = run.partition(":")
            out = Path(tmp) / run.replace(":", "-")
            cmd = [gair, "index", "build", "--checkpoint", args.checkpoint, "--world", args.world]
            cmd += ["--grid", args.grid, "--land-only", "--gallery-size", "100", "--json"]
            cmd += ["--engine", engine, "--workers", workers or "2", "--out", str(out)]
            cmd += [f"--aoi={args.aoi}"] if args.aoi else []
            t = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            seconds = time.perf_counter() - t
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1
            manifest = json.loads(done.stdout)
            vecs = np.load(out / "cells.npy")
            first = vecs if first is None else first
            runs.append(
                {
                    "run": run,
                    "cells": manifest["cells"]["count"],
                    "wall_s": round(seconds, 1),
                    "build_seconds": manifest["build_seconds"],
                    "cells_per_s": round(manifest["cells"]["count"] / seconds, 1),
                    "max_abs_diff_vs_first": float(np.abs(vecs - first).max()),
                }
            )
            print(json.dumps(runs[-1]), flush=True)
            shutil.rmtree(out)
    result = {"grid": args.grid, "aoi": args.aoi, "command": " ".join(sys.argv), "runs": runs}
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
