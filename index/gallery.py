"""The street-view gallery of an index: rendered ground views at the world's street-view
locations (demo world), embedded with `Embedder.street_view`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

GALLERY_SEED = 20260101


def gallery_views(world, size: int) -> pd.DataFrame:
    """A deterministic subset of the world's street-view locations, each with a heading and a
    render seed: columns sv_id, lat, lon, split, heading_deg, seed."""
    table = world.streetviews
    frame = pd.DataFrame(
        {
            "sv_id": np.asarray(table["id"]),
            "lat": np.asarray(table["lat"]),
            "lon": np.asarray(table["lon"]),
        }
    )
    frame["split"] = np.asarray(table["split"]) if "split" in table else "unknown"
    rng = np.random.default_rng(GALLERY_SEED)
    if size < len(frame):
        frame = frame.iloc[np.sort(rng.choice(len(frame), size=size, replace=False))].reset_index(
            drop=True
        )
    frame["heading_deg"] = rng.uniform(0, 360, len(frame)).round(1)
    frame["seed"] = np.arange(len(frame), dtype=np.int64) + GALLERY_SEED
    return frame


def render_views(world, frame: pd.DataFrame, size: int) -> np.ndarray:
    """Rendered views of gallery rows, uint8 [N, size, size, 3] (batched renderer)."""
    latlon = frame[["lat", "lon"]].to_numpy(np.float64)
    return world.render_views(
        latlon, frame["heading_deg"].to_numpy(), frame["seed"].to_numpy(), size=size
    )


def embed_gallery(embedder, world, size: int, progress: bool = True, batch: int = 256):
    """Gallery table and its SV embeddings [N, E] (float32, L2-normalised)."""
    frame = gallery_views(world, size)
    px = embedder.config["sv"]["img_size"]
    chunks = []
    for start in tqdm(
        range(0, len(frame), batch), desc="embedding street views", disable=not progress
    ):
        part = frame.iloc[start : start + batch]
        chunks.append(embedder.street_view(render_views(world, part, px)))
    vecs = np.concatenate(chunks) if chunks else np.zeros((0, embedder.dim), np.float32)
    frame["source"] = "rendered"
    return frame, vecs
