"""The world directory's format: its layer files, the manifest (reading it, checking that a
directory holds a complete world) and the entries and fingerprint the build writes into it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

WORLD_FORMAT = "gair-world"
WORLD_FORMAT_VERSION = 4
# 2: H3 res-1 splits with clear-window chips (no buffer ring)
# 3: regional roadside sign styles, stored per country in the manifest (render_signs)
# 4: geographic continent labels (per-country longitude parts: Siberia is Asia; layers.py)
DEFAULT_WORLD_DIR = Path("data/world")

LAYER_FILES = {
    "rs": "rs.npy",
    "koppen": "koppen.npy",
    "landcover": "landcover.npy",
    "elevation": "elevation.npy",
    "population": "population.npy",
    "country": "country.npy",
    "land": "land.npy",
}


def _save_npy(out: Path, name: str, arr: np.ndarray, extra: dict | None = None) -> dict:
    path = out / LAYER_FILES[name]
    arr = np.ascontiguousarray(arr)
    np.save(path, arr, allow_pickle=False)
    entry = {
        "file": path.name,
        "dtype": str(arr.dtype),
        "shape": list(arr.shape),
        "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(memoryview(arr).cast("B")).hexdigest(),
    }
    entry.update(extra or {})
    return entry


def _fingerprint(manifest: dict) -> str:
    h = hashlib.sha256()
    h.update(f"{WORLD_FORMAT}:{WORLD_FORMAT_VERSION}".encode())
    h.update(json.dumps(manifest["build_params"], sort_keys=True).encode())
    h.update(json.dumps(manifest.get("countries", []), sort_keys=True).encode())
    for name in sorted(manifest["layers"]):
        h.update(manifest["layers"][name]["sha256"].encode())
    h.update(manifest["streetviews"]["sha256"].encode())
    return h.hexdigest()[:16]


def read_manifest(path: Path) -> dict | None:
    try:
        with open(Path(path) / "manifest.json", encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def check_complete(path: str | Path) -> tuple[dict | None, str]:
    """(manifest, "") when `path` holds a complete world of this format, else (None, why)."""
    path = Path(path)
    if not path.is_dir():
        return None, f"{path} does not exist"
    manifest = read_manifest(path)
    if manifest is None:
        return None, f"{path} has no readable manifest.json"
    if manifest.get("format") != WORLD_FORMAT:
        return None, f"{path}/manifest.json is not a demo-world manifest"
    if manifest.get("format_version") != WORLD_FORMAT_VERSION:
        return None, (
            f"{path} holds world format version {manifest.get('format_version')}, this code "
            f"reads version {WORLD_FORMAT_VERSION}"
        )
    entries = list(manifest.get("layers", {}).values()) + [manifest.get("streetviews", {})]
    for name in LAYER_FILES:
        if name not in manifest.get("layers", {}):
            return None, f"{path}/manifest.json lacks layer {name!r}"
    for entry in entries:
        f = path / str(entry.get("file", ""))
        if not f.is_file():
            return None, f"{f} is missing"
        if f.stat().st_size != entry.get("bytes"):
            return None, f"{f} has {f.stat().st_size} bytes, the manifest says {entry.get('bytes')}"
    return manifest, ""
