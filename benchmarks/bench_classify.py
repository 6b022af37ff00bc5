"""Label & find (issue 16): the latency of one labelling iteration.

    python -m benchmarks.bench_classify [--index data/index] [--iterations 40] [--big 1000000]

One iteration is what the app does when an example is added: embed it (a cell: its stored
vector; a clicked point: the INR embedding), fit the classifier, score every cell, pick the
hits to review and draw the score heatmap (`app.logic.labelsets.add_*` + `iteration`). The
set grows from 1 positive by alternately confirming and rejecting hits (cells) and clicking
points, as a user would. Measured on the demo index (h3:4 land, 81,820 cells) and on a
synthetic index of `--big` cells made by jittering the demo index's vectors and centres.
Also timed: the learning curve (cross-validated precision) after each addition. Target:
p95 <= 300 ms per iteration on the demo index, < 1 s on 1e6 cells (2 CPU cores).
Writes benchmarks/results/classify.json.
"""

from __future__ import annotations

import os

# the app's serving configuration (Makefile `serve`, Procfile): one BLAS thread per request
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

TARGET_P95_MS = 300.0
TARGET_BIG_MS = 1000.0


def pct(values, q) -> float:
    return round(float(np.percentile(np.asarray(values, np.float64), q)), 1)


def stats(values) -> dict:
    return {"n": len(values), "p50_ms": pct(values, 50), "p95_ms": pct(values, 95),
            "max_ms": round(float(np.max(values)), 1)}  # fmt: skip


def labelling_loop(res, iterations: int, points: bool, seed: int = 0) -> dict:
    """Grow a set from one positive cell; per step add a hit (confirm / reject alternately)
    or, every third step when `points`, click a point near a positive. Times each step."""
    from app.logic import labelsets as ls_logic
    from index.labelset import LabelSet

    rng = np.random.default_rng(seed)
    cells = res.index.cells
    start = str(cells["cell_id"].iloc[int(rng.integers(len(cells)))])
    labelset = ls_logic.add_cell(res, LabelSet("bench"), "positive", start)
    cur = ls_logic.iteration(res, labelset)  # warm-up (imports, caches); the first hits
    add_cell_ms, add_point_ms, curve_ms = [], [], []
    for step in range(iterations):
        review = cur["review"]
        if review.empty:  # nothing above the threshold: take the best unlabelled cell
            review = ls_logic.classify.select_hits(
                res.index, cur["scored"]["scores"], top=1, labelset=labelset, unlabelled_only=True
            )
        t0 = time.perf_counter()
        if points and step % 3 == 2:  # a click near an example
            e = labelset.examples[int(rng.integers(len(labelset)))]
            lat = float(np.clip(e.lat + rng.normal(0, 0.5), -89, 89))
            lon = float((e.lon + rng.normal(0, 0.5) + 180) % 360 - 180)
            labelset = ls_logic.add_point(res, labelset, "positive", lat, lon)
            kind = add_point_ms
        else:  # confirm / reject the best hit
            label = "positive" if step % 2 == 0 else "negative"
            labelset = ls_logic.add_cell(res, labelset, label, str(review["cell_id"].iloc[0]))
            kind = add_cell_ms
        cur = ls_logic.iteration(res, labelset)  # new scores, hit list and heatmap
        kind.append((time.perf_counter() - t0) * 1000.0)
        t = time.perf_counter()
        ls_logic.quality(res, labelset, 0.5)
        curve_ms.append((time.perf_counter() - t) * 1000.0)
    out = {"add_cell": stats(add_cell_ms), "learning_curve": stats(curve_ms)}
    if add_point_ms:
        out["add_point"] = stats(add_point_ms)
    out["all"] = stats(add_cell_ms + add_point_ms)
    out["final_set"] = {"positives": labelset.n_positive, "negatives": labelset.n_negative}
    return out


@dataclass(eq=False)  # hashable by identity, like GridIndex
class SyntheticIndex:
    """Just what the classifier reads of a GridIndex: cells, cell_vectors, manifest, the
    cosine pass; plus the embedder (points embed with the real one)."""

    cells: pd.DataFrame
    cell_vectors: np.ndarray
    manifest: dict
    embedder: object
    streetviews: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"sv_id": []}))
    sv_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.float32))

    def similarity_to_all_cells(self, vec: np.ndarray) -> np.ndarray:
        return self.cell_vectors @ np.asarray(vec, np.float32)


@dataclass
class SyntheticResources:
    index: SyntheticIndex
    raster: object

    @property
    def cells(self) -> pd.DataFrame:
        return self.index.cells


def synthetic(res, n: int, seed: int = 0) -> SyntheticResources:
    """n cells made from the real ones: vectors + N(0, 0.02) noise, renormalised; centres
    jittered by up to a quarter degree."""
    from app.raster import CellRaster

    rng = np.random.default_rng(seed)
    base = np.asarray(res.index.cell_vectors, np.float32)
    src = rng.integers(0, len(base), n)
    vecs = np.empty((n, base.shape[1]), np.float32)
    for i in range(0, n, 100_000):
        part = base[src[i : i + 100_000]] + rng.normal(
            0, 0.02, (len(src[i : i + 100_000]), base.shape[1])
        ).astype(np.float32)
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        vecs[i : i + 100_000] = part
    lat = np.clip(res.cells["lat"].to_numpy()[src] + rng.uniform(-0.25, 0.25, n), -89.9, 89.9)
    lon = (res.cells["lon"].to_numpy()[src] + rng.uniform(-0.25, 0.25, n) + 180) % 360 - 180
    cells = pd.DataFrame({"cell_id": [f"s{i:07d}" for i in range(n)], "lat": lat, "lon": lon})
    index = SyntheticIndex(cells, vecs, dict(res.index.manifest), res.index.embedder)
    return SyntheticResources(index, CellRaster(lat, lon))


def main(argv: list[str] | None = None) -> int:
    from app.resources import Settings, configure_threads, open_resources
    from benchmarks.common import write_result

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", default="data/index")
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument(
        "--big", type=int, default=1_000_000, help="cells of the synthetic index (0: skip)"
    )
    args = p.parse_args(argv)

    configure_threads()
    res = open_resources(Settings(index=args.index))
    if hasattr(res.index.embedder, "load"):  # the app loads the model after its first page
        res.index.embedder.load()
    res.raster  # noqa: B018 - built once per process in the app too
    result = {"index": args.index, "cells": len(res.cells), "iterations": args.iterations}
    t = time.perf_counter()
    result["demo"] = labelling_loop(res, args.iterations, points=True)
    result["demo"]["seconds"] = round(time.perf_counter() - t, 1)
    print(f"demo index ({len(res.cells):,} cells): {result['demo']}", flush=True)
    if args.big:
        t = time.perf_counter()
        big = synthetic(res, args.big)
        result["big_build_seconds"] = round(time.perf_counter() - t, 1)
        result["big"] = {
            "cells": args.big,
            **labelling_loop(big, args.iterations, points=True),
        }
        print(f"synthetic index ({args.big:,} cells): {result['big']}", flush=True)
    ok = result["demo"]["all"]["p95_ms"] <= TARGET_P95_MS and (
        not args.big or result["big"]["all"]["p95_ms"] < TARGET_BIG_MS
    )
    result["targets"] = {"demo_p95_ms": TARGET_P95_MS, "big_p95_ms": TARGET_BIG_MS, "met": bool(ok)}
    write_result("classify", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
