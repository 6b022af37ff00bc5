"""Compact vectors (`gair index export`): what int8 and float16 cost against the index's float32.

On a built index (default data/index), for the vectors read back from the exported GeoParquet:
- recall@10 against exact float32 search, for `--queries` random cells' own vectors (the query
  is in the data) and as many off-data queries (normalised midpoints of random cell pairs); int8
  with a float32 query (asymmetric) and with an int8 query (both sides quantised);
- re-ranking: int8 (or float16) top-50, re-ranked with the float32 vectors, top-10 recall;
- the exact cosine given up: p99 over queries of (true 10th cosine - worst exact cosine among
  the approximate top 10);
- the similarity heatmap (one query against every cell): max and p99 absolute error of cosine
  over all cells for `--heatmap` queries;
- the exported file: size, bytes per row and per vector (the vector column alone), export time,
  and a brute-force top-10 in DuckDB over it;
- for reference only (not what the export writes): int8 with a global max-abs scale
  (127 / max|v|) and with per-dimension scales.

    .venv/bin/python -m benchmarks.bench_int8 [--index data/index] [--queries 1000]

Writes benchmarks/results/int8.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_result
from index import export

K, SHORTLIST, BLOCK = 10, 50, 250


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Row-wise indices [Q, k] of the k largest scores (unordered)."""
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def compare(queries: np.ndarray, exact: np.ndarray, approx: np.ndarray, query_approx=None) -> dict:
    """recall@10, re-ranked recall@10 (approx top-50 -> exact top-10) and the exact cosine given
    up, for queries [Q, E] over exact and approx vectors [N, E] (`query_approx`: the queries as
    the approximate side sees them, default the queries themselves)."""
    qa = queries if query_approx is None else query_approx
    hits, rerank_hits, deficit = 0, 0, []
    for start in range(0, len(queries), BLOCK):
        q, q2 = queries[start : start + BLOCK], qa[start : start + BLOCK]
        s, sa = q @ exact.T, q2 @ approx.T
        truth, got, short = _top(s, K), _top(sa, K), _top(sa, SHORTLIST)
        rows = np.arange(len(q))[:, None]
        reranked = short[rows, _top(s[rows, short], K)]
        for t, g, r in zip(truth, got, reranked):
            hits += len(np.intersect1d(t, g))
            rerank_hits += len(np.intersect1d(t, r))
        tenth = np.take_along_axis(s, truth, 1).min(1)
        deficit.append(tenth - np.take_along_axis(s, got, 1).min(1))
    deficit = np.concatenate(deficit)
    n = len(queries) * K
    return {
        "recall_at_10": round(hits / n, 4),
        "rerank_top50_recall_at_10": round(rerank_hits / n, 4),
        "cosine_deficit_p99": float(np.quantile(deficit, 0.99)),
        "cosine_deficit_max": float(deficit.max()),
    }


def heatmap_error(queries: np.ndarray, exact: np.ndarray, approx: np.ndarray, scale=1.0) -> dict:
    """Absolute error of cosine over all cells for each query (the app's similarity heatmap):
    max and p99 over queries x cells."""
    errs = np.abs(queries @ exact.T - (queries @ approx.T) / scale)
    return {"max_abs_error": float(errs.max()), "p99_abs_error": float(np.quantile(errs, 0.99))}


def duckdb_top10_seconds(path: Path, query: np.ndarray) -> float | None:
    try:
        import duckdb
    except ImportError:
        return None
    con = duckdb.connect()
    sql = (
        f"SELECT cell_id, list_dot_product(embedding::FLOAT[], ?::FLOAT[]) AS s "
        f"FROM read_parquet('{path}') ORDER BY s DESC LIMIT 10"
    )
    con.execute(sql, [query.tolist()]).fetchall()  # warm: file metadata, cache
    t = time.perf_counter()
    con.execute(sql, [query.tolist()]).fetchall()
    return round(time.perf_counter() - t, 3)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", default="data/index")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--heatmap", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    index_dir = Path(args.index)
    exact = np.load(index_dir / "cells.npy")
    n, dim = exact.shape
    rng = np.random.default_rng(args.seed)
    own = exact[rng.choice(n, args.queries, replace=False)]
    i, j = rng.choice(n, (2, args.queries))
    midpoints = _normalise(exact[i] + exact[j])
    heat = exact[rng.choice(n, args.heatmap, replace=False)]

    files, vectors = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in export.DTYPES:
            path = Path(tmp) / f"cells-{dtype}.parquet"
            s = export.export_geoparquet(index_dir, path, vectors=dtype)
            vectors[dtype] = export.read_vectors(path)
            files[dtype] = {
                "bytes": s["bytes"],
                "bytes_per_row": round(s["bytes_per_vector"], 1),
                "vector_bytes_per_vector": round(s["vector_bytes_per_vector"], 1),
                "export_seconds": s["seconds"],
                "duckdb_top10_seconds": duckdb_top10_seconds(path, midpoints[0]),
            }
            print(dtype, files[dtype])
        s = export.export_geoparquet(
            index_dir, Path(tmp) / "h3.parquet", geometry="h3", location=True
        )
        files["int8_h3_location"] = {
            "bytes": s["bytes"],
            "bytes_per_row": round(s["bytes_per_vector"], 1),
            "export_seconds": s["seconds"],
        }
    assert np.array_equal(vectors["float32"], exact)  # the float32 column is the index

    int8, float16 = vectors["int8"], vectors["float16"]
    int8_query = {name: export.dequantize(export.quantize_int8(q)) for name, q in
                  (("own", own), ("midpoints", midpoints))}  # fmt: skip
    maxabs = np.abs(exact).max()
    perdim = np.abs(exact).max(0)
    alternatives = {  # reference only: not what the export writes
        "int8_global_maxabs_scale": np.clip(np.rint(exact * (127 / maxabs)), -127, 127)
        / (127 / maxabs),
        "int8_per_dimension_scale": np.clip(np.rint(exact * (127 / perdim)), -127, 127)
        / (127 / perdim),
    }
    recall = {}
    for name, q in (("own", own), ("midpoints", midpoints)):
        recall[name] = {
            "int8": compare(q, exact, int8),
            "int8_int8_query": compare(q, exact, int8, query_approx=int8_query[name]),
            "float16": compare(q, exact, float16),
            **{k: compare(q, exact, v.astype(np.float32)) for k, v in alternatives.items()},
        }
        print(name, recall[name])
    heatmap = {
        "queries": args.heatmap,
        "int8": heatmap_error(heat, exact, int8),
        "float16": heatmap_error(heat, exact, float16),
        **{k: heatmap_error(heat, exact, v.astype(np.float32)) for k, v in alternatives.items()},
    }
    print("heatmap", heatmap)
    result = {
        "index": str(index_dir),
        "cells": n,
        "dim": dim,
        "max_abs_component": float(maxabs),
        "queries": {"own": args.queries, "midpoints": args.queries, "k": K, "shortlist": SHORTLIST},
        "recall": recall,
        "heatmap": heatmap,
        "files": files,
        "command": "python -m benchmarks.bench_int8 "
        + f"--index {args.index} --queries {args.queries} --heatmap {args.heatmap}",
        "seconds": round(time.perf_counter() - started, 1),
    }
    if not args.no_write:
        write_result("int8", result)
    return result


if __name__ == "__main__":
    main()
