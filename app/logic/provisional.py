"""A click answered before the model has loaded: the index's stored vectors of the nearest grid
cell stand in for the point's own INR embedding.

The model (torch + timm + weights) takes seconds to load after a cold start; everything else a
click shows is already in the index: the cell's INR and location embeddings, FAISS, the
heatmap's vectors, and the heads' predictions the build stored per cell (`pred_` columns, used
only while the run's heads are still the ones the index was built with). So a click made as
soon as the page shows is answered at once, said to be the nearest cell's (with its distance),
and the exact answer replaces it as soon as the model is ready (`app.main` reruns then).
Nothing here imports torch.
"""

from __future__ import annotations

import time

import numpy as np

from app.logic.inputs import check_point, clamp_k
from app.logic.labels import UNCERTAIN_BELOW, mark_caveat, regression_answer, truth_at
from app.logic.places import _places_and_overlay
from app.logic.runtime import _ms
from app.logic.streetviews import _views
from gair.place_query import describe, place_query

WINDOW_DEG = 2.0  # cells searched first: within this many degrees of latitude


def nearest_cell(res, lat: float, lon: float) -> tuple[int, float]:
    """(row, great-circle km) of the cell nearest (lat, lon): among the cells within
    `WINDOW_DEG` of latitude, else among all."""
    from gair import geo

    latlon = res.cell_latlon
    rows = np.flatnonzero(np.abs(latlon[:, 0] - lat) <= WINDOW_DEG)
    if not len(rows):
        rows = np.arange(len(latlon))
    km = geo.haversine_km(np.array([[lat, lon]]), latlon[rows])
    best = int(np.argmin(km))
    return int(rows[best]), float(km[best])


def stored_predictions(res, row: int) -> dict | None:
    """The heads' predictions the build stored for cell `row` (`pred_<task>`, `pred_<task>_p`),
    shaped like `labels.predictions_for` (classes: the top one only); None when the index has
    none or the run's heads changed since the build."""
    if not res.stored_predictions_current():
        return None
    tasks = (res.run_config.get("heads") or {}).get("tasks") or []
    cell = res.cells.iloc[row]
    out = {}
    for task in tasks:
        name = task.get("name")
        if f"pred_{name}" not in cell:
            return None
        base = {"units": task.get("units", ""), "input": task.get("input", "inr")}
        if task.get("kind") == "regression":
            out[name] = regression_answer(res, name, float(cell[f"pred_{name}"]), base)
        else:
            top, p = str(cell[f"pred_{name}"]), float(cell.get(f"pred_{name}_p", np.nan))
            out[name] = {
                **base,
                "kind": "classification",
                "classes": [top],
                "probs": np.array([p]),
                "top": top,
                "top_p": p,
                "uncertain": bool(p < UNCERTAIN_BELOW),
            }
    return out


def provisional_click(
    res, lat: float, lon: float, k: int, thumbnails: bool = True, heatmap: bool = True
) -> dict:
    """`click_result`'s dict for (lat, lon) from the nearest cell's stored vectors, with
    `provisional`: {"cell_id", "lat", "lon", "distance_km"}; no neighbourhood grid."""
    t0 = time.perf_counter()
    lat, lon = check_point(lat, lon, wrap=True)
    k = clamp_k(k)
    row, km = nearest_cell(res, lat, lon)
    emb = np.asarray(res.index.cell_vectors[row], np.float32)
    loc = np.asarray(res.index.cell_location[row], np.float32)
    timings = {"embed": _ms(t0)}
    origin = (lat, lon)
    weight = res.streetview_weight
    svs, thumbs, timings["streetviews"] = _views(
        res, place_query(emb, loc, weight), k, origin, thumbnails
    )
    places, overlay, timings["places_overlay"] = _places_and_overlay(
        res, emb, k, origin, heatmap, "similarity to the nearest cell (model loading)"
    )
    cell = res.cells.iloc[row]
    truth = truth_at(res, lat, lon)
    timings["total"] = _ms(t0)
    return {
        "kind": "point",
        "query": {"lat": lat, "lon": lon, "k": k},
        "provisional": {
            "cell_id": str(cell["cell_id"]),
            "lat": float(cell["lat"]),
            "lon": float(cell["lon"]),
            "distance_km": km,
        },
        "embedding": emb,
        "location_embedding": loc,
        "location_similarity": float(np.dot(emb, loc)),
        "neighbourhood": None,
        "places": places,
        "streetviews": svs,
        "streetview_query": describe(weight),
        "thumbnails": thumbs,
        "overlay": overlay,
        "predictions": mark_caveat(stored_predictions(res, row), truth),
        "truth": truth,
        "timings_ms": timings,
    }
