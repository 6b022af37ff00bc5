"""`WorldTriples`: (RS chip, rendered street view, location) training triples from the demo world.

Samples are TorchGeo-style dicts of tensors:
  rs [C, S, S] float32 (normalised by the model config), rs_bbox [4] float64 (west, south, east,
  north), sv [3, S', S'] float32 (normalised), latlon [2] float64 (lat, lon), and the labels
  koppen, landcover (int64), elevation_m, population (float32), is_land (bool).

Randomness is a pure function of (seed, epoch, index) for the train split (a random position of
the chip among those clear of every held-out block, see `gair.world.heldout_mask`; a random
heading and view seed) and of (seed, index) for val/test (fixed per index), so results do not depend on DataLoader workers or batch composition. Batches are built
vectorised through `__getitems__` (used by torch's DataLoader), which is what makes rendering
fast enough; `__getitem__` gives the same sample for one index.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from gair.config import resolve_config
from gair.preprocess import preprocess_rs, preprocess_sv
from gair.world import heldout_mask
from gair.world.render_noise import _keys, _uniforms
from gair.world.world import World

LABEL_KEYS = ("koppen", "landcover", "elevation_m", "population", "is_land")
_SPLITS = ("train", "val", "test", "unseen", "buffer", "all")


class WorldTriples(Dataset):
    """Triples over the world's street-view locations of one split.

    Args:
        world: a `World` or the path of one.
        split: "train", "val", "test", "unseen" (the stress-test region); "buffer" or "all" for
            analysis.
        model_config: preset name or config dict; fixes the chip size (rs.img_size), view size
            (sv.img_size), bands and normalisation (`gair.preprocess`).
        length: dataset length (default: the number of locations); index i uses location
            i % n_locations.
        seed: base seed of all randomness.
    """

    def __init__(
        self,
        world: World | str | Path,
        split: str,
        model_config: str | dict,
        length: int | None = None,
        seed: int = 0,
    ):
        self.world = world if isinstance(world, World) else World.open(world)
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
        self.split = split
        self.config = resolve_config(model_config)
        bands = self.config["rs"]["bands"]
        if list(bands) != list(self.world.bands):
            raise ValueError(
                f"model config expects RS bands {bands}, the demo world provides "
                f"{self.world.bands}: use a config with rs.bands = {self.world.bands}"
            )
        self.chip_px = int(self.config["rs"]["img_size"])
        self.sv_px = int(self.config["sv"]["img_size"])
        sv = self.world.streetviews
        sel = sv if split == "all" else sv[sv["split"] == split]
        if len(sel) == 0:
            raise ValueError(f"the world has no street-view locations in split {split!r}")
        self.ids = sel["id"].to_numpy()
        self.latlon = sel[["lat", "lon"]].to_numpy(np.float64)
        self.windows = None
        if split == "train":  # chips go only where they show no held-out pixel
            windows = self.world.splits.windows(self.latlon, self.chip_px)
            usable = windows.any(axis=(1, 2))
            if not usable.all():  # only with chips larger than the world's split was built for
                warnings.warn(
                    f"{int((~usable).sum())} training locations have no {self.chip_px} px chip "
                    "clear of the held-out blocks and are left out",
                    stacklevel=2,
                )
                self.ids, self.latlon, windows = (
                    self.ids[usable],
                    self.latlon[usable],
                    windows[usable],
                )
            self.windows = np.packbits(windows.reshape(len(windows), -1), axis=1)
        labels = self.world.labels(self.latlon)
        self.labels = {k: labels[k] for k in LABEL_KEYS}
        self.length = len(self.ids) if length is None else int(length)
        if self.length <= 0:
            raise ValueError(f"length must be positive, got {length!r}")
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """New random offsets/headings for the train split (call once per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def _draws(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.split == "train":
            keys = _keys(np.full(len(idx), self.seed), np.full(len(idx), self.epoch), idx)
        else:  # fixed per index
            keys = _keys(np.full(len(idx), self.seed), np.full(len(idx), -1), idx)
        u = _uniforms(keys, 4)
        if self.windows is None:
            offsets = u[:, :2] * 2.0 - 1.0
        else:
            offsets = self._clear_offsets(idx % len(self.ids), u[:, 0])
        headings = u[:, 2] * 360.0
        view_seeds = (u[:, 3] * 2**31).astype(np.int64)
        return offsets, headings, view_seeds

    def _clear_offsets(self, loc: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Offsets of chip windows drawn uniformly among each location's clear ones."""
        s = self.chip_px
        bits = np.unpackbits(self.windows[loc], axis=1, count=s * s).astype(bool)
        counts = bits.sum(axis=1)
        rank = np.minimum((u * counts).astype(np.int64), counts - 1)
        flat = np.argmax(np.cumsum(bits, axis=1) > rank[:, None], axis=1)
        pick = np.stack([flat // s, flat % s], 1)
        return heldout_mask.window_offsets(self.latlon[loc], s, pick)

    def __getitems__(self, indices) -> list[dict]:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < -self.length or idx.max() >= self.length):
            raise IndexError(f"index out of range for a dataset of {self.length}")
        idx = idx % self.length
        loc = idx % len(self.ids)
        latlon = self.latlon[loc]
        offsets, headings, view_seeds = self._draws(idx)
        chips, bbox = self.world.chips(latlon, self.chip_px, offsets)
        views = self.world.render_views(latlon, headings, view_seeds, self.sv_px)
        rs = preprocess_rs(chips, self.config)
        sv = preprocess_sv(views, self.config)
        bbox_t = torch.from_numpy(bbox)
        ll_t = torch.from_numpy(latlon)
        labels = {k: torch.from_numpy(np.asarray(v[loc])) for k, v in self.labels.items()}
        out = []
        for i in range(len(idx)):
            sample = {"rs": rs[i], "rs_bbox": bbox_t[i], "sv": sv[i], "latlon": ll_t[i]}
            sample.update({k: v[i] for k, v in labels.items()})
            out.append(sample)
        return out

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]
