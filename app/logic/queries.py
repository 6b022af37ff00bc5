"""The queries the panels run: a clicked point, a cross-view image search, a comparison of
two points. Each returns a plain dict of everything its panel shows.
"""

from __future__ import annotations

import time

import numpy as np

from app.logic.embeddings import (
    NEIGHBOURHOOD_N,
    embed_image,
    embed_locations,
    embed_points,
    neighbourhood_grid,
)
from app.logic.inputs import K_DEFAULT, check_point, clamp_k
from app.logic.labels import mark_caveat, predictions_for, truth_at
from app.logic.novelty import assess
from app.logic.places import _places_and_overlay
from app.logic.runtime import _executor, _ms
from app.logic.streetviews import _views, streetview_image
from gair.place_query import describe, place_query

# --------------------------------------------------------------------------- the click


def click_result(
    res,
    lat: float,
    lon: float,
    k: int = K_DEFAULT,
    neighbourhood: bool = True,
    thumbnails: bool = True,
    heatmap: bool = True,
) -> dict:
    """Everything the panels show for a clicked point.

    Returns a dict: query (lat, lon), embedding [E], location_similarity (cosine of the INR
    embedding with the location encoder's embedding of the same point), neighbourhood (grid
    similarities to the point's embedding), places (top-k cells, DataFrame), streetviews
    (top-k gallery rows), thumbnails (uint8 images of those rows), overlay (similarity PNG +
    legend), predictions (heads) or None, truth (world labels; None when the index has none) and
    timings_ms per stage.
    """
    t0 = time.perf_counter()
    timings = {}
    lat, lon = check_point(lat, lon, wrap=True)
    k = clamp_k(k)
    pts = np.array([[lat, lon]])
    emb_all = None
    if neighbourhood and getattr(res.index.embedder, "tiling", None) is None:
        neighbourhood = False  # fixed chips (prepared sources): no tile cell to map
    if neighbourhood:
        grid, lat_axis, lon_axis = neighbourhood_grid(res, lat, lon)
        try:  # one batch: the point's tiles serve the neighbourhood too
            emb_all = embed_points(res, np.concatenate([pts, grid]))
        except ValueError:  # part of the grid has no imagery (the edge of the user's rasters)
            neighbourhood = False
    if emb_all is None:
        emb_all = embed_points(res, pts)  # a point without imagery raises its own message
    emb = emb_all[0]
    timings["embed"] = _ms(t0)

    # the heatmap half (all-cell scores -> top places + overlay PNG) beside the street-view half
    origin = (lat, lon)
    heat = _executor().submit(
        _places_and_overlay, res, emb, k, origin, heatmap, "similarity to the clicked point"
    )
    t = time.perf_counter()
    loc = embed_locations(res, pts[:1])[0]
    timings["location"] = _ms(t)
    weight = res.streetview_weight
    svs, thumbs, timings["streetviews"] = _views(
        res, place_query(emb, loc, weight), k, origin, thumbnails
    )

    t = time.perf_counter()
    location_similarity = float(np.dot(emb, loc))
    truth = truth_at(res, lat, lon)
    preds = mark_caveat(predictions_for(res, emb, loc), truth)
    timings["heads_truth"] = _ms(t)

    nb = None
    if neighbourhood:
        sims = (emb_all[1:] @ emb).reshape(NEIGHBOURHOOD_N, NEIGHBOURHOOD_N)
        nb = {"lat": lat_axis, "lon": lon_axis, "similarity": sims}
    places, overlay, timings["places_overlay"] = heat.result()
    timings["total"] = _ms(t0)
    return {
        "kind": "point",
        "query": {"lat": lat, "lon": lon, "k": k},
        "embedding": emb,
        "location_embedding": loc,
        "location_similarity": location_similarity,
        "neighbourhood": nb,
        "places": places,
        "streetviews": svs,
        "streetview_query": describe(weight),
        "thumbnails": thumbs,
        "overlay": overlay,
        "predictions": preds,
        "truth": truth,
        "timings_ms": timings,
    }


# --------------------------------------------------------------------------- cross-view search


def image_search(
    res, image: np.ndarray | None = None, sv_row=None, k: int = K_DEFAULT, heatmap: bool = True
) -> dict:
    """Where was this street view taken? Embeds an image (or a gallery row's view) with the SV
    encoder and compares it with every place; returns the heatmap, the top places (by RS-INR
    similarity; `guess` is the first), `located`: the location encoder's posterior median over
    every place (`GridIndex.locate_view`) and, for a gallery view, the true location and both
    answers' errors in km. For an uploaded photo, `novelty` (`app.logic.novelty.assess`) and
    `uncertain`: True when the photo is unlike every gallery view (the places are likely
    noise)."""
    from gair import geo

    t0 = time.perf_counter()
    k = clamp_k(k)
    truth = None
    if sv_row is not None:
        image = streetview_image(res, sv_row)
        truth = (float(sv_row["lat"]), float(sv_row["lon"]))
    if image is None:
        raise ValueError("give an image or a gallery street view")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}")
    vec = embed_image(res, image)
    heat = _executor().submit(
        _places_and_overlay, res, vec, k, truth, heatmap, "similarity to the street view"
    )
    estimate = _executor().submit(res.index.locate_view, vec)
    svs, thumbs, _ = _views(res, vec, k, truth, True)
    novelty = None
    if sv_row is None and len(svs):  # an uploaded photo: is it like anything in the gallery?
        novelty = assess(res, float(svs["similarity"].iloc[0]), image)
    places, overlay, _ = heat.result()
    top = places.iloc[0] if len(places) else None
    guess = (float(top["lat"]), float(top["lon"])) if top is not None else None
    located = estimate.result()

    def km_from_truth(point):
        return (
            float(geo.haversine_km(np.array(truth), np.array(point))) if truth and point else None
        )

    return {
        "kind": "image",
        "query": {
            "sv_id": None if sv_row is None else str(sv_row["sv_id"]),
            "truth": truth,
            "k": k,
        },
        "image": image,
        "embedding": vec,
        "places": places,
        "streetviews": svs,
        "thumbnails": thumbs,
        "overlay": overlay,
        "guess": guess,
        "error_km": km_from_truth(guess),
        "located": located,
        "located_error_km": km_from_truth(located),
        "novelty": novelty,
        "uncertain": bool(novelty and novelty["out_of_distribution"]),
        "timings_ms": {"total": _ms(t0)},
    }


# --------------------------------------------------------------------------- compare


def compare_points(res, a: tuple[float, float], b: tuple[float, float]) -> dict:
    """Cosine similarity of two points' INR embeddings (and location embeddings), distance."""
    from gair import geo

    a = check_point(*a, wrap=True)
    b = check_point(*b, wrap=True)
    pts = np.array([a, b])
    emb = embed_points(res, pts)
    loc = embed_locations(res, pts)
    return {
        "a": a,
        "b": b,
        "cosine": float(emb[0] @ emb[1]),
        "location_cosine": float(loc[0] @ loc[1]),
        "distance_km": float(geo.haversine_km(pts[0], pts[1])),
        "truth_a": truth_at(res, *a),
        "truth_b": truth_at(res, *b),
    }
