"""Demo world: build time, renderer views/s at 64 px on one core, dataset samples/s.
Writes benchmarks/results/world.json.

    python -m benchmarks.bench_world                 # builds a fresh world in a temp dir
    python -m benchmarks.bench_world --world data/world [--contact-sheet docs/img/world_contact_sheet.png]

Everything runs single-threaded (one core). Rates are given against wall time and against the
process's CPU time: on a shared machine the CPU-time rate is the one-core figure.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import write_result  # noqa: E402


def _rate(n: int, fn, repeat: int = 3) -> dict:
    """Rates of `repeat` runs of fn (n items each): the best run (least disturbed by other jobs
    on a shared machine) and the median."""
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(max(time.process_time() - c0, 1e-9))
    return {
        "n": n,
        "repeat": repeat,
        "per_s_cpu": round(n / min(cpus), 1),
        "per_s_wall": round(n / min(walls), 1),
        "per_s_cpu_median": round(n / float(np.median(cpus)), 1),
        "per_s_wall_median": round(n / float(np.median(walls)), 1),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default=None, help="use this built world (skip the build)")
    ap.add_argument("--views", type=int, default=2048)
    ap.add_argument("--contact-sheet", default=None, help="also write the contact sheet PNG here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from gair.world import World, WorldTriples, build_world

    result: dict = {"load_average_start": os.getloadavg()}
    tmp = None
    if args.world:
        world = World.open(args.world)
        result["build"] = {"reused": args.world, "build_seconds": world.manifest["build_seconds"]}
    else:
        tmp = Path(tempfile.mkdtemp(prefix="bench_world_"))
        t0 = time.perf_counter()
        build_world(tmp / "world", progress=True)
        result["build"] = {"build_seconds": round(time.perf_counter() - t0, 1)}
        world = World.open(tmp / "world")
    result["build"]["size_mb"] = round(world.manifest["size_bytes"] / 1e6, 1)
    result["build"]["streetviews"] = world.manifest["streetviews"]["count"]

    sv = world.streetviews
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(sv), args.views)
    ll = sv[["lat", "lon"]].to_numpy()[pick]
    headings = rng.uniform(0, 360, args.views)
    seeds = np.arange(args.views)
    world.render_views(ll[:64], headings[:64], seeds[:64], 64)  # warm up (noise tables)
    result["render_64px_batched"] = _rate(
        args.views, lambda: world.render_views(ll, headings, seeds, 64)
    )
    n1 = min(300, args.views)
    result["render_64px_one_by_one"] = _rate(
        n1, lambda: [world.render_view(ll[i], headings[i], int(seeds[i]), 64) for i in range(n1)]
    )
    result["chips_32px"] = _rate(
        args.views, lambda: world.chips(ll, 32, rng.uniform(-1, 1, (args.views, 2)))
    )

    ds = WorldTriples(world, "train", "tiny")
    batch, n_batches = 64, max(4, args.views // 256)
    idx = rng.permutation(len(ds))[: batch * n_batches]
    ds.__getitems__(idx[:batch].tolist())
    result["dataset_tiny_train"] = _rate(
        batch * n_batches,
        lambda: [ds.__getitems__(idx[i : i + batch].tolist()) for i in range(0, len(idx), batch)],
    )
    result["dataset_tiny_train"]["batch_size"] = batch
    result["load_average_end"] = os.getloadavg()
    result["targets"] = {"render_views_per_s_one_core": 500, "dataset_samples_per_s": 300}
    if args.contact_sheet:
        from PIL import Image

        from gair.world.sheet import contact_sheet

        Image.fromarray(contact_sheet(world)).save(args.contact_sheet)
        print(f"wrote {args.contact_sheet}")
    print(result)
    write_result("world", result)
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
