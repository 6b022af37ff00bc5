"""Places (grid cells) similar to an embedding: the top-k table and the similarity heatmap
over the cells the map draws.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from app import raster
from app.logic.runtime import _ms

SIMILARITY_FLOOR_QUANTILE = 0.8  # the similarity overlay colours the top 20% of all cells


def similarity_overlay(res, sims: np.ndarray, title: str) -> dict:
    """One colour-mapped PNG of per-cell similarities (Web Mercator rows) and its legend;
    `sims` [n_cells] or only for the cells drawn [len(res.raster.rows)], whose quantiles then
    stand for all cells' (they are spread over the whole map, at most one per pixel)."""
    sims = np.asarray(sims, np.float32)
    vmax = float(sims.max()) if len(sims) else 1.0
    vmin = float(np.quantile(sims, SIMILARITY_FLOOR_QUANTILE)) if len(sims) else 0.0
    if vmax - vmin < 1e-6:
        vmin = vmax - 1e-3
    png = res.raster.continuous(sims, vmin, vmax, "inferno", alpha=(90, 235), hide_below=True)
    legend = raster.Legend(title=title, kind="continuous", vmin=vmin, vmax=vmax, colormap="inferno")
    return {"png": png, "legend": legend, "bounds": res.raster.bounds}


def similarity_layer(res, vec: np.ndarray, title: str) -> dict:
    """The similarity overlay of an embedding [E], redrawable at any zoom (`draw`: the same
    colours over other cells, `app.logic.detail`)."""
    vec = np.asarray(vec, np.float32)
    overlay = similarity_overlay(res, res.heat_similarity(vec), title)
    vmin, vmax = overlay["legend"].vmin, overlay["legend"].vmax

    def draw(raster_, rows):
        sims = res.index.similarity_to_rows(vec, rows)
        return raster_.continuous(sims, vmin, vmax, "inferno", alpha=(90, 235), hide_below=True)

    return {**overlay, "draw": draw, "key": ("similarity", vec.tobytes(), title)}


PLACE_COLUMNS = (
    "rank",
    "similarity",
    "cell_id",
    "lat",
    "lon",
    "distance_km",
    "country",
    "continent",
    "koppen",
    "landcover",
    "elevation_m",
)


def _tidy_places(places: pd.DataFrame) -> pd.DataFrame:
    """The columns the panels show, with class codes as names (Koppen letter, IGBP class)."""
    from gair.world.world import IGBP_CLASSES, KOPPEN_CLASSES

    keep = [c for c in PLACE_COLUMNS if c in places]
    keep += [c for c in places.columns if c.startswith("pred_") and c not in keep]
    out = places[keep].copy()
    for col, names in (("koppen", KOPPEN_CLASSES), ("landcover", IGBP_CLASSES)):
        if col in out and pd.api.types.is_integer_dtype(out[col]):
            codes = out[col].to_numpy()
            out[col] = [names[c] if 0 <= c < len(names) else str(c) for c in codes]
    return out


def top_places(res, vec: np.ndarray, k: int, origin=None) -> pd.DataFrame:
    """Top-k cells for an embedding (the index's search: int8 shortlist, float16 re-rank)."""
    return _tidy_places(res.index.search_cells(vec, k, origin=origin))


def _places_and_overlay(res, vec, k, origin, heatmap: bool, title: str) -> tuple:
    t = time.perf_counter()
    places = top_places(res, vec, k, origin=origin)
    overlay = similarity_layer(res, vec, title) if heatmap else None
    return places, overlay, _ms(t)
