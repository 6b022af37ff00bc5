"""The output of `gair data prepare`: the format's name and version, the shard writer
(safetensors, each written to a temp name and renamed) and recognising a prepared folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from gair.atomic import atomic_path

PREPARED_FORMAT = "gair-prepared-triples"
PREPARED_FORMAT_VERSION = 1


class _ShardWriter:
    def __init__(self, out: Path, shard_size: int):
        self.out, self.size = out, shard_size
        self.buf: dict[str, list] = {
            k: [] for k in ("rs", "rs_bbox", "latlon", "sv", "coverage", "id")
        }
        self.shards: list[dict] = []

    def add(self, **sample) -> None:
        for k, v in sample.items():
            self.buf[k].append(v)
        if len(self.buf["id"]) >= self.size:
            self.flush()

    def flush(self) -> None:
        from safetensors.numpy import save_file

        n = len(self.buf["id"])
        if n == 0:
            return
        name = f"shard-{len(self.shards):05d}.safetensors"
        tensors = {
            "rs": np.stack(self.buf["rs"]).astype(np.float32),
            "rs_bbox": np.asarray(self.buf["rs_bbox"], np.float64),
            "latlon": np.asarray(self.buf["latlon"], np.float64),
            "sv": np.stack(self.buf["sv"]).astype(np.uint8),
            "coverage": np.asarray(self.buf["coverage"], np.float32),
        }
        meta = {"format": PREPARED_FORMAT, "ids": json.dumps(self.buf["id"])}
        with atomic_path(self.out / name) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        digest = hashlib.sha256((self.out / name).read_bytes()).hexdigest()
        self.shards.append({"file": name, "count": n, "sha256": digest})
        self.buf = {k: [] for k in self.buf}


def _looks_prepared(path: Path) -> bool:
    try:
        return json.loads((path / "manifest.json").read_text())["format"] == PREPARED_FORMAT
    except (OSError, ValueError, KeyError, TypeError):
        return False
