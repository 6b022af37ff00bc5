"""`PreparedTriples`: a torch Dataset over the shards written by `gair data prepare`, giving the
same sample dicts as `gair.world.WorldTriples` (normalised through the model config)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from gair.config import resolve_config
from gair.data.shards import PREPARED_FORMAT, PREPARED_FORMAT_VERSION
from gair.preprocess import preprocess_rs, preprocess_sv

# label values when no world is given to look them up
UNKNOWN_LABELS = {
    "koppen": (-1, torch.int64),
    "landcover": (-1, torch.int64),
    "elevation_m": (float("nan"), torch.float32),
    "population": (float("nan"), torch.float32),
    "is_land": (True, torch.bool),
}


class PreparedTriples(Dataset):
    """Samples: rs [C, S, S] float32 (normalised), rs_bbox [4] float64, sv [3, S', S'] float32
    (normalised), latlon [2] float64, label keys (looked up in `world` when given, else -1 / NaN),
    and `id` (str).

    The stored chips carry the manifest's bands; the model config's bands are selected from them
    by name (or through `preprocess.rs.source_bands`)."""

    def __init__(self, path: str | Path, model_config: str | dict, world=None):
        self.path = Path(path)
        try:
            self.manifest = json.loads((self.path / "manifest.json").read_text())
        except (OSError, ValueError) as err:
            raise FileNotFoundError(
                f"no prepared triples at {self.path} ({err}); run `gair data prepare`"
            ) from err
        if self.manifest.get("format") != PREPARED_FORMAT:
            raise ValueError(f"{self.path} is not a `gair data prepare` output")
        if self.manifest.get("format_version") != PREPARED_FORMAT_VERSION:
            raise ValueError(
                f"{self.path}: format version {self.manifest.get('format_version')}, this code "
                f"reads {PREPARED_FORMAT_VERSION}"
            )
        self.config = resolve_config(model_config)
        stored = list(self.manifest["bands"])
        wanted = list(self.config["rs"]["bands"])
        source = list(self.config["preprocess"]["rs"].get("source_bands") or [])
        self._select = None
        if stored != wanted and stored != source:
            missing = [b for b in wanted if b not in stored]
            if missing:
                raise ValueError(
                    f"the model wants RS bands {wanted}; {self.path} holds {stored} (no {missing})"
                )
            self._select = [stored.index(b) for b in wanted]
        self.world = world
        self.shards = self.manifest["shards"]
        counts = np.array([s["count"] for s in self.shards], np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)])
        self._handles: dict = {}
        self._pid = None
        self._ids: dict[int, list[str]] = {}

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"], state["_pid"] = {}, None  # reopened in each worker
        return state

    def _shard(self, k: int):
        from safetensors import safe_open

        if self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        if k not in self._handles:
            f = safe_open(str(self.path / self.shards[k]["file"]), framework="np")
            self._handles[k] = f
            self._ids[k] = json.loads(f.metadata()["ids"])
        return self._handles[k]

    def _locate(self, index: int) -> tuple[int, int]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        index %= n
        k = int(np.searchsorted(self._starts, index, side="right") - 1)
        return k, index - int(self._starts[k])

    def __getitems__(self, indices) -> list[dict]:
        rs, bbox, latlon, sv, ids = [], [], [], [], []
        for index in indices:
            k, j = self._locate(int(index))
            f = self._shard(k)
            rs.append(f.get_slice("rs")[j : j + 1])
            bbox.append(f.get_slice("rs_bbox")[j])
            latlon.append(f.get_slice("latlon")[j])
            sv.append(f.get_slice("sv")[j])
            ids.append(self._ids[k][j])
        chips = np.concatenate(rs)
        if self._select is not None:
            chips = chips[:, self._select]
        rs_t = preprocess_rs(chips, self.config)
        sv_t = preprocess_sv(np.stack(sv), self.config)
        ll = np.stack(latlon).astype(np.float64)
        labels = self._labels(ll)
        out = []
        for i in range(len(ids)):
            sample = {
                "rs": rs_t[i],
                "rs_bbox": torch.from_numpy(np.asarray(bbox[i], np.float64)),
                "sv": sv_t[i],
                "latlon": torch.from_numpy(ll[i]),
                "id": ids[i],
            }
            sample.update({k: v[i] for k, v in labels.items()})
            out.append(sample)
        return out

    def _labels(self, latlon: np.ndarray) -> dict[str, torch.Tensor]:
        if self.world is None:
            return {
                k: torch.full((len(latlon),), v, dtype=dt) for k, (v, dt) in UNKNOWN_LABELS.items()
            }
        lab = self.world.labels(latlon)
        return {k: torch.as_tensor(np.asarray(lab[k])) for k in UNKNOWN_LABELS}

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]
