"""Which street-view gallery an index gets: a CSV of the user's photos, the prepared triples'
photos, the demo world's rendered views, or none (a valid index: the panels that need a
gallery say so)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def empty_gallery(dim: int) -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.DataFrame(
        {"sv_id": pd.Series([], dtype=str), "lat": np.zeros(0), "lon": np.zeros(0)}
    )
    return frame, np.zeros((0, dim), np.float32)


def build_gallery(embedder, source, size: int, csv: str | None, out_dir: Path, progress=True):
    """-> (gallery frame, vectors [N, E] float32, manifest `streetviews.source`: "rendered",
    "images" or "none"). Photos get JPEG thumbnails under `out_dir/streetviews/`."""
    from index import gallery

    if csv is not None:
        frame, report = gallery.gallery_from_csv(csv)
        if report.get("skipped"):
            log.warning("street-view CSV %s: skipped %s", csv, report["skipped"])
        if frame.empty:
            raise ValueError(f"--gallery-csv {csv}: no usable rows ({report.get('skipped')})")
        frame, vecs = gallery.embed_image_gallery(
            embedder, frame, gallery.load_csv_image, out_dir, progress, report=report
        )
        return frame, vecs, "images"
    if source.kind == "prepared":
        frame, views = gallery.gallery_from_prepared(source.path)
        frame, vecs = gallery.embed_image_gallery(embedder, frame, views.load, out_dir, progress)
        return frame, vecs, "images"
    if source.kind == "world" and size > 0:
        frame, vecs = gallery.embed_gallery(embedder, source, size, progress)
        return frame, vecs, "rendered"
    frame, vecs = empty_gallery(embedder.dim)
    return frame, vecs, "none"
