"""Gallery street views: their images (rendered or read, LRU-cached per process), the
top-k views of an embedding and their thumbnails.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import numpy as np
import pandas as pd

from app.logic.runtime import _ms

THUMBNAILS_MAX = 12
_thumb_cache: OrderedDict = OrderedDict()
_thumb_lock = threading.Lock()
THUMB_CACHE_SIZE = 4096


def streetview_image(res, row) -> np.ndarray:
    """The gallery image of a street-view row: rendered from the world (source "rendered"), or
    read from its file for real galleries. Cached per process (LRU)."""
    key = str(row["sv_id"])
    with _thumb_lock:
        if key in _thumb_cache:
            _thumb_cache.move_to_end(key)
            return _thumb_cache[key]
    if "heading_deg" in row and "seed" in row and not pd.isna(row["heading_deg"]):
        size = min(
            int(res.index.embedder.config["sv"]["img_size"]), 128
        )  # as the index embedded it
        img = res.world.render_view(
            np.array([row["lat"], row["lon"]]),
            float(row["heading_deg"]),
            int(row["seed"]),
            size=size,
        )
    else:
        from gair.images import read_image

        img = read_image(row["path"])
    with _thumb_lock:
        _thumb_cache[key] = img
        while len(_thumb_cache) > THUMB_CACHE_SIZE:
            _thumb_cache.popitem(last=False)
    return img


def is_rendered(res) -> bool:
    return res.manifest.get("streetviews", {}).get("source", "rendered") == "rendered"


def _top_streetviews(res, vec: np.ndarray, k: int, origin=None) -> pd.DataFrame:
    return res.index.search_streetviews(vec, k, origin=origin)


def _thumbnails(res, svs: pd.DataFrame, n: int) -> list[np.ndarray]:
    return [streetview_image(res, row) for _, row in svs.head(n).iterrows()]


def _views(res, vec, k, origin, thumbnails: bool) -> tuple:
    t = time.perf_counter()
    svs = _top_streetviews(res, vec, k, origin=origin)
    thumbs = _thumbnails(res, svs, min(k, THUMBNAILS_MAX)) if thumbnails else []
    return svs, thumbs, _ms(t)
