"""What the app's "Where was this taken?" answers for held-out gallery views of a built index:
the estimated location (`GridIndex.locate_view`, the posterior median over the index's cells)
and the best place (the top cell by RS-INR similarity), as median km from the truth.

    .venv/bin/python scripts/app_locate_on_index.py [INDEX_DIR] [N]

The views are a seeded sample of the gallery's val and test places (the checkpoint never
trained on them); the figure is quoted in docs/APP.md.
"""

from __future__ import annotations

import sys

import numpy as np

from gair.geo import haversine_km
from index.search import GridIndex


def main(index_dir: str = "data/index", n: str = "200") -> None:
    idx = GridIndex.open(index_dir)
    sv = idx.streetviews
    if "split" not in sv:
        raise SystemExit(f"{index_dir}: the gallery has no split column (not a demo-world index)")
    held = np.flatnonzero(sv["split"].isin(["val", "test"]).to_numpy())
    rows = np.sort(np.random.default_rng(0).choice(held, min(int(n), len(held)), replace=False))
    estimate, best = [], []
    for r in rows:
        vec = np.asarray(idx.sv_vectors[r : r + 1], np.float32)[0]
        estimate.append(idx.locate_view(vec))
        top = idx.search_cells(vec, 1)
        best.append((float(top["lat"].iloc[0]), float(top["lon"].iloc[0])))
    truth = sv[["lat", "lon"]].to_numpy(np.float64)[rows]
    est_km = np.asarray(haversine_km(np.array(estimate), truth))
    best_km = np.asarray(haversine_km(np.array(best), truth))
    print(
        f"{len(rows)} held-out gallery views (of {len(held)}) of {index_dir}: estimated location "
        f"median {np.median(est_km):,.0f} km, best place median {np.median(best_km):,.0f} km"
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
