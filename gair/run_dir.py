"""A run dir's files and identity, read without torch: `config.json` (model config, metrics,
the weights' SHA-256) next to `model.safetensors`. `gair.checkpoint` writes and loads them;
light readers (the app's first page, `gair --help`) use this module alone.

A save commits in one step, `config.json`: the new weights are first written complete beside the
old ones as `.model.safetensors.<sha256>.staged` (content-addressed), then config.json naming
that SHA-256 replaces the old one (the commit), then the staged file is renamed over
`model.safetensors`. A save killed before the commit leaves the old config and old weights (the
staged file is garbage, removed by the next save); one killed after it leaves the staged file
that config.json names: `read_run_config` finishes the rename (under the run dir's lock, when
the dir is writable) and `committed_weights` points a reader at it otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from pathlib import Path

from gair.atomic import locked_dir

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_sha256(value) -> bool:
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def staged_weights(run_dir: str | Path, sha256: str) -> Path:
    """Where a save stages the weights whose SHA-256 is `sha256` before committing them."""
    return Path(run_dir) / f".{WEIGHTS}.{sha256}.staged"


def committed_weights(run_dir: str | Path, meta: dict) -> Path:
    """The weights file config.json (`meta`) commits to: the staged file of a save killed after
    its commit, when it is still there, else model.safetensors."""
    sha = meta.get("weights_sha256")
    if is_sha256(sha) and staged_weights(run_dir, sha).is_file():
        return staged_weights(run_dir, sha)
    return Path(run_dir) / WEIGHTS


def settle_weights(run_dir: str | Path, meta: dict, discard: bool) -> None:
    """Finish a save killed after its commit (rename the staged weights config.json names over
    model.safetensors); with `discard`, also delete staged weights of saves killed before theirs.
    Call with the run dir locked (`gair.atomic.locked_dir`)."""
    run_dir = Path(run_dir)
    sha = meta.get("weights_sha256")
    for staged in run_dir.glob(f".{WEIGHTS}.*.staged"):
        if is_sha256(sha) and staged.name == staged_weights(run_dir, sha).name:
            with contextlib.suppress(FileNotFoundError):
                os.replace(staged, run_dir / WEIGHTS)
        elif discard:
            staged.unlink(missing_ok=True)


def read_run_config(run_dir: str | Path) -> dict:
    """Parse a run dir's config.json with clear errors (finishing a save killed after its
    commit, when the dir is writable and no save is running)."""
    meta = _parse_config(run_dir)
    if committed_weights(run_dir, meta).name != WEIGHTS:
        with contextlib.suppress(OSError), locked_dir(run_dir, wait=False) as held:
            if held:  # else a save is running, and it finishes the rename itself
                meta = _parse_config(run_dir)
                settle_weights(run_dir, meta, discard=False)
    return meta


def _parse_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG} in run dir {run_dir}: not a GAIR run directory")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(meta, dict) or "model" not in meta:
        raise ValueError(f"{path} has no 'model' config")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{path} has format_version {version!r}: not an integer")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {meta['format_version']}; this code reads <= {FORMAT_VERSION}"
        )
    return meta


def checkpoint_hash(run_dir: str | Path) -> str:
    """Identity of a checkpoint: the weights' SHA-256 recorded in config.json."""
    sha = read_run_config(run_dir).get("weights_sha256")
    if not is_sha256(sha):
        raise ValueError(f"{Path(run_dir) / CONFIG} records no valid weights_sha256")
    return sha


# -- the RS chip's ground size ------------------------------------------------------------------
# config.json's top-level `rs_chip` (written by `gair train` and `gair import-official`): how
# much ground one RS chip covers, which a raster source needs to cut chips the model knows.
#   km: the chip's north-south side on the ground, in km;
#   px: pixels across the model's input (rs.img_size); m_per_px = km * 1000 / px;
#   shape: "ground-square" (km x km on the ground, e.g. Sentinel-2 chips) or "degree-square"
#     (deg x deg of latitude/longitude, the demo world's plate carree chips: the east-west side
#     is then km * cos(latitude)); deg: the side in degrees (degree-square only);
#   source: how it was determined; optional source_px / source_gsd_m: the window read from the
#     source raster and its ground sample distance, before the resize to px.
RS_CHIP = "rs_chip"
CHIP_SHAPES = ("ground-square", "degree-square")


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def rs_chip_entry(km: float, px: int, shape: str, source: str, **extra) -> dict:
    """A validated `rs_chip` entry for config.json (see above)."""
    km = _positive(km, "rs_chip km (the chip's ground size)")
    if isinstance(px, bool) or not isinstance(px, int) or px <= 0:
        raise ValueError(f"rs_chip px must be a positive integer, got {px!r}")
    if shape not in CHIP_SHAPES:
        raise ValueError(f"rs_chip shape must be one of {CHIP_SHAPES}, got {shape!r}")
    entry = {"km": km, "px": px, "m_per_px": round(km * 1000.0 / px, 6), "shape": shape}
    entry.update({k: v for k, v in extra.items() if v is not None})
    entry["source"] = source
    return entry


def rs_chip(run_config: dict, where: str = "the run") -> dict | None:
    """The run's `rs_chip` entry (checked), or None for a run dir written before it existed."""
    entry = run_config.get(RS_CHIP)
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise ValueError(f"{where}'s config.json has a malformed {RS_CHIP!r}: {entry!r:.200}")
    _positive(entry.get("km"), f"{where}'s config.json {RS_CHIP}.km")
    return entry


def rs_chip_km(run_config: dict, chip_km: float | None = None, where: str = "the run dir") -> float:
    """Ground size in km of one RS chip's (north-south) side: `chip_km` when given (a command's
    --chip-km), else the run's recorded `rs_chip.km`. A run dir that records none (trained or
    imported before the entry existed, e.g. checkpoints/demo) raises a ValueError asking for
    --chip-km; reading such a run for anything else is unaffected."""
    if chip_km is not None:
        return _positive(chip_km, "--chip-km")
    entry = rs_chip(run_config, where)
    if entry is None:
        raise ValueError(
            f"{where} does not record the ground size of its RS chips ({RS_CHIP!r} in "
            f"{CONFIG}; runs trained or imported before this version lack it): pass --chip-km "
            "KM, the ground size in km of one chip's side as the model was trained (2.24 for "
            "the official release: 224 px of 10 m Sentinel-2)"
        )
    return float(entry["km"])


def heads_sha256(run_dir) -> str | None:
    """SHA-256 of the run's heads file as its config.json records it (None without heads):
    the `pred_` columns of an index are the current heads' only while this still matches."""
    meta = read_run_config(run_dir).get("heads") or {}
    return meta.get("sha256") if isinstance(meta, dict) else None
