"""Model configurations: the named presets and their validation.

A config is a plain JSON-able dict; `config.json` in a run dir stores it whole, so a model is
rebuilt from it alone. `resolve_config` fills defaults and rejects unknown keys by name.
"""

from __future__ import annotations

import copy
from typing import Any

from gair.preprocess_presets import preprocess_preset

# Band names of the two kinds of RS input this project knows.
WORLD_BANDS = ["red", "green", "blue", "relief"]  # the embedded demo world's raster
S2_GAIR_BANDS = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]  # GAIR's 10 bands

_DEFAULTS: dict[str, Any] = {
    "name": "custom",
    "embed_dim": 256,  # E: the shared space of INR, SV and location embeddings
    "rs": {
        "encoder": "timm_vit",  # registry name, see gair.encoders
        "bands": WORLD_BANDS,
        "img_size": 32,
        "patch_size": 4,
        "width": 192,
        "depth": 4,
        "heads": 3,
        "timm_name": None,  # e.g. "vit_base_patch8_224" with pretrained=True (needs internet)
        "pretrained": False,
    },
    "sv": {
        "encoder": "timm_vit",
        "img_size": 64,
        "patch_size": 8,
        "width": 192,
        "depth": 4,
        "heads": 3,
        "timm_name": None,
        "pretrained": False,
    },
    "location": {
        "encoder": "geoclip",
        "sigmas": [1.0, 16.0, 256.0],
        "n_freq": 256,
        "hidden": 256,
        "depth": 3,
        "init": None,  # "geoclip": start from the weights the geoclip package ships
        "seed": 0,  # seeds the fixed random Fourier matrices
    },
    "inr": {
        "mode": "nili",  # nili | bilinear | bicubic | center-pool
        "decoder": "linear",  # linear (the release) | mlp (LIIF)
        "mlp_hidden": [256, 256],
        "sampling": "exact",  # exact: bilinear weights with edge replication; official: the release's
    },
    "sv_proj": True,  # Linear E->E applied to SV embeddings before comparing (release: optical_proj)
    "loss": {
        "temperature": 0.07,
        "learn_temperature": False,
        "queue_size": 4096,
        "weights": {"incl": 1.0, "secl_sv": 0.5, "secl_rs": 0.5},
    },
    "preprocess": {
        "rs": {
            "kind": "standardize",
            "mean": [0.5, 0.5, 0.5, 0.5],
            "std": [0.25, 0.25, 0.25, 0.25],
        },
        "sv": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "scale": 255.0},
    },
}

PRESETS: dict[str, dict[str, Any]] = {
    # Trains on 2 CPU cores: 4-band 32 px RS chips (8x8 tokens), 64 px SV views.
    "tiny": {"name": "tiny"},
    # The paper's size: RS ViT-B/8 at 96 px with 10 bands (12x12 tokens), SV ViT-B/16 at 224 px.
    "paper": {
        "name": "paper",
        "embed_dim": 768,
        "rs": {
            "bands": S2_GAIR_BANDS,
            "img_size": 96,
            "patch_size": 8,
            "width": 768,
            "depth": 12,
            "heads": 12,
        },
        "sv": {"img_size": 224, "patch_size": 16, "width": 768, "depth": 12, "heads": 12},
        "location": {"hidden": 1024},
        "preprocess": {
            "rs": {"kind": "standardize", "mean": [0.5] * 10, "std": [0.25] * 10},
        },
    },
    # The official GAIR release's architecture and preprocessing (GAIR-NOTES.md), for weights
    # imported with `gair import-official`: CROMA-style ViT-B/8 with 2D-ALiBi on 10 S2 bands at
    # 96 px, HuggingFace-layout ViT-B/16 with tanh pooler at 224 px, GeoCLIP location encoder
    # with a 768-d head, NILI with one Linear decoder and the release's sampling.
    "official": {
        "name": "official",
        "embed_dim": 768,
        "rs": {
            "encoder": "croma_vit",
            "bands": S2_GAIR_BANDS,
            "img_size": 96,
            "patch_size": 8,
            "width": 768,
            "depth": 12,
            "heads": 16,
        },
        "sv": {
            "encoder": "hf_vit",
            "img_size": 224,
            "patch_size": 16,
            "width": 768,
            "depth": 12,
            "heads": 12,
        },
        "location": {
            "encoder": "geoclip_release",
            "sigmas": [1.0, 16.0, 256.0],
            "n_freq": 256,
            "hidden": 1024,
            "depth": 3,
        },
        "inr": {"mode": "nili", "decoder": "linear", "sampling": "official"},
        "sv_proj": True,
        "preprocess": preprocess_preset("official"),
    },
}

INR_MODES = ("nili", "bilinear", "bicubic", "center-pool")
INR_DECODERS = ("linear", "mlp")
INR_SAMPLINGS = ("exact", "official")


def _merge(base: dict, override: dict, path: str) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        where = f"{path}.{key}" if path else key
        if key not in base:
            raise ValueError(f"unknown config key {where!r} (known: {sorted(base)})")
        if isinstance(base[key], dict) and key != "weights" and not isinstance(value, dict):
            raise ValueError(f"config key {where!r} must be a mapping, got {value!r}")
        if isinstance(base[key], dict) and isinstance(value, dict) and key not in ("preprocess",):
            out[key] = _merge(base[key], value, where)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_config(config: str | dict) -> dict:
    """Turn a preset name or a (partial) dict into a full, validated model config.

    A dict may name a preset under "base" and override any of its keys.
    """
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown model config {config!r}; presets: {sorted(PRESETS)}")
        config = {"base": config}
    if not isinstance(config, dict):
        raise ValueError(
            f"model config must be a preset name or a dict, got {type(config).__name__}"
        )
    config = copy.deepcopy(config)
    base = config.pop("base", None)
    full = _DEFAULTS
    if base is not None:
        if base not in PRESETS:
            raise ValueError(f"unknown base config {base!r}; presets: {sorted(PRESETS)}")
        full = _merge(full, PRESETS[base], "")
    full = _merge(full, config, "")
    _validate(full)
    return full


def _positive_int(cfg: dict, key: str, where: str) -> None:
    value = cfg[key]
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"config {where}.{key} must be a positive integer, got {value!r}")


def _validate(cfg: dict) -> None:
    _positive_int(cfg, "embed_dim", "")
    for part in ("rs", "sv"):
        for key in ("img_size", "patch_size", "width", "depth", "heads"):
            _positive_int(cfg[part], key, part)
        if cfg[part]["img_size"] % cfg[part]["patch_size"]:
            raise ValueError(
                f"config {part}.img_size={cfg[part]['img_size']} is not a multiple of "
                f"{part}.patch_size={cfg[part]['patch_size']}"
            )
    if not cfg["rs"]["bands"] or not all(isinstance(b, str) for b in cfg["rs"]["bands"]):
        raise ValueError(
            f"config rs.bands must be a non-empty list of names, got {cfg['rs']['bands']!r}"
        )
    loc = cfg["location"]
    _positive_int(loc, "n_freq", "location")
    _positive_int(loc, "hidden", "location")
    _positive_int(loc, "depth", "location")
    if not loc["sigmas"] or any(not isinstance(s, int | float) or s <= 0 for s in loc["sigmas"]):
        raise ValueError(f"config location.sigmas must be positive numbers, got {loc['sigmas']!r}")
    if loc["init"] not in (None, "geoclip"):
        raise ValueError(f"config location.init must be null or 'geoclip', got {loc['init']!r}")
    inr = cfg["inr"]
    if inr["mode"] not in INR_MODES:
        raise ValueError(f"config inr.mode must be one of {INR_MODES}, got {inr['mode']!r}")
    if inr["decoder"] not in INR_DECODERS:
        raise ValueError(
            f"config inr.decoder must be one of {INR_DECODERS}, got {inr['decoder']!r}"
        )
    if inr["sampling"] not in INR_SAMPLINGS:
        raise ValueError(
            f"config inr.sampling must be one of {INR_SAMPLINGS}, got {inr['sampling']!r}"
        )
    loss = cfg["loss"]
    if not isinstance(loss["temperature"], int | float) or loss["temperature"] <= 0:
        raise ValueError(f"config loss.temperature must be > 0, got {loss['temperature']!r}")
    if not isinstance(loss["queue_size"], int) or loss["queue_size"] < 0:
        raise ValueError(
            f"config loss.queue_size must be an integer >= 0, got {loss['queue_size']!r}"
        )
    known_terms = {"incl", "secl_sv", "secl_rs"}
    for term, weight in loss["weights"].items():
        if term not in known_terms:
            raise ValueError(
                f"unknown loss term {term!r} in loss.weights (known: {sorted(known_terms)})"
            )
        if not isinstance(weight, int | float) or weight < 0:
            raise ValueError(f"loss.weights.{term} must be a number >= 0, got {weight!r}")
    n_bands = len(cfg["rs"]["bands"])
    rs_pre = cfg["preprocess"]["rs"]
    for key in ("mean", "std"):
        if key in rs_pre and len(rs_pre[key]) != n_bands:
            raise ValueError(
                f"config preprocess.rs.{key} has {len(rs_pre[key])} values for {n_bands} bands {cfg['rs']['bands']}"
            )
    source = rs_pre.get("source_bands")
    if source is not None:
        if not isinstance(source, list) or not all(isinstance(b, str) for b in source):
            raise ValueError(
                f"config preprocess.rs.source_bands must be a list of band names, got {source!r}"
            )
        absent = [b for b in cfg["rs"]["bands"] if b not in source]
        if absent:
            raise ValueError(
                f"config preprocess.rs.source_bands {source} lacks the model's bands {absent}"
            )
    if rs_pre.get("kind") == "s2-quantize":
        for key in ("mean", "std"):
            if key not in rs_pre:
                raise ValueError(f"config preprocess.rs.kind 's2-quantize' needs '{key}'")
        if any(not isinstance(s, int | float) or s <= 0 for s in rs_pre["std"]):
            raise ValueError(f"config preprocess.rs.std must be > 0, got {rs_pre['std']!r}")
