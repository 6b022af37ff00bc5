"""Embeddings of points by each evaluated method, all computed from raw inputs.

- gair:          INR point embedding by the canonical tiling (`Embedder.point`).
- location-only: the location encoder (`Embedder.location`).
- center-pool:   mean of the RS token grid of a chip centred on the point (no point query).
- bilinear:      the token grid bilinearly sampled at the point (no learned decoder).
- random-init:   `gair`, with an untrained model of the same architecture.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gair.embed import Embedder
from gair.preprocess import preprocess_rs


@torch.no_grad()
def token_readout(
    embedder: Embedder, latlon: np.ndarray, mode: str, batch: int = 128
) -> np.ndarray:
    """center-pool / bilinear readouts of the RS tokens of chips centred on the points: [N, D]."""
    size = embedder.config["rs"]["img_size"]
    out = []
    for i in range(0, len(latlon), batch):
        rs, _ = embedder.world.chips(latlon[i : i + batch], size)
        tokens = embedder.model.encode_rs(preprocess_rs(rs, embedder.config).to(embedder.device))
        if mode == "center-pool":
            feats = tokens.mean((2, 3))
        else:  # the point is at the chip centre, chip coordinates (0, 0)
            grid = torch.zeros(tokens.shape[0], 1, 1, 2, dtype=tokens.dtype, device=tokens.device)
            feats = F.grid_sample(tokens, grid, mode="bilinear", align_corners=False)[:, :, 0, 0]
        out.append(feats.float().cpu().numpy())
    return np.concatenate(out)


def method_features(method: str, embedder: Embedder, latlon: np.ndarray) -> np.ndarray:
    if method in ("gair", "random-init"):
        return embedder.point(latlon)
    if method == "location-only":
        return embedder.location(latlon)
    if method in ("center-pool", "bilinear"):
        return token_readout(embedder, latlon, method)
    raise ValueError(f"unknown method {method!r}")


def render_queries(world, latlon: np.ndarray, size: int, seed: int = 7) -> list[np.ndarray]:
    """One rendered ground view per point (heading and render seed fixed by `seed`)."""
    rng = np.random.default_rng(seed)
    headings = rng.uniform(0, 360, len(latlon))
    return [
        world.render_view(ll, h, seed * 100003 + i, size=size)
        for i, (ll, h) in enumerate(zip(latlon, headings))
    ]
