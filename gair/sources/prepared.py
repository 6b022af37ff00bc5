"""An RS source over prepared triples (`gair data prepare` output): the chips are fixed, so a
point is answered by the one chip that holds it deepest inside (no tiling, no blending), which is
how the official release queries its own chips. Points outside every chip are not covered."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from gair.data.shards import PREPARED_FORMAT


class PreparedSource:
    kind = "prepared"
    has_labels = False
    tiled = False

    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()
        try:
            self.manifest = json.loads((self.path / "manifest.json").read_text())
        except (OSError, ValueError) as err:
            raise FileNotFoundError(f"no prepared triples at {self.path}: {err}") from err
        if self.manifest.get("format") != PREPARED_FORMAT:
            raise ValueError(f"{self.path} is not a `gair data prepare` output")
        self.bands = list(self.manifest["bands"])
        from safetensors import safe_open

        ids, bbox, shard_of, row_of = [], [], [], []
        for k, shard in enumerate(self.manifest["shards"]):
            with safe_open(str(self.path / shard["file"]), framework="np") as f:
                ids += json.loads(f.metadata()["ids"])
                b = f.get_tensor("rs_bbox")
            bbox.append(b)
            shard_of += [k] * len(b)
            row_of += list(range(len(b)))
        if not ids:
            raise ValueError(f"{self.path} holds no prepared triples")
        self.ids = ids
        self.rs_bbox = np.concatenate(bbox).astype(np.float64)  # [M, 4] (W, S, E, N)
        self._shard = np.asarray(shard_of, np.int64)
        self._row = np.asarray(row_of, np.int64)
        b = self.rs_bbox
        self.bounds4326 = (b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max())
        self.fingerprint = (
            "prepared-"
            + hashlib.sha256(
                json.dumps(self.manifest["shards"], sort_keys=True).encode()
            ).hexdigest()[:16]
        )

    def describe(self) -> dict:
        return {"kind": self.kind, "chips": len(self.ids), "bands": self.bands}

    def footprint(self):
        import shapely

        return shapely.union_all([shapely.box(*b) for b in self.rs_bbox])

    def locate(self, latlon: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """The chip holding each point [N, 2] deepest inside it -> [N] int64, -1 for none."""
        latlon = np.asarray(latlon, np.float64).reshape(-1, 2)
        out = np.full(len(latlon), -1, np.int64)
        w, s, e, n = (self.rs_bbox[:, i][None] for i in range(4))
        for a in range(0, len(latlon), chunk):
            lat, lon = latlon[a : a + chunk, :1], latlon[a : a + chunk, 1:]
            depth = np.minimum.reduce(
                [(lon - w) / (e - w), (e - lon) / (e - w), (lat - s) / (n - s), (n - lat) / (n - s)]
            )
            best = depth.argmax(axis=1)
            ok = depth[np.arange(len(best)), best] >= 0
            out[a : a + chunk] = np.where(ok, best, -1)
        return out

    def read(self, chip_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Chips by index -> (rs float32 [n, C, H, W] raw values, rs_bbox float64 [n, 4])."""
        from safetensors import safe_open

        chips = []
        for i in np.asarray(chip_ids, np.int64):
            shard = self.manifest["shards"][int(self._shard[i])]
            with safe_open(str(self.path / shard["file"]), framework="np") as f:
                chips.append(f.get_slice("rs")[int(self._row[i]) : int(self._row[i]) + 1])
        return np.concatenate(chips).astype(np.float32), self.rs_bbox[np.asarray(chip_ids)]

    def street_views(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The triples' street views: (ids, latlon float64 [M, 2], sv uint8 [M, H, W, 3])."""
        from safetensors import safe_open

        latlon, sv = [], []
        for shard in self.manifest["shards"]:
            with safe_open(str(self.path / shard["file"]), framework="np") as f:
                latlon.append(f.get_tensor("latlon"))
                sv.append(f.get_tensor("sv"))
        return list(self.ids), np.concatenate(latlon), np.concatenate(sv)

    def __repr__(self) -> str:
        return f"PreparedSource({str(self.path)!r}, {len(self.ids)} chips)"
