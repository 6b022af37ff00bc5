"""What the app's "nearest street views" panel answers, scored: for random held-out land points,
how far away is the gallery view whose street-view embedding is most similar to the point's
INR embedding? Against a random gallery view (what an uninformative panel would show).

The gallery mirrors the app's demo index: a seeded sample of the world's street-view places of
all splits (the index does not know splits), one rendered view each.
"""

from __future__ import annotations

import numpy as np

from gair.evaluation import stats
from gair.evaluation.features import render_queries
from gair.geo import haversine_km

GALLERY_SIZE = 5000


def gallery_places(world, size: int, seed: int) -> np.ndarray:
    ll = world.streetviews[["lat", "lon"]].to_numpy(np.float64)
    pick = np.random.default_rng(seed).choice(len(ll), min(size, len(ll)), replace=False)
    return ll[np.sort(pick)]


def nearest_view_rows(world, embedders: dict, points: dict, n_boot: int, seed: int, size: int):
    """Rows of task "nearest-street-view" (median km and within 750 km) for each method in
    `embedders` ({name: Embedder}) and the "random-view" baseline, on each split of `points`
    ({split: {"latlon", "block", name: INR embeddings [N, E] (optional; computed if absent)}})."""
    gallery = gallery_places(world, size, seed)
    px = next(iter(embedders.values())).config["sv"]["img_size"]
    views = render_queries(world, gallery, px, seed=13)
    sv_emb = {name: emb.street_view(views) for name, emb in embedders.items()}
    metrics = {
        "median_km": lambda err: float(np.median(err)),
        "within_750km": lambda err: float(np.mean(err <= 750)),
    }
    rows = []
    rng = np.random.default_rng(seed)
    for split, p in points.items():
        ll, blocks = p["latlon"], p["block"]
        answers = {"random-view": gallery[rng.integers(0, len(gallery), len(ll))]}
        for name, emb in embedders.items():
            inr = p[name] if name in p else emb.point(ll)
            answers[name] = gallery[np.argmax(inr @ sv_emb[name].T, axis=1)]
        for method, found in answers.items():
            err = np.asarray(haversine_km(found, ll), np.float64)
            for metric, fn in metrics.items():
                point, lo, hi, _ = stats.block_bootstrap(fn, blocks, n_boot, seed, err=err)
                rows.append(
                    stats.row(
                        "nearest-street-view",
                        method,
                        "inr" if method != "random-view" else "none",
                        metric,
                        point,
                        lo,
                        hi,
                        len(ll),
                        split,
                        gallery=len(gallery),
                    )
                )
    return rows
