"""Places (grid cells) similar to an embedding: the top-k table and the similarity heatmap
over all cells.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from app import raster
from app.logic.runtime import _ms

SIMILARITY_FLOOR_QUANTILE = 0.8  # the similarity overlay colours the top 20% of all cells


def similarity_overlay(res, sims: np.ndarray, title: str) -> dict:
    """One colour-mapped PNG of per-cell similarities (Web Mercator rows) and its legend."""
    sims = np.asarray(sims, np.float32)
    vmax = float(sims.max()) if len(sims) else 1.0
    vmin = float(np.quantile(sims, SIMILARITY_FLOOR_QUANTILE)) if len(sims) else 0.0
    if vmax - vmin < 1e-6:
        vmin = vmax - 1e-3
    png = res.raster.continuous(sims, vmin, vmax, "inferno", alpha=(90, 235), hide_below=True)
    legend = raster.Legend(title=title, kind="continuous", vmin=vmin, vmax=vmax, colormap="inferno")
    return {"png": png, "legend": legend, "bounds": res.raster.bounds}


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


def exact_cells(res) -> bool:
    """True when the cell index is exact (FAISS Flat): its top-k equal a sort of all scores."""
    return str(res.manifest.get("cells", {}).get("factory", "")).startswith("Flat")


def top_places(
    res, vec: np.ndarray, k: int, origin=None, sims: np.ndarray | None = None
) -> pd.DataFrame:
    """Top-k cells for an embedding. With the scores of all cells at hand (computed anyway for
    the heatmap) and an exact index, the top-k come from those scores: one pass over the cell
    vectors per query instead of two. Otherwise the index's own search (IVF/HNSW) answers."""
    if sims is None or not exact_cells(res):
        return _tidy_places(res.index.search_cells(vec, k, origin=origin))
    from gair import geo

    k = max(1, min(int(k), len(sims)))
    idx = np.argpartition(-sims, k - 1)[:k]
    idx = idx[np.argsort(-sims[idx], kind="stable")]
    hits = res.cells.iloc[idx].drop(columns=["geometry"], errors="ignore").reset_index(drop=True)
    hits.insert(0, "similarity", sims[idx].astype(float))
    hits.insert(0, "rank", np.arange(1, len(hits) + 1))
    if origin is not None:
        hits["distance_km"] = geo.haversine_km(
            np.asarray(origin, np.float64)[None], hits[["lat", "lon"]].to_numpy()
        )
    return _tidy_places(hits)


def _places_and_overlay(res, vec, k, origin, heatmap: bool, title: str) -> tuple:
    t = time.perf_counter()
    sims = res.index.similarity_to_all_cells(vec)
    places = top_places(res, vec, k, origin=origin, sims=sims)
    overlay = similarity_overlay(res, sims, title) if heatmap else None
    return places, overlay, _ms(t)
