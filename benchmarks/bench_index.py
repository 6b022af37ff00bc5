"""Index benchmarks.

- build: grid points/s and encoder passes per point for a grid (default: the demo index's
  manifest when data/index exists);
- query: p50/p99 latency and recall@10 against exact search at 1e5 and 1e6 cells, and the
  FAISS part alone at 1e7 (`--sizes 1e5,1e6,1e7`; vectors streamed in chunks, exact top-10
  kept per chunk), with bytes per vector. Vectors are
  realistic when a built index exists (its cell embeddings, jittered and re-normalised), else
  a Gaussian mixture on the sphere.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from benchmarks.common import write_result
from index import vectors as V

STREAM_ABOVE = 2_000_000  # larger sizes: FAISS alone, vectors streamed in chunks


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def mixture_centres(dim: int, seed: int = 0, n: int = 1024) -> np.ndarray:
    """Fixed centres of the synthetic Gaussian mixture on the sphere [n, dim]."""
    return _normalise(np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32))


def synthetic(n: int, dim: int, base: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """n vectors: jittered copies of `base` rows when given, else draws from a mixture around
    `mixture_centres(dim)` (the same centres on every call, so chunks share one distribution)."""
    if base is not None:
        pick = base[rng.integers(0, len(base), n)]
        return _normalise(pick + rng.normal(scale=0.05, size=pick.shape).astype(np.float32))
    centres = mixture_centres(dim)
    return _normalise(
        centres[rng.integers(0, len(centres), n)]
        + rng.normal(scale=0.3 / np.sqrt(dim), size=(n, dim))
    )


def single_query_ms(index, queries: np.ndarray, k: int = 10) -> list[float]:
    """Latency in ms of each query searched alone (as the app and the CLI search)."""
    lat = []
    for q in queries:
        t = time.perf_counter()
        index.search(q[None], k)
        lat.append((time.perf_counter() - t) * 1000)
    return lat


def bench_size(n: int, dim: int, base, rng, n_queries: int = 200) -> dict:
    data = synthetic(n, dim, base, rng)
    factory = V.choose_factory(n, dim)
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building may use every core (a previous
    # size left FAISS single-threaded for its queries)
    t0 = time.perf_counter()
    index = V.build_index(data, factory)
    build_s = time.perf_counter() - t0
    nprobe, recall, _ = V.tune_nprobe(index, data)
    queries = data[rng.integers(0, n, n_queries)]
    V.configure_for_single_queries()  # as GridIndex serves queries
    lat = single_query_ms(index, queries)
    return {
        "n": n,
        "dim": dim,
        "factory": factory,
        "nprobe": nprobe,
        "recall_at_10": recall,
        "p50_ms": statistics.median(lat),
        "p99_ms": float(np.percentile(lat, 99)),
        "build_s": build_s,
        "bytes_per_vector": V.bytes_per_vector(index, n),
        "faiss_threads_at_query": 1,
    }


def bench_faiss_streamed(
    n: int, dim: int, base, seed: int, chunk: int = 500_000, n_queries: int = 200
) -> dict:
    """The FAISS part alone at sizes whose float32 copy would not fit twice in memory (1e7 x
    256-d = 10 GB): vectors are generated and added in chunks, exact top-10 for the queries is
    kept up to date chunk by chunk, then nprobe is tuned to recall@10 >= 0.95."""
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    rng = np.random.default_rng(seed)
    factory = V.choose_factory(n, dim)
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    t0 = time.perf_counter()
    index.train(synthetic(V.TRAIN_SIZE, dim, base, rng))
    train_s = time.perf_counter() - t0
    best_s = np.full((n_queries, 10), -np.inf, np.float32)
    best_i = np.zeros((n_queries, 10), np.int64)
    queries = None
    for start in range(0, n, chunk):
        part = synthetic(min(chunk, n - start), dim, base, rng)
        if queries is None:  # rows of the data, as in `bench_size` (the app queries a cell)
            queries = part[rng.choice(len(part), n_queries, replace=False)]
        index.add(part)
        sims = queries @ part.T  # [Q, chunk]: exact search, merged into the running top-10
        top = np.argpartition(-sims, 10, axis=1)[:, :10]
        cand_s = np.concatenate([best_s, np.take_along_axis(sims, top, 1)], 1)
        cand_i = np.concatenate([best_i, top + start], 1)
        keep = np.argsort(-cand_s, axis=1)[:, :10]
        best_s, best_i = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
        print(f"  {start + len(part):,} / {n:,} vectors added", flush=True)
    build_s = time.perf_counter() - t0
    ivf = faiss.extract_index_ivf(index)

    def recall() -> float:
        _, found = index.search(queries, 10)
        return sum(len(set(t) & set(f)) for t, f in zip(best_i, found)) / best_i.size

    nprobe, rec = 8, 0.0
    while nprobe <= ivf.nlist:
        V.set_search_params(index, nprobe=nprobe, ef_search=max(64, nprobe * 2))
        rec = recall()
        if rec >= 0.95:
            break
        nprobe *= 2
    V.configure_for_single_queries()
    lat = single_query_ms(index, queries)
    with tempfile.TemporaryDirectory() as tmp:
        faiss.write_index(index, f"{tmp}/i.faiss")
        size = os.path.getsize(f"{tmp}/i.faiss")
    return {
        "n": n,
        "dim": dim,
        "factory": factory,
        "nprobe": min(nprobe, ivf.nlist),
        "recall_at_10": rec,
        "recall_queries": n_queries,
        "p50_ms": statistics.median(lat),
        "p99_ms": float(np.percentile(lat, 99)),
        "train_s": train_s,
        "build_s": build_s,
        "bytes_per_vector": size / n,
        "faiss_threads_at_query": 1,
        "faiss_only": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1e5,1e6", help="comma list, e.g. 1e5,1e6,1e7")
    parser.add_argument("--index", default="data/index", help="a built index for realistic vectors")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    base, dim, build = None, 256, None
    manifest_path = Path(args.index) / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        base = np.load(Path(args.index) / "cells.npy")
        dim = base.shape[1]
        cells = manifest["cells"]["count"]
        build = {
            "grid": manifest["grid"],
            "cells": cells,
            "build_seconds": manifest["build_seconds"],
            "points_per_s": cells / manifest["build_seconds"],
            "encoder_passes_per_point": manifest["encoder_passes_per_point"],
        }
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    query = [
        bench_size(n, dim, base, rng)
        if n <= STREAM_ABOVE
        else bench_faiss_streamed(n, dim, base, 0)
        for n in sizes
    ]
    for q in query:
        print(q)
    write_result(
        "index",
        {
            "build": build,
            "query": query,
            "vectors": "index-jittered" if base is not None else "mixture",
        },
    )


if __name__ == "__main__":
    main()
