"""Gallery street views: their images (rendered or read, LRU-cached per process), the
top-k views of an embedding and their thumbnails.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

from app.logic.runtime import _ms

THUMBNAILS_MAX = 12
_thumb_cache: OrderedDict = OrderedDict()
_thumb_lock = threading.Lock()
THUMB_CACHE_SIZE = 4096


def streetview_image(res, row) -> np.ndarray:
    """The gallery image of a street-view row: rendered from the world (source "rendered"), or
    read from its file (`path`, relative to the index dir) for real galleries. Cached per
    process (LRU, per index)."""
    key = (str(getattr(res.index, "dir", "")), str(row["sv_id"]))
    with _thumb_lock:
        if key in _thumb_cache:
            _thumb_cache.move_to_end(key)
            return _thumb_cache[key]
    rendered = "heading_deg" in row and "seed" in row and not pd.isna(row["heading_deg"])
    if rendered and res.world is None:  # a rendered gallery without its world: a blank tile
        return np.full((64, 64, 3), 96, np.uint8)
    if rendered:
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

        path = Path(str(row["path"]))  # relative to the index dir (a thumbnail inside it)
        img = read_image(path if path.is_absolute() else res.index.dir / path)
    with _thumb_lock:
        _thumb_cache[key] = img
        while len(_thumb_cache) > THUMB_CACHE_SIZE:
            _thumb_cache.popitem(last=False)
    return img


def is_rendered(res) -> bool:
    return res.manifest.get("streetviews", {}).get("source", "rendered") == "rendered"


def has_gallery(res) -> bool:
    return len(res.gallery) > 0


def _top_streetviews(res, vec: np.ndarray, k: int, origin=None) -> pd.DataFrame:
    if not has_gallery(res):  # an index without a gallery: no views, not a FAISS error
        cols = ["rank", "similarity", *[c for c in res.gallery.columns if c != "geometry"]]
        return pd.DataFrame(columns=cols + (["distance_km"] if origin is not None else []))
    return res.index.search_streetviews(vec, k, origin=origin)


def _thumbnails(res, svs: pd.DataFrame, n: int) -> list[np.ndarray]:
    return [streetview_image(res, row) for _, row in svs.head(n).iterrows()]


def _views(res, vec, k, origin, thumbnails: bool) -> tuple:
    t = time.perf_counter()
    svs = _top_streetviews(res, vec, k, origin=origin)
    thumbs = _thumbnails(res, svs, min(k, THUMBNAILS_MAX)) if thumbnails else []
    return svs, thumbs, _ms(t)
