"""Interoperability with the official GAIR release (GAIR-NOTES.md, "The official release's
interface"): coordinate converters for its conventions, and `import_official` (the command
`gair import-official`, registered by gair/official_cli.py), which turns its pretrained
checkpoint into a normal run dir of ours.

The release's weights are CC BY-NC 4.0 (non-commercial) and are downloaded by the user; nothing
of them ships with this project, and none of the release's code is used here: its modules are
re-implemented from their documented behaviour (`gair.encoders.croma`, `gair.encoders.hf_vit`,
`gair.encoders.release_location`, `gair.inr` with `sampling="official"`).

Coordinates: the release uses (lon, lat) pairs and bboxes [lon_min, lat_max, lon_max, lat_min];
we use (lat, lon) and (west, south, east, north). Convert only here, at the boundary.

Reading is safe: `torch.load(weights_only=True)` (plus `argparse.Namespace`, which training
scripts often store beside the weights and which carries no code). Every tensor of the
checkpoint is either mapped onto our model by the explicit table `release_key_map` (plus the
optional `logit_scale`), or reported as intentionally unused (`DOCUMENTED_UNUSED`, which covers
every tensor of the release's own `GAIRModel` state dict that no embedding reads, or a prefix
the user declares with `--unused-prefix`); anything else, and any missing or mis-shaped tensor,
is an error naming it. The street-view ViT loads in both HuggingFace key layouts: transformers
4 (`sv_encoder.encoder.layer.N.attention.attention.query`, ...) and the refactored layout of
recent transformers 5 releases (`sv_encoder.layers.N.attention.q_proj`, ...), which
`normalise_sv_keys` turns into the former.

The import also records the ground size of an RS chip (`rs_chip` in config.json, read with
`gair.run_dir.rs_chip_km`): by default the release's own chip, a 224 px window of a 10 m
Sentinel-2 raster (2.24 km); `--chip-km` overrides it.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from gair import geo
from gair.checkpoint import CONFIG, file_sha256, load_state_strict, save_model
from gair.model import GAIR
from gair.official_keys import (  # noqa: F401  (the release's keys; re-exported)
    DOCUMENTED_UNUSED,
    OPTIONAL_MAP,
    OWN_ONLY_PREFIXES,
    SV_LAYOUT_T4,
    SV_LAYOUT_T5,
    infer_config,
    load_release_state,
    map_release_state,
    normalise_sv_keys,
    release_key_map,
)
from gair.run_dir import rs_chip_entry

LICENCE = (
    "CC BY-NC 4.0 (Creative Commons Attribution-NonCommercial 4.0): weights of the official "
    "GAIR release, imported by the user; non-commercial use only, attribute the GAIR authors"
)

# The release's chip (its `extract_rs_patch_with_bbox` default): a 224 px window of a Sentinel-2
# raster at 10 m, resized to the model's 96 px. Recorded as `rs_chip` unless --chip-km is given.
RELEASE_CHIP_PX = 224
RELEASE_GSD_M = 10.0


# -- coordinate conventions -----------------------------------------------------------------
def _as_array(x, name: str, last: int):
    if not isinstance(x, torch.Tensor):
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} is not numeric: {x!r}") from err
    if x.ndim == 0 or x.shape[-1] != last:
        raise ValueError(f"{name} must have shape (..., {last}), got {tuple(x.shape)}")
    return x


def release_lonlat_to_latlon(lonlat):
    """Release (..., 2) (lon, lat) -> our (..., 2) (lat, lon). numpy/torch in, same kind out."""
    lonlat = _as_array(lonlat, "lonlat", 2)
    latlon = lonlat[..., [1, 0]]
    geo.validate_latlon(latlon)
    return latlon


def latlon_to_release_lonlat(latlon):
    """Our (..., 2) (lat, lon) -> release (..., 2) (lon, lat)."""
    latlon = _as_array(latlon, "latlon", 2)
    geo.validate_latlon(latlon)
    return latlon[..., [1, 0]]


def release_bbox_to_wsen(bbox):
    """Release (..., 4) [lon_min, lat_max, lon_max, lat_min] -> our (west, south, east, north)."""
    bbox = _as_array(bbox, "release bbox", 4)
    wsen = bbox[..., [0, 3, 2, 1]]
    geo.validate_bbox(wsen, "release bbox [lon_min, lat_max, lon_max, lat_min]")
    return wsen


def wsen_to_release_bbox(bbox):
    """Our (..., 4) (west, south, east, north) -> release [lon_min, lat_max, lon_max, lat_min]."""
    bbox = _as_array(bbox, "rs_bbox", 4)
    geo.validate_bbox(bbox)
    return bbox[..., [0, 3, 2, 1]]


# -- the import -----------------------------------------------------------------------------
class _SkipRandomInit(torch.overrides.TorchFunctionMode):
    """While building a model whose every parameter is then overwritten by the checkpoint,
    skip the random in-place initialisers (seconds for a ViT-B pair). Only used in
    `_build_for_import`, which checks afterwards that every tensor was loaded and is finite."""

    SKIPPED = frozenset({"uniform_", "normal_", "trunc_normal_", "kaiming_uniform_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in self.SKIPPED:
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, torch.Tensor):
                return target
        return func(*args, **kwargs)


def _build_for_import(config: dict) -> GAIR:
    with _SkipRandomInit():
        return GAIR(config)


def release_rs_chip(config: dict, chip_km: float | None = None) -> dict:
    """The `rs_chip` entry of an imported run: the release's chip (224 px of a 10 m Sentinel-2
    raster, 2.24 km on the ground) or, with `chip_km`, the ground size the user gives."""
    px = int(config["rs"]["img_size"])
    if chip_km is None:
        km = RELEASE_CHIP_PX * RELEASE_GSD_M / 1000.0
        return rs_chip_entry(
            km,
            px,
            "ground-square",
            "the official release's chip: a 224 px window of a 10 m Sentinel-2 raster "
            "(its extract_rs_patch_with_bbox default), resized to the model's "
            f"{px} px",
            source_px=RELEASE_CHIP_PX,
            source_gsd_m=RELEASE_GSD_M,
        )
    return rs_chip_entry(chip_km, px, "ground-square", "given with --chip-km at import")


def import_official(
    checkpoint: str | Path,
    out_dir: str | Path,
    rs_heads: int | None = None,
    sv_heads: int | None = None,
    unused_prefixes: list[str] | None = None,
    force: bool = False,
    chip_km: float | None = None,
) -> dict:
    """Convert the release checkpoint into a run dir (model.safetensors + config.json).

    `chip_km`: the ground size of one RS chip's side, recorded as `rs_chip` (default: the
    release's 224 px at 10 m = 2.24 km).

    Returns a report: run_dir, checkpoint sha256, inferred sizes, mapped count, unused tensors
    (name -> reason), our tensors that kept their defaults, the street-view key layout and the
    RS chip."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    if any(not prefix for prefix in unused_prefixes or []):
        raise ValueError("--unused-prefix must not be empty (it would match every tensor)")
    if chip_km is not None and not (isinstance(chip_km, int | float) and 0 < chip_km < math.inf):
        raise ValueError(f"--chip-km must be a positive number of km, got {chip_km!r}")
    if (out_dir / CONFIG).exists() and not force:
        raise ValueError(f"{out_dir} already holds a run ({CONFIG}); pass --force to replace it")
    state, sv_layout = normalise_sv_keys(load_release_state(checkpoint))
    config = infer_config(state, rs_heads, sv_heads)
    rs_chip = release_rs_chip(config, chip_km)
    model = _build_for_import(config)
    own = model.state_dict()
    ours, unused = map_release_state(state, config, own, unused_prefixes, sv_layout)
    load_state_strict(model, ours, str(checkpoint))
    model.eval()
    # the skipped initialisers may only have left garbage in tensors the checkpoint overwrote:
    # check the others (own-only defaults, derived buffers such as the ALiBi bias)
    key_map = release_key_map(config)
    key_map.update({k: v for k, v in OPTIONAL_MAP.items() if k in state})
    from_release = set(key_map.values())
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if name in from_release or not tensor.is_floating_point():
            continue
        if not torch.isfinite(tensor).all():
            raise RuntimeError(f"tensor {name} was not initialised while importing")
    mapped = len(key_map)
    kept = sorted(k for k in own if k.startswith(OWN_ONLY_PREFIXES) and k not in from_release)
    sha = file_sha256(checkpoint)
    sizes = {
        "embed_dim": config["embed_dim"],
        "rs": {k: config["rs"][k] for k in ("width", "depth", "heads", "patch_size", "img_size")},
        "sv": {k: config["sv"][k] for k in ("width", "depth", "heads", "patch_size", "img_size")},
        "location": {k: config["location"][k] for k in ("n_freq", "hidden", "depth")},
    }
    source = {
        "kind": "gair-official-release",
        "file": checkpoint.name,
        "sha256": sha,
        "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tensors_in_checkpoint": len(state),
        "tensors_mapped": mapped,
        "sv_key_layout": sv_layout,
        "sizes": sizes,
        "note": "re-implementation from the release's documented behaviour; its code is not used",
    }
    save_model(
        model,
        out_dir,
        extra={
            "source": source,
            "licence": LICENCE,
            "unused_release_tensors": dict(sorted(unused.items())),
            "kept_default_tensors": kept,
            "rs_chip": rs_chip,
        },
    )
    return {
        "run_dir": str(out_dir),
        "checkpoint": str(checkpoint),
        "sha256": sha,
        "licence": LICENCE,
        "sizes": sizes,
        "tensors_in_checkpoint": len(state),
        "tensors_mapped": mapped,
        "sv_key_layout": sv_layout,
        "unused_release_tensors": dict(sorted(unused.items())),
        "kept_default_tensors": kept,
        "logit_scale": model.logit_scale(),
        "rs_chip": rs_chip,
    }
