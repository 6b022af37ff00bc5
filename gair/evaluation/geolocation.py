"""Geolocation scored the standard way: street views of held-out places against a gallery of
training places only.

Queries are the world's street-view locations of a split (one rendered view each). The gallery
holds training-split locations only, none within `exclude_km` (25 km) of any query, so no answer
can be the query's own place. Answers:
- "best-entry": the gallery place whose location embedding scores best (the posterior's mode);
- "posterior-median": the posterior's spherical geometric median (`gair.geolocate.locate`), with
  the gallery's density as the prior (42% of the demo world's training places are North
  American);
- "posterior-median-area": the same with every H3 resolution-2 cell of the gallery equally
  likely (`gair.geolocate.area_prior`): the prior the app's equal-area grid of cells has.
Which is the product's primary answer is decided on the val split (lowest median km) before the
test split is scored, and recorded. Baselines with the same gallery:
- "gallery-prior": the posterior of a model whose scores are flat, i.e. the geometric median of
  the gallery (one answer for every query);
- "area-prior": the same under the area prior (the weighted geometric median); `PRIOR_OF` names
  the flat-score baseline of each answer, the one its per-continent figures are set against;
- "random-entry": a random gallery place;
- "country-oracle" (an upper bound a model cannot beat without more than the country): the
  geometric median of the gallery places in the query's true country (the prior where none).
"""

from __future__ import annotations

import numpy as np

from gair.geo import haversine_km
from gair.geolocate import area_prior, geographic_median, locate
from gair.world import grid

WITHIN_KM = (1, 25, 200, 750, 2500)
ANSWERS = ("best-entry", "posterior-median", "posterior-median-area")
PRIOR_OF = {
    "best-entry": "gallery-prior",
    "posterior-median": "gallery-prior",
    "posterior-median-area": "area-prior",
}


def train_gallery(world, queries: np.ndarray, exclude_km: float, max_size: int, seed: int):
    """Training-split street-view places at least `exclude_km` from every query: [G, 2]."""
    from scipy.spatial import cKDTree

    sv = world.streetviews
    gallery = sv.loc[sv["split"] == "train", ["lat", "lon"]].to_numpy(np.float64)
    tree = cKDTree(grid.unit_vectors(queries[:, 0], queries[:, 1]))
    d, _ = tree.query(grid.unit_vectors(gallery[:, 0], gallery[:, 1]))
    gallery = gallery[grid.chord_to_km(d) >= exclude_km]
    if len(gallery) > max_size:
        pick = np.random.default_rng(seed).choice(len(gallery), max_size, replace=False)
        gallery = gallery[np.sort(pick)]
    return gallery


def answers(embedder, sv_emb: np.ndarray, gallery: np.ndarray, gallery_emb: np.ndarray) -> dict:
    """{answer name: [Q, 2]} for each of a model's `ANSWERS`."""
    best = gallery[np.argmax(sv_emb @ gallery_emb.T, axis=1)]
    scale = embedder.logit_scale
    return {
        "best-entry": best,
        "posterior-median": locate(sv_emb, gallery_emb, gallery, scale).numpy(),
        "posterior-median-area": locate(
            sv_emb, gallery_emb, gallery, scale, prior=area_prior(gallery)
        ).numpy(),
    }


def baseline_answers(world, queries: np.ndarray, gallery: np.ndarray, seed: int) -> dict:
    """{baseline name: [Q, 2]}: gallery-prior, area-prior, random-entry, country-oracle."""
    prior = geographic_median(gallery)
    area = geographic_median(gallery, area_prior(gallery))
    rng = np.random.default_rng(seed)
    q_country = world.labels(queries)["country"]
    g_country = world.labels(gallery)["country"]
    oracle = np.repeat(prior[None], len(queries), 0)
    for c in np.unique(q_country):
        inside = g_country == c
        if c and inside.any():
            oracle[q_country == c] = geographic_median(gallery[inside])
    return {
        "gallery-prior": np.repeat(prior[None], len(queries), 0),
        "area-prior": np.repeat(area[None], len(queries), 0),
        "random-entry": gallery[rng.integers(0, len(gallery), len(queries))],
        "country-oracle": oracle,
    }


def errors_km(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.asarray(haversine_km(predicted, truth), np.float64)


def error_metrics() -> dict:
    """{metric name: fn(err [N] km) -> float}: median km and the share within each radius."""
    out = {"median_km": lambda err: float(np.median(err))}
    for km in WITHIN_KM:
        out[f"within_{km}km"] = lambda err, km=km: float(np.mean(err <= km))
    return out
