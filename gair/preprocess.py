"""Input preprocessing named in a run's config (`config["preprocess"]`), so that the model, the
index build, evaluation and the app all turn raw inputs into model inputs the same way.

RS: raw chip [C, H, W] or [B, C, H, W] (any float units) -> normalised [B, C, S, S].
SV: uint8 RGB images [H, W, 3] (a list, or an array [B, H, W, 3]) -> normalised [B, 3, S, S].

`preprocess.rs` keys: `kind` (a registered normalizer: "standardize", "s2-quantize"), its
parameters (`mean`, `std`), `resize` (interpolation mode, default bilinear) and optionally
`source_bands`: the band list of raw chips that may carry more bands than the model uses
(e.g. 12-band Sentinel-2 L2A); the model's bands are then selected by name before normalising.
`PREPROCESS_PRESETS["official"]` is the official GAIR release's preprocessing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

# The official GAIR release's preset and constants live in the torch-free module
# gair.preprocess_presets (gair.config imports it); re-exported here.
from gair.preprocess_presets import (  # noqa: F401
    OFFICIAL_RS_BANDS,
    OFFICIAL_RS_MEAN,
    OFFICIAL_RS_STD,
    OFFICIAL_SV_MEAN,
    OFFICIAL_SV_STD,
    PREPROCESS_PRESETS,
    S2_L2A_BANDS,
    preprocess_preset,
)

# name -> fn(rs [B, C, H, W] float32, cfg dict) -> [B, C, H, W]
RS_NORMALIZERS: dict[str, Callable[[torch.Tensor, dict], torch.Tensor]] = {}


def register_rs_normalizer(name: str):
    def wrap(fn):
        RS_NORMALIZERS[name] = fn
        return fn

    return wrap


def _per_band(values: Sequence[float], rs: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=rs.dtype, device=rs.device).view(1, -1, 1, 1)


@register_rs_normalizer("standardize")
def _standardize(rs: torch.Tensor, cfg: dict) -> torch.Tensor:
    return (rs - _per_band(cfg["mean"], rs)) / _per_band(cfg["std"], rs)


@register_rs_normalizer("s2-quantize")
def _s2_quantize(rs: torch.Tensor, cfg: dict) -> torch.Tensor:
    """The official GAIR release's Sentinel-2 scaling: per band, map [mean - 2 std, mean + 2 std]
    linearly to [0, 255], clip, round down to uint8, divide by 255 -> values k/255 in [0, 1].

    Computed in float64 so the rounding down matches the reference's (numpy) arithmetic."""
    x = rs.to(torch.float64)
    mean, std = _per_band(cfg["mean"], x), _per_band(cfg["std"], x)
    low, high = mean - 2 * std, mean + 2 * std
    levels = torch.floor(((x - low) / (high - low) * 255.0).clamp(0.0, 255.0))
    return levels.to(rs.dtype) / 255.0


def _resize(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode=mode, align_corners=False)


def preprocess_rs(rs, model_config: dict) -> torch.Tensor:
    """Raw RS chip(s) -> model input [B, C, S, S] by `model_config["preprocess"]["rs"]`."""
    rs = torch.as_tensor(
        np.asarray(rs) if not isinstance(rs, torch.Tensor) else rs, dtype=torch.float32
    )
    if rs.ndim == 3:
        rs = rs.unsqueeze(0)
    bands = list(model_config["rs"]["bands"])
    cfg = model_config["preprocess"]["rs"]
    source = list(cfg.get("source_bands") or [])
    if rs.ndim == 4 and source and rs.shape[1] == len(source) and source != bands:
        rs = rs[:, [source.index(b) for b in bands]]  # select the model's bands by name
    if rs.ndim != 4 or rs.shape[1] != len(bands):
        accepted = f"[B, {len(bands)}, H, W] for bands {bands}"
        if source and source != bands:
            accepted += f" or [B, {len(source)}, H, W] for source bands {source}"
        raise ValueError(f"RS chip must be {accepted}, got {tuple(rs.shape)}")
    kind = cfg.get("kind", "standardize")
    if kind not in RS_NORMALIZERS:
        raise ValueError(f"unknown RS preprocessing {kind!r}; known: {sorted(RS_NORMALIZERS)}")
    out = RS_NORMALIZERS[kind](rs, cfg)
    return _resize(out, model_config["rs"]["img_size"], cfg.get("resize", "bilinear"))


def _stack_images(images) -> torch.Tensor:
    if isinstance(images, np.ndarray) and images.ndim == 4:
        arr = images
    else:
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        arrs = [np.asarray(im) for im in images]
        if not arrs:
            raise ValueError("no street-view images given")
        shapes = {a.shape for a in arrs}
        if len(shapes) != 1:
            # different sizes: each is resized on its own later
            return [torch.from_numpy(_check_rgb(a)).permute(2, 0, 1).float() for a in arrs]
        arr = np.stack(arrs)
    for a in arr[:1]:
        _check_rgb(a)
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()


def _check_rgb(a: np.ndarray) -> np.ndarray:
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"street-view image must be RGB [H, W, 3], got shape {a.shape}")
    if a.dtype != np.uint8:
        raise ValueError(f"street-view image must be uint8 0..255, got {a.dtype}")
    return a


def preprocess_sv(images, model_config: dict) -> torch.Tensor:
    """uint8 RGB images -> model input [B, 3, S, S] by `model_config["preprocess"]["sv"]`:
    x = (pixel / scale - mean) / std, then resized to S (mode `resize`, align_corners=False)."""
    cfg = model_config["preprocess"]["sv"]
    size = model_config["sv"]["img_size"]
    mode = cfg.get("resize", "bilinear")
    stacked = _stack_images(images)
    items = stacked if isinstance(stacked, list) else [stacked]
    out = []
    for x in items:
        x = x if x.ndim == 4 else x.unsqueeze(0)
        mean, std = _per_band(cfg["mean"], x), _per_band(cfg["std"], x)
        out.append(_resize((x / cfg.get("scale", 255.0) - mean) / std, size, mode))
    return torch.cat(out, 0)
