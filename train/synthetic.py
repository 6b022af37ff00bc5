"""A synthetic stand-in for the world's triples: same sample dict, no files, cheap to make.

Used by the `test` config (the test-suite trains without a built world) and by the training
benchmark to measure the model step without the on-the-fly world loader. Content depends on the
location, so training can learn something: a smooth random "world field" of a few channels is
defined on the sphere; an RS chip samples it on the chip's pixel grid (with some fine texture),
and a "street view" shows the field's values at the exact point (ground colour), at a second set
of channels (sky colour) and as a stripe frequency, plus noise.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch.utils.data import Dataset

from gair import geo

_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
CHIP_HALF_DEG = 32 / 15 / 2  # like the demo world: 32 px of 1/15 degree


def _unit(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)


class _Field:
    """channels x sum of plane waves on the unit sphere; coarse (continental) + fine (~200 km)."""

    def __init__(self, seed: int, channels: int = 8, waves: int = 24):
        rng = np.random.default_rng([seed, 12345])
        dirs = rng.normal(size=(waves, 3))
        self.dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
        self.scale = np.exp(rng.uniform(np.log(2.0), np.log(40.0), waves))
        self.phase = rng.uniform(0, 2 * np.pi, waves)
        self.amp = rng.normal(size=(channels, waves)) / np.sqrt(waves / 2)
        fine = rng.normal(size=(6, 3))
        self.fine_dirs = fine / np.linalg.norm(fine, axis=1, keepdims=True)
        self.fine_amp = rng.normal(size=(channels, 6)) * 0.15

    def __call__(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        p = _unit(lat, lon)  # (..., 3)
        waves = np.sin(p @ self.dirs.T * self.scale + self.phase)  # (..., K)
        fine = np.sin(p @ self.fine_dirs.T * 200.0)
        return np.moveaxis(waves @ self.amp.T + fine @ self.fine_amp.T, -1, 0)  # (C, ...)


class SyntheticTriples(Dataset):
    """Synthetic (RS chip, SV view, location) triples with the world dataset's sample dict.

    Args:
        split: "train", "val" or "test" (different random locations, same field).
        model_config: resolved model config (image sizes and band count come from it).
        n: number of locations.
        seed: field and locations seed. Train samples also depend on `set_epoch(e)`.
    """

    def __init__(self, split: str, model_config: dict, n: int, seed: int = 0):
        if split not in _SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}; splits: {sorted(_SPLIT_IDS)}")
        self.split, self.n, self.seed, self.epoch = split, int(n), int(seed), 0
        self.bands = len(model_config["rs"]["bands"])
        self.rs_size = model_config["rs"]["img_size"]
        self.sv_size = model_config["sv"]["img_size"]
        self.field = _Field(seed, channels=max(8, self.bands))
        rng = np.random.default_rng([seed, _SPLIT_IDS[split]])
        lim = np.sin(np.deg2rad(70.0))
        lat = np.rad2deg(np.arcsin(rng.uniform(-lim, lim, self.n)))
        lon = rng.uniform(-180.0, 180.0, self.n)
        self.latlon = np.stack([lat, lon], -1)  # [N, 2] (lat, lon): the split's locations

    @property
    def fingerprint(self) -> str:
        key = f"synthetic:{self.seed}:{self.split}:{self.n}:{self.bands}:{self.rs_size}:{self.sv_size}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        epoch = self.epoch if self.split == "train" else 0
        rng = np.random.default_rng([self.seed, _SPLIT_IDS[self.split], epoch, int(index)])
        lat, lon = self.latlon[index]
        # the chip is centred near (not on) the point, so the INR has to find the point inside it
        dlat, dlon = rng.uniform(-0.8, 0.8, 2) * CHIP_HALF_DEG
        clat = float(np.clip(lat + dlat, -88.0, 88.0))
        clon = float(geo.wrap_lon(lon + dlon))
        bbox = geo.bbox_around(np.array([clat, clon]), CHIP_HALF_DEG, CHIP_HALF_DEG)
        s = self.rs_size
        t = (np.arange(s) + 0.5) / s
        rows_lat = bbox[3] - t * (bbox[3] - bbox[1])
        cols_lon = geo.wrap_lon(bbox[0] + t * geo.bbox_width_deg(bbox))
        glat, glon = np.meshgrid(rows_lat, cols_lon, indexing="ij")
        rs = self.field(glat, glon)[: self.bands]
        rs = rs + 0.05 * rng.normal(size=rs.shape)

        here = self.field(np.array(lat), np.array(lon))  # (C,)
        v = self.sv_size
        yy, xx = np.meshgrid(np.linspace(0, 1, v), np.linspace(0, 1, v), indexing="ij")
        ground = np.tanh(here[:3])[:, None, None] * np.ones((3, v, v))
        stripes = np.sin(2 * np.pi * (3 + 2 * np.tanh(here[7])) * xx + rng.uniform(0, 2 * np.pi))
        ground = ground + 0.3 * stripes[None]
        sky = np.tanh(here[4:7])[:, None, None] * np.ones((3, v, v))
        horizon = 0.5 + 0.1 * np.tanh(here[3]) + rng.uniform(-0.05, 0.05)
        sv = np.where(yy[None] < horizon, sky, ground) + 0.2 * rng.normal(size=(3, v, v))
        return {
            "rs": torch.from_numpy(rs.astype(np.float32)),
            "rs_bbox": torch.from_numpy(np.asarray(bbox, dtype=np.float64)),
            "sv": torch.from_numpy(sv.astype(np.float32)),
            "latlon": torch.tensor([lat, lon], dtype=torch.float64),
        }
