"""A stand-in for a finer H3 index, made from a built one: every cell of a `h3:R` index becomes
its H3 children at a finer resolution (49 per cell two levels down: the h3:4 demo index gives
4.0 M h3:6 cells), each with its parent's embedding plus a small random jitter, renormalised.

For benchmarking the app and the index at millions of cells when embedding them for real does
not fit a session (a real h3:6 build is ~4 M cells through the encoder). What it measures
honestly: memory, latency, FAISS recall on vectors whose neighbours are near-ties. What it does
not: the embeddings' quality (the children of one parent differ only by noise). Location
vectors and labels are the parent's; ids, lat/lon and geometry are the children's own. The
result is a complete index (`index.build` writers, manifest, integrity records) marked
`"jittered_from"` in its manifest, and opens in the app like any other.

    python -m benchmarks.jitter_index --index data/index --res 6 --out /tmp/index-h3-6-jitter
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import h3
import numpy as np
import pandas as pd

from gair.atomic import atomic_dir, write_json
from index import integrity
from index.build import write_geoparquet, write_npy, write_vectors
from index.search import read_manifest

log = logging.getLogger(__name__)


def children_table(cells: pd.DataFrame, res: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The children at `res` of every cell (rows: children, in parent order) and the parent row
    of each child [n_children] int64."""
    kids = [h3.cell_to_children(c, res) for c in cells["cell_id"]]
    parent = np.repeat(np.arange(len(cells)), [len(k) for k in kids])
    ids = [c for k in kids for c in k]
    latlon = np.array([h3.cell_to_latlng(c) for c in ids], np.float64)
    out = cells.iloc[parent].reset_index(drop=True)
    out["cell_id"] = ids
    out["lat"], out["lon"] = latlon[:, 0], latlon[:, 1]
    return out, parent


def neighbour_distance(cells: pd.DataFrame, vecs: np.ndarray, sample: int = 2000) -> float:
    """Median L2 distance between a cell's vector and its H3 neighbours' (on a sample)."""
    rows = pd.Index(cells["cell_id"])
    rng = np.random.default_rng(0)
    dists = []
    for i in rng.choice(len(cells), size=min(sample, len(cells)), replace=False):
        ring = rows.get_indexer(list(h3.grid_ring(cells["cell_id"].iloc[i], 1)))
        ring = ring[ring >= 0]
        if len(ring):
            dists.append(np.linalg.norm(vecs[ring] - vecs[i], axis=1).mean())
    return float(np.median(dists)) if dists else 0.0


def jitter(src: Path, res: int, out: Path, scale: float = 0.5, seed: int = 0) -> dict:
    """Write the jittered index at `out`; returns its manifest. Each child's vector is its
    parent's plus Gaussian noise of norm `scale` x the median neighbour distance at the
    source resolution, renormalised (so siblings are closer than neighbouring parents)."""
    started = time.time()
    manifest = read_manifest(src)
    spec = manifest["grid"]["spec"]
    if not spec.startswith("h3:") or int(spec[3:]) >= res:
        raise ValueError(f"--res {res} must be finer than the source index's grid {spec}")
    cells = pd.read_parquet(src / "cells.parquet").drop(columns=["geometry"], errors="ignore")
    vecs = np.load(src / "cells.npy").astype(np.float32)
    location = np.load(src / "cells_location.npy", mmap_mode="r")
    sigma = scale * neighbour_distance(cells, vecs)
    kids, parent = children_table(cells, res)
    log.info("%d children at h3:%d; jitter norm %.4f", len(kids), res, sigma)
    rng = np.random.default_rng(seed)
    point = np.empty((len(kids), vecs.shape[1]), np.float32)
    for i in range(0, len(kids), 1 << 18):
        j = slice(i, i + (1 << 18))
        noise = rng.standard_normal((len(point[j]), vecs.shape[1]), dtype=np.float32)
        noise *= sigma / np.sqrt(vecs.shape[1])
        block = vecs[parent[j]] + noise
        point[j] = block / np.linalg.norm(block, axis=1, keepdims=True)
    with atomic_dir(out) as tmp:
        cell_stats = write_vectors(tmp, "cells", point)
        del point
        write_npy(tmp / "cells_location.npy", np.asarray(location)[parent])
        write_geoparquet(kids, tmp / "cells.parquet")
        for name in ("streetviews.faiss", "streetviews.npy", "streetviews.parquet"):
            shutil.copy2(src / name, tmp / name)
        new = dict(manifest)
        new["checkpoint"] = manifest.get("checkpoint_absolute", manifest["checkpoint"])
        if manifest.get("world"):
            new["world"] = {**manifest["world"], "path": manifest["world_absolute"]}
        new["grid"] = {**manifest["grid"], "spec": f"h3:{res}"}
        new["cells"] = {**cell_stats, "ids_sha256": integrity.ids_sha256(kids["cell_id"])}
        new["coverage"] = None
        new["jittered_from"] = {
            "index": str(src.resolve()),
            "grid": spec,
            "children_per_cell": round(len(kids) / len(cells), 3),
            "jitter_norm": round(sigma, 5),
            "seed": seed,
        }
        new["build_seconds"] = round(time.time() - started, 2)
        new["files"] = integrity.record(tmp)
        write_json(tmp / "manifest.json", new)
    return new


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--index", type=Path, default=Path("data/index"))
    p.add_argument("--res", type=int, default=6)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--scale", type=float, default=0.5)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    m = jitter(args.index, args.res, args.out, args.scale)
    print(json.dumps({k: m[k] for k in ("grid", "cells", "jittered_from", "build_seconds")}))


if __name__ == "__main__":
    main()
