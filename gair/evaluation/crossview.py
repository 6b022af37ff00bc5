"""What the app's "nearest street views" panel answers, scored: for random held-out land points,
how far away is the first gallery view the panel shows?

The panel searches the gallery's street-view embeddings with the place's query embedding,
`gair.place_query.place_query(inr, location, w)`. The weight w is chosen here on the val split
(the median km of the first view, lowest wins; ties go to the smaller w) from
`gair.place_query.WEIGHTS`, recorded in `decisions`, and fixed before test. Test and unseen rows
give the imagery-alone (w = 0, input "inr"), location-alone (input "location") and chosen
(input "query") answers, against a random gallery view (what an uninformative panel would show)
and the geographically closest gallery view (the floor no panel can beat). The chosen rule is
also scored on a gallery rendered without roadside signs (task "nearest-street-view-no-signs"):
the signs are a planted country cue, and a claim must survive without them.

The gallery mirrors the app's demo index: a seeded sample of the world's street-view places of
all splits (the index does not know splits), spread over the land (`gair.spread`), one rendered
view each.
"""

from __future__ import annotations

import math

import numpy as np

from gair.evaluation import stats
from gair.evaluation.features import render_queries
from gair.geo import haversine_km
from gair.place_query import WEIGHTS, place_query, to_json
from gair.spread import spread_choice

GALLERY_SIZE = 5000
TASK = "nearest-street-view"
METRICS = {
    "median_km": lambda err: float(np.median(err)),
    "within_750km": lambda err: float(np.mean(err <= 750)),
}


def gallery_places(world, size: int, seed: int) -> np.ndarray:
    ll = world.streetviews[["lat", "lon"]].to_numpy(np.float64)
    return ll[spread_choice(ll, size, np.random.default_rng(seed))]


def first_view_km(query: np.ndarray, sv_emb: np.ndarray, gallery: np.ndarray, latlon) -> np.ndarray:
    """km from each point [N, 2] to the gallery view [G, 2] whose embedding [G, E] best matches
    its query [N, E]."""
    found = gallery[np.argmax(query @ sv_emb.T, axis=1)]
    return np.asarray(haversine_km(found, latlon), np.float64)


def choose_weight(inr: np.ndarray, loc: np.ndarray, sv_emb, gallery, latlon) -> dict:
    """The decision record: the weight with the lowest val median km (ties: the smaller)."""
    med = {
        w: float(np.median(first_view_km(place_query(inr, loc, w), sv_emb, gallery, latlon)))
        for w in WEIGHTS
    }
    best = min(WEIGHTS, key=lambda w: (round(med[w], 6), w))
    return {
        "location_weight": to_json(best),
        "val_median_km": {str(to_json(w)): km for w, km in med.items()},
        "n_val": int(len(latlon)),
        "rule": "the weight with the lowest median km to the first view on the val split, "
        "fixed before test",
    }


def nearest_view_rows(
    world, embedders: dict, points: dict, n_boot: int, seed: int, size: int
) -> tuple[list[dict], dict]:
    """-> (rows, decision). Rows of task "nearest-street-view" (median km, within 750 km) for
    each method in `embedders` ({name: Embedder}), the "random-view" and "closest-view"
    baselines, on the test and unseen splits of `points` ({split: {"latlon", "block",
    name: INR embeddings [N, E] (optional)}}); "val" in `points` decides the weight of the
    "gair" method (the decision); other methods use the same weight."""
    gallery = gallery_places(world, size, seed)
    px = next(iter(embedders.values())).config["sv"]["img_size"]
    views = render_queries(world, gallery, px, seed=13)
    sv_emb = {name: emb.street_view(views) for name, emb in embedders.items()}
    masked = None  # GAIR's embeddings of the same views without their signs
    if "gair" in embedders:
        no_signs = render_queries(world, gallery, px, seed=13, signs=False)
        masked = embedders["gair"].street_view(no_signs)

    def point_embeddings(name, emb, split):
        p = points[split]
        inr = p[name] if name in p else emb.point(p["latlon"])
        return inr, emb.location(p["latlon"])

    decision = {}
    if "val" in points and "gair" in embedders:
        inr, loc = point_embeddings("gair", embedders["gair"], "val")
        decision = choose_weight(inr, loc, sv_emb["gair"], gallery, points["val"]["latlon"])
    weight = float(decision.get("location_weight", 0.0))
    rows = []
    rng = np.random.default_rng(seed)
    for split in [s for s in ("test", "unseen") if s in points]:
        ll, blocks = points[split]["latlon"], points[split]["block"]
        errs = {
            ("random-view", "none", True): np.asarray(
                haversine_km(gallery[rng.integers(0, len(gallery), len(ll))], ll), np.float64
            ),
            ("closest-view", "none", True): _closest_km(gallery, ll),
        }
        for name, emb in embedders.items():
            inr, loc = point_embeddings(name, emb, split)
            for inp, w in (("inr", 0.0), ("location", math.inf), ("query", weight)):
                q = place_query(inr, loc, w)
                errs[(name, inp, True)] = first_view_km(q, sv_emb[name], gallery, ll)
            if name == "gair":  # the chosen rule on the same gallery without its signs
                q = place_query(inr, loc, weight)
                errs[(name, "query", False)] = first_view_km(q, masked, gallery, ll)
        for (method, inp, signs), err in errs.items():
            task = TASK if signs else f"{TASK}-no-signs"
            for metric, fn in METRICS.items():
                point, lo, hi, _ = stats.block_bootstrap(fn, blocks, n_boot, seed, err=err)
                extra = {"gallery": len(gallery)}
                if inp == "query":
                    extra["location_weight"] = to_json(weight)
                rows.append(
                    stats.row(task, method, inp, metric, point, lo, hi, len(ll), split, **extra)
                )
    return rows, decision


def _closest_km(gallery: np.ndarray, latlon: np.ndarray, batch: int = 512) -> np.ndarray:
    """km from each point to its geographically closest gallery place: [N]."""
    out = []
    for i in range(0, len(latlon), batch):
        d = haversine_km(latlon[i : i + batch, None, :], gallery[None, :, :])
        out.append(np.asarray(d, np.float64).min(1))
    return np.concatenate(out) if out else np.zeros(0)
