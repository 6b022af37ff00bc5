"""The official GAIR release's state dict: reading it safely (`torch.load(weights_only=True)`),
its two street-view key layouts (transformers 4 and 5), the explicit table that maps its tensors
onto our model (`release_key_map`), the tensors it holds that no embedding reads
(`DOCUMENTED_UNUSED`, each with its reason), and the model config its shapes imply
(`infer_config`). `gair.official.import_official` puts these together; see its docstring and
docs/OFFICIAL.md.
"""

from __future__ import annotations

import argparse
import math
import pickle
import re
from pathlib import Path

import torch

from gair.config import PRESETS, resolve_config

# Release tensors that exist but do not contribute to any embedding (GAIR-NOTES.md; checked
# against the release's `GAIRModel`, whose state dict holds every one of them). Keys are
# prefixes (ending in ".") or exact names. docs/OFFICIAL.md explains each.
DOCUMENTED_UNUSED: dict[str, str] = {
    "rs_encoder.s2_encoder.layer_norm.": "CROMA encoder's layer_norm: not used for embeddings",
    "rs_encoder.s2_encoder.head.": "CROMA encoder's head: not used for embeddings",
    "rs_encoder.layer_norm.": (
        "CROMA wrapper's layer_norm before its classification head: the RS embedding is the "
        "mean of the encoder's tokens, taken before it"
    ),
    "rs_encoder.head.": (
        "CROMA wrapper's classification head (10 classes): not part of any embedding"
    ),
    "sv_encoder.embeddings.mask_token": "HF ViT mask token: used only for masked-image modelling",
    "nerf_fn.": (
        "the release's alternative transformer point query (2 blocks + final norm), called only "
        "by GAIRModel.query_embedding; its localized RS embedding is the NILI query (imnet), "
        "which is what this import maps"
    ),
    "query_feature": "learned query token of that transformer point query (query_embedding only)",
    "rs_patch_pos_encoding": (
        "fixed 2D sine-cosine encoding of the RS patch positions, an input of that transformer "
        "point query only (the CROMA encoder uses ALiBi, no positional embedding)"
    ),
    "queue_for_location": (
        "training state: the queue of past GPS coordinates that the location contrastive loss "
        "uses as extra negatives; no embedding reads it (our own queue, criterion.queue.*, "
        "starts empty)"
    ),
    "queue_ptr_location": "training state: the write position in queue_for_location",
    "radar_proj.": (
        "projection for a radar (SAR) modality that the release does not encode: no forward "
        "pass calls it"
    ),
    "location_proj.": (
        "projection of location embeddings that the release never applies: its "
        "encode_location returns the location encoder's sum directly"
    ),
}

# Release tensors mapped when present (older or trimmed checkpoints may lack them; ours then
# keeps its default). `logit_scale` is the release's CLIP-style log of 1 / temperature (frozen
# at log(1 / 0.07) in the release); ours is `criterion.log_scale`, which `GAIR.logit_scale()`
# exponentiates for the geolocation posterior.
OPTIONAL_MAP = {"logit_scale": "criterion.log_scale"}

# The release's NILI decoder may be saved as a bare Linear (`imnet.weight`) or as LIIF's MLP
# wrapper with no hidden layer (`imnet.layers.0.weight`); both are the same single Linear.
_ALIASES = {"imnet.layers.0.weight": "imnet.weight", "imnet.layers.0.bias": "imnet.bias"}

# Our tensors with no counterpart in the release: they keep their defaults (the loss
# temperature, unless the checkpoint has `logit_scale`, and the coordinate queue).
OWN_ONLY_PREFIXES = ("criterion.",)

# The street-view ViT's per-layer names in the refactored HuggingFace layout (recent
# transformers 5 releases: `sv_encoder.layers.N.<suffix>`) -> the transformers 4 layout
# (`sv_encoder.encoder.layer.N.<suffix>`) that release_key_map uses.
_SV_T5_SUFFIXES = {
    "attention.q_proj": "attention.attention.query",
    "attention.k_proj": "attention.attention.key",
    "attention.v_proj": "attention.attention.value",
    "attention.o_proj": "attention.output.dense",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
    "layernorm_before": "layernorm_before",
    "layernorm_after": "layernorm_after",
}
_SV_T5_KEY = re.compile(r"^sv_encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_SV_T4_KEY = re.compile(r"^sv_encoder\.encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$")
SV_LAYOUT_T4 = "transformers-4"
SV_LAYOUT_T5 = "transformers-5"

RS_PREFIX = "rs_encoder.s2_encoder."
SV_PREFIX = "sv_encoder."
LOC_PREFIX = "location_encoder."
WB = ("weight", "bias")


# -- reading the checkpoint -----------------------------------------------------------------
def load_release_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The release checkpoint's state dict, read with `weights_only=True`: key `model` if
    present, `module.` prefixes stripped. Raises ValueError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:
            raise ValueError(
                f"{path} holds objects that a safe load (torch.load weights_only=True) refuses "
                f"(global {found.group(1)}); this importer never unpickles code. Re-save only "
                "its state dict (the 'model' entry) with torch.save from a trusted environment."
            ) from err
        detail = next((ln.strip() for ln in text.splitlines() if "Unsupported" in ln), "")
        raise ValueError(
            f"{path} is not a readable torch checkpoint (refused by torch.load "
            f"weights_only=True{': ' + detail if detail else ''})"
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable torch checkpoint: {err}") from err
    if isinstance(obj, dict) and "model" in obj:
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj:
        raise ValueError(
            f"{path}: expected a state dict (or a dict with key 'model'), got {type(obj).__name__}"
        )
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise ValueError(f"{path}: state dict key {key!r} is not a string")
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        name = key[len("module.") :] if key.startswith("module.") else key
        name = _ALIASES.get(name, name)
        if name in state:
            raise ValueError(f"{path}: tensor {name!r} appears twice (with and without a prefix)")
        state[name] = value
    return state


def normalise_sv_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """Rename the street-view ViT's tensors of a checkpoint saved with a refactored
    HuggingFace ViT (recent transformers 5: `sv_encoder.layers.N.attention.q_proj.weight`,
    `...mlp.fc1...`) to the transformers 4 names (`sv_encoder.encoder.layer.N.attention.
    attention.query.weight`, `...intermediate.dense...`). Returns (state, layout), layout
    "transformers-4" or "transformers-5". A key of the new layout with an unknown part keeps its
    name (and is then reported as unexpected); a checkpoint mixing both layouts is an error."""
    t4 = sorted(k for k in state if _SV_T4_KEY.match(k))
    t5 = sorted(k for k in state if k.startswith("sv_encoder.layers."))
    if t4 and t5:
        raise ValueError(
            "checkpoint mixes the transformers 4 and 5 key layouts of the street-view ViT "
            f"(e.g. {t4[0]!r} and {t5[0]!r}): re-save it from one model"
        )
    if not t5:
        return state, SV_LAYOUT_T4
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        found = _SV_T5_KEY.match(key)
        if found and found.group(2) in _SV_T5_SUFFIXES:
            n, part, kind = found.groups()
            key = f"sv_encoder.encoder.layer.{n}.{_SV_T5_SUFFIXES[part]}.{kind}"
        if key in out:
            raise ValueError(f"checkpoint has tensor {key!r} under two names")
        out[key] = value
    return out, SV_LAYOUT_T5


def _shown_key(key: str, layout: str) -> str:
    """A (transformers 4 layout) key as the checkpoint names it, for messages."""
    found = _SV_T4_KEY.match(key)
    if layout != SV_LAYOUT_T5 or not found:
        return key
    n, part, kind = found.groups()
    back = {v: k for k, v in _SV_T5_SUFFIXES.items()}
    return f"sv_encoder.layers.{n}.{back.get(part, part)}.{kind}"


# -- the mapping ----------------------------------------------------------------------------
def release_key_map(config: dict) -> dict[str, str]:
    """The explicit table release key -> our key for a resolved "official"-style config."""
    m: dict[str, str] = {}
    # RS: rs_encoder.s2_encoder.X -> rs_encoder.X (gair.encoders.croma mirrors the names)
    for s in WB:
        m[f"{RS_PREFIX}linear_input.{s}"] = f"rs_encoder.linear_input.{s}"
    for n in range(config["rs"]["depth"]):
        attn, ffn = f"transformer.layers.{n}.0.", f"transformer.layers.{n}.1."
        names = [f"{attn}input_norm.{s}" for s in WB] + [f"{attn}to_qkv.weight"]
        names += [f"{attn}to_out.{s}" for s in WB] + [f"{ffn}input_norm.{s}" for s in WB]
        names += [f"{ffn}net.0.{s}" for s in WB] + [f"{ffn}net.3.{s}" for s in WB]
        m.update({RS_PREFIX + k: "rs_encoder." + k for k in names})
    # SV: sv_encoder.X -> sv_encoder.X (gair.encoders.hf_vit mirrors HF's names)
    sv = ["embeddings.cls_token", "embeddings.position_embeddings"]
    sv += [f"embeddings.patch_embeddings.projection.{s}" for s in WB]
    for n in range(config["sv"]["depth"]):
        layer = f"encoder.layer.{n}."
        for part in ("attention.attention.query", "attention.attention.key"):
            sv += [f"{layer}{part}.{s}" for s in WB]
        for part in ("attention.attention.value", "attention.output.dense"):
            sv += [f"{layer}{part}.{s}" for s in WB]
        for part in ("intermediate.dense", "output.dense", "layernorm_before", "layernorm_after"):
            sv += [f"{layer}{part}.{s}" for s in WB]
    sv += [f"layernorm.{s}" for s in WB] + [f"pooler.dense.{s}" for s in WB]
    m.update({SV_PREFIX + k: "sv_encoder." + k for k in sv})
    # Location: GeoCLIP's LocEnc{i}.capsule = [rff(b), Linear, ReLU, Linear, ReLU, ...], head.0
    loc = config["location"]
    for i in range(len(loc["sigmas"])):
        src, dst = f"{LOC_PREFIX}LocEnc{i}.", f"location_encoder.branches.{i}."
        m[f"{src}capsule.0.b"] = f"{dst}b"
        for j in range(loc["depth"]):
            for s in WB:
                m[f"{src}capsule.{1 + 2 * j}.{s}"] = f"{dst}mlp.{2 * j}.{s}"
        for s in WB:
            m[f"{src}head.0.{s}"] = f"{dst}head.{s}"
    # NILI decoder and the SV projection
    for s in WB:
        m[f"imnet.{s}"] = f"point_query.decoder.{s}"
        m[f"optical_proj.{s}"] = f"sv_proj.{s}"
    return m


def _need(state: dict, key: str, ndim: int) -> torch.Tensor:
    if key not in state:
        raise ValueError(f"checkpoint is missing tensor {key!r}")
    if state[key].ndim != ndim:
        raise ValueError(
            f"checkpoint tensor {key!r} has shape {tuple(state[key].shape)}, expected {ndim} dims"
        )
    return state[key]


def _count(state: dict, pattern: str) -> int:
    """1 + the largest index captured by `pattern` among the keys (0 if none)."""
    rx = re.compile(pattern)
    found = [int(m.group(1)) for k in state if (m := rx.match(k))]
    return max(found) + 1 if found else 0


def _heads(width: int, heads: int | None, default: int, part: str) -> int:
    heads = default if heads is None else heads
    if heads <= 0 or width % heads:
        raise ValueError(
            f"{part} width {width} is not divisible by {heads} heads; pass --{part}-heads "
            "(the head count is not stored in the checkpoint)"
        )
    return heads


def infer_config(
    state: dict[str, torch.Tensor], rs_heads: int | None = None, sv_heads: int | None = None
) -> dict:
    """A resolved model config (preset "official") with widths, depths and sizes read from the
    checkpoint's tensor shapes. Head counts are not stored: defaults 16 (RS) / 12 (SV)."""
    base = PRESETS["official"]
    bands, patch = base["rs"]["bands"], base["rs"]["patch_size"]
    lin = _need(state, f"{RS_PREFIX}linear_input.weight", 2)
    rs_width = int(lin.shape[0])
    if lin.shape[1] != len(bands) * patch * patch:
        raise ValueError(
            f"checkpoint tensor '{RS_PREFIX}linear_input.weight' has shape {tuple(lin.shape)}: "
            f"expected [width, {len(bands) * patch * patch}] ({len(bands)} bands x {patch}x{patch} px)"
        )
    rs_depth = _count(state, re.escape(RS_PREFIX) + r"transformer\.layers\.(\d+)\.")
    if not rs_depth:
        raise ValueError(f"checkpoint has no '{RS_PREFIX}transformer.layers.*' tensors")

    cls = _need(state, f"{SV_PREFIX}embeddings.cls_token", 3)
    sv_width = int(cls.shape[-1])
    proj = _need(state, f"{SV_PREFIX}embeddings.patch_embeddings.projection.weight", 4)
    sv_patch = int(proj.shape[-1])
    pos = _need(state, f"{SV_PREFIX}embeddings.position_embeddings", 3)
    grid = math.isqrt(max(int(pos.shape[1]) - 1, 0))
    if grid * grid != pos.shape[1] - 1 or grid == 0:
        raise ValueError(
            f"checkpoint tensor '{SV_PREFIX}embeddings.position_embeddings' has shape "
            f"{tuple(pos.shape)}: expected [1, 1 + n*n, width]"
        )
    sv_depth = _count(state, re.escape(SV_PREFIX) + r"encoder\.layer\.(\d+)\.")
    if not sv_depth:
        raise ValueError(f"checkpoint has no '{SV_PREFIX}encoder.layer.*' tensors")

    imnet = _need(state, "imnet.weight", 2)
    embed_dim = int(imnet.shape[0])
    if sv_width != embed_dim:
        raise ValueError(
            f"SV width {sv_width} differs from the NILI output size {embed_dim} ('imnet.weight' "
            f"{tuple(imnet.shape)}): the release applies no SV head between them"
        )
    n_branches = _count(state, re.escape(LOC_PREFIX) + r"LocEnc(\d+)\.")
    if not n_branches:
        raise ValueError(f"checkpoint has no '{LOC_PREFIX}LocEnc*' tensors")
    rff = _need(state, f"{LOC_PREFIX}LocEnc0.capsule.0.b", 2)
    hidden = _need(state, f"{LOC_PREFIX}LocEnc0.capsule.1.weight", 2).shape[0]
    # the Linears sit at capsule.1, .3, .5, ...: the largest index + 1 is twice their number
    loc_depth = _count(state, re.escape(LOC_PREFIX) + r"LocEnc0\.capsule\.(\d+)\.weight") // 2
    override = {
        "base": "official",
        "embed_dim": embed_dim,
        "loss": {"temperature": _release_temperature(state)},
        "rs": {
            "width": rs_width,
            "depth": rs_depth,
            "heads": _heads(rs_width, rs_heads, base["rs"]["heads"], "rs"),
        },
        "sv": {
            "img_size": grid * sv_patch,
            "patch_size": sv_patch,
            "width": sv_width,
            "depth": sv_depth,
            "heads": _heads(sv_width, sv_heads, base["sv"]["heads"], "sv"),
        },
        "location": {
            "sigmas": [float(16**i) for i in range(n_branches)],  # 2^0, 2^4, 2^8 (b is loaded)
            "n_freq": int(rff.shape[0]),
            "hidden": int(hidden),
            "depth": max(loc_depth, 1),
        },
    }
    return resolve_config(override)


def _release_temperature(state: dict[str, torch.Tensor]) -> float:
    """The contrastive temperature of the release's `logit_scale` (a CLIP-style log of
    1 / temperature), or our default 0.07 when the checkpoint has none."""
    if "logit_scale" not in state:
        return resolve_config("official")["loss"]["temperature"]
    t = state["logit_scale"]
    if t.ndim != 0 or not t.is_floating_point() or not torch.isfinite(t).all():
        raise ValueError(
            f"checkpoint tensor 'logit_scale' must be a finite float scalar (the log of "
            f"1 / temperature), got {t.dtype} of shape {tuple(t.shape)}"
        )
    return float(f"{math.exp(-float(t)):.7g}")


def _unused_reason(key: str, extra_prefixes: list[str]) -> str | None:
    for prefix, reason in DOCUMENTED_UNUSED.items():
        if key.startswith(prefix) if prefix.endswith(".") else key == prefix:
            return reason
    for prefix in extra_prefixes:
        if key.startswith(prefix):
            return f"declared unused with --unused-prefix {prefix}"
    return None


def map_release_state(
    state: dict[str, torch.Tensor],
    config: dict,
    own: dict[str, torch.Tensor],
    unused_prefixes: list[str] | None = None,
    sv_layout: str = SV_LAYOUT_T4,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Map the release's tensors onto our keys. Returns (our state, {unused key: reason}).

    `state` has transformers 4 names (`normalise_sv_keys`); `sv_layout` is the checkpoint's own
    layout, used to name its tensors in messages. `own` is our model's state dict (for shapes
    and the own-only defaults). Raises ValueError naming every missing, mis-shaped, non-float or
    unexpected tensor.
    """
    key_map = release_key_map(config)
    key_map.update({k: v for k, v in OPTIONAL_MAP.items() if k in state})
    extra = list(unused_prefixes or [])
    missing = [_shown_key(k, sv_layout) for k in key_map if k not in state]
    unused = {k: r for k in state if k not in key_map and (r := _unused_reason(k, extra))}
    unexpected = [k for k in state if k not in key_map and k not in unused]
    mis_shaped, not_float = [], []
    for theirs, ours in key_map.items():
        if theirs not in state:
            continue
        t = state[theirs]
        if tuple(t.shape) != tuple(own[ours].shape):
            mis_shaped.append(
                f"{_shown_key(theirs, sv_layout)}: checkpoint {tuple(t.shape)}, expected "
                f"{tuple(own[ours].shape)}"
            )
        elif not t.is_floating_point():
            not_float.append(f"{_shown_key(theirs, sv_layout)}: {t.dtype}")
    problems = []
    for label, items in (
        ("missing tensors", missing),
        ("mis-shaped tensors", mis_shaped),
        ("non-float tensors", not_float),
        ("unexpected tensors (not in the release's documented layout)", unexpected),
    ):
        if items:
            more = f" ... ({len(items)} in all)" if len(items) > 10 else ""
            problems.append(f"{label}: {items[:10]}{more}")
    if problems:
        hint = (
            "; a tensor you know to be unused can be declared with --unused-prefix"
            if unexpected
            else ""
        )
        raise ValueError(
            "checkpoint does not match the official GAIR layout: " + "; ".join(problems) + hint
        )
    mapped_targets = set(key_map.values())
    ours_only = [k for k in own if k not in mapped_targets]
    unused = {_shown_key(k, sv_layout): r for k, r in unused.items()}
    stray = [k for k in ours_only if not k.startswith(OWN_ONLY_PREFIXES)]
    if stray:  # our model grew a tensor the table does not know: a bug here, not in the file
        raise RuntimeError(f"release_key_map does not cover our tensors {stray[:10]}")
    out = {ours: state[theirs].detach().to(own[ours].dtype) for theirs, ours in key_map.items()}
    out.update({k: own[k] for k in ours_only})
    return out, unused
