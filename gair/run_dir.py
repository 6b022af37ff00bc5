"""A run dir's files and identity, read without torch: `config.json` (model config, metrics,
the weights' SHA-256) next to `model.safetensors`. `gair.checkpoint` writes and loads them;
light readers (the app's first page, `gair --help`) use this module alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 1


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_run_config(run_dir: str | Path) -> dict:
    """Parse a run dir's config.json with clear errors."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG} in run dir {run_dir}: not a GAIR run directory")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(meta, dict) or "model" not in meta:
        raise ValueError(f"{path} has no 'model' config")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {meta['format_version']}; this code reads <= {FORMAT_VERSION}"
        )
    return meta


def checkpoint_hash(run_dir: str | Path) -> str:
    """Identity of a checkpoint: the weights' SHA-256 recorded in config.json."""
    return read_run_config(run_dir)["weights_sha256"]
