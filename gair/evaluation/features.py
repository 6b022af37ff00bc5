"""What each evaluated method gives a probe for a point, all computed from raw inputs.

A feature set is named by (method, input):
- ("gair", "inr"):            the INR point embedding (`Embedder.point`, canonical tiling);
- ("gair", "location"):       GAIR's own location encoder (`Embedder.location`);
- ("gair", "inr+location"):   both, concatenated;
- ("random-init", "inr"):     the INR embedding of an untrained model of the same architecture;
- ("raw-pixels", "pixels"):   band means and standard deviations of the chip centred on the point;
- ("center-pool", "tokens"):  mean of the RS token grid of that chip (no point query);
- ("bilinear", "tokens"):     the token grid bilinearly sampled at the point (no learned decoder);
- ("geoclip", "location"):    GeoCLIP's pretrained location encoder (`geoclip_location`);
- ("coordinates", "xyz"):     the point's unit vector on the sphere (for kNN on coordinates).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gair.embed import Embedder
from gair.preprocess import preprocess_rs
from gair.world import grid

FEATURE_SETS = (
    ("gair", "inr"),
    ("gair", "location"),
    ("gair", "inr+location"),
    ("random-init", "inr"),
    ("raw-pixels", "pixels"),
    ("center-pool", "tokens"),
    ("bilinear", "tokens"),
    ("geoclip", "location"),
    ("coordinates", "xyz"),
)


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
            where = torch.zeros(tokens.shape[0], 1, 1, 2, dtype=tokens.dtype, device=tokens.device)
            feats = F.grid_sample(tokens, where, mode="bilinear", align_corners=False)[:, :, 0, 0]
        out.append(feats.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, embedder.dim), np.float32)


def pixel_stats(world, latlon: np.ndarray, size_px: int, batch: int = 512) -> np.ndarray:
    """Per-band mean and standard deviation of the chip centred on each point: [N, 2C]."""
    out = []
    for i in range(0, len(latlon), batch):
        rs, _ = world.chips(latlon[i : i + batch], size_px)
        out.append(np.concatenate([rs.mean((2, 3)), rs.std((2, 3))], 1))
    return np.concatenate(out).astype(np.float32)


def features(
    method: str, inp: str, latlon: np.ndarray, embedder: Embedder, random_embedder=None, done=None
) -> np.ndarray:
    """Features [N, D] float32 of a feature set (see the module docstring) at points [N, 2].
    `done`: {(method, input): features} already computed at the same points (reused)."""
    key = (method, inp)
    if key == ("gair", "inr+location") and done:
        parts = [done.get(("gair", "inr")), done.get(("gair", "location"))]
        if all(p is not None for p in parts):
            return np.concatenate(parts, 1)
    if key == ("gair", "inr"):
        return embedder.point(latlon)
    if key == ("gair", "location"):
        return embedder.location(latlon)
    if key == ("gair", "inr+location"):
        return np.concatenate([embedder.point(latlon), embedder.location(latlon)], 1)
    if key == ("random-init", "inr"):
        if random_embedder is None:
            raise ValueError("the random-init baseline needs random_embedder")
        return random_embedder.point(latlon)
    if key == ("raw-pixels", "pixels"):
        return pixel_stats(embedder.world, latlon, int(embedder.config["rs"]["img_size"]))
    if key in (("center-pool", "tokens"), ("bilinear", "tokens")):
        return token_readout(embedder, latlon, method)
    if key == ("geoclip", "location"):
        from gair.evaluation.geoclip_location import geoclip_features

        return geoclip_features(latlon)
    if key == ("coordinates", "xyz"):
        return grid.unit_vectors(latlon[:, 0], latlon[:, 1]).astype(np.float32)
    raise ValueError(f"unknown feature set {key!r}; known: {list(FEATURE_SETS)}")


def render_queries(
    world, latlon: np.ndarray, size: int, seed: int = 7, signs: bool = True
) -> np.ndarray:
    """One rendered ground view per point, uint8 [N, size, size, 3] (heading and render seed
    fixed by `seed`; `signs=False` renders the very same views without roadside signs)."""
    rng = np.random.default_rng(seed)
    headings = rng.uniform(0, 360, len(latlon))
    seeds = seed * 100003 + np.arange(len(latlon))
    return world.render_views(latlon, headings, seeds, size, signs=signs)
