"""Run-dir checkpoints: `model.safetensors` + `config.json`, committed as one step.

`config.json` holds the full model config and the SHA-256 of the weights file, so a model is
rebuilt from it alone and a truncated or tampered weights file is caught before use. Nothing
here unpickles: weights are safetensors.

A save writes the new weights complete beside the old ones (`.model.safetensors.<sha>.staged`),
commits by replacing config.json, then renames the staged file over model.safetensors (see
`gair.run_dir`): a save killed at any point leaves a run dir that loads as the complete old model
or the complete new one. The run dir's other files (heads, eval results, metrics, resume
checkpoints) are left alone. Saves of one run dir are serialised by an flock on the directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gair import __version__
from gair.atomic import atomic_path, fsync_dir, locked_dir, write_json
from gair.config import resolve_config
from gair.run_dir import (  # noqa: F401  (re-exported: the run dir's names live there)
    CONFIG,
    FORMAT_VERSION,
    WEIGHTS,
    checkpoint_hash,
    committed_weights,
    file_sha256,
    is_sha256,
    read_run_config,
    settle_weights,
    staged_weights,
)

STAGING = f".{WEIGHTS}.staging"  # the weights while written, before their hash names them


def save_model(model, run_dir: str | Path, extra: dict | None = None) -> Path:
    """Stage `model.safetensors`, commit `config.json`, then put the weights in place.

    `extra` adds top-level entries to config.json (metrics, data fingerprint, preprocessing).
    Existing extra entries of a previous config.json in the directory are kept unless replaced.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with locked_dir(run_dir):
        previous = read_run_config(run_dir) if (run_dir / CONFIG).exists() else {}
        settle_weights(run_dir, previous, discard=True)  # what a killed save left
        with atomic_path(run_dir / STAGING) as tmp:
            # One metadata entry: safetensors writes the map in hash order, so two entries made
            # the bytes (and `weights_sha256`, the checkpoint's identity) differ between saves
            # of the same weights. The format version lives in config.json.
            save_file(state, str(tmp), metadata={"format": f"gair/{FORMAT_VERSION}"})
            sha = file_sha256(tmp)
        staged = staged_weights(run_dir, sha)
        os.replace(run_dir / STAGING, staged)
        fsync_dir(run_dir)  # the staged name is durable before the commit names it
        meta = {k: v for k, v in previous.items() if k not in ("model", "weights_sha256")}
        meta.update(extra or {})
        meta.update(
            format_version=FORMAT_VERSION,
            code_version=__version__,
            model=model.config,
            weights_sha256=sha,
        )
        write_json(run_dir / CONFIG, meta)  # the commit
        settle_weights(run_dir, meta, discard=False)  # staged -> model.safetensors
        fsync_dir(run_dir)
    return run_dir


def load_model(run_dir: str | Path, map_location: str | torch.device = "cpu", verify: bool = True):
    """Rebuild the model from `config.json` alone and load its weights; returns it in eval mode.

    Raises ValueError for a config without the weights' SHA-256, a truncated/tampered weights
    file (hash mismatch or unreadable), or weights whose names/shapes do not match the config.
    `verify=False` skips the SHA-256 check (internal callers that just wrote the file).
    """
    from gair.model import GAIR  # local: model imports checkpoint-free modules only

    run_dir = Path(run_dir)
    meta = read_run_config(run_dir)
    if verify and not is_sha256(meta.get("weights_sha256")):
        raise ValueError(
            f"{run_dir / CONFIG} records no valid weights_sha256, so {WEIGHTS} cannot be "
            "verified: re-save the model with this version (or load with verify=False)"
        )
    weights = committed_weights(run_dir, meta)
    try:
        state = _read_weights(weights, meta, verify, map_location)
    except (FileNotFoundError, ValueError):
        if weights.name == WEIGHTS or weights.exists():
            raise
        # the staged file was renamed into place meanwhile
        state = _read_weights(run_dir / WEIGHTS, meta, verify, map_location)
    config = resolve_config(meta["model"])
    with torch.device("meta"):  # skip the random init: every saved tensor comes from the file
        model = GAIR(config)
    load_state_strict(model, state, str(weights), assign=True)
    if any(t.is_meta for t in model.buffers()):  # computed, non-persistent buffers: build normally
        model = GAIR(config)
        load_state_strict(model, state, str(weights))
    return model.to(map_location).eval()


def _read_weights(weights: Path, meta: dict, verify: bool, map_location) -> dict:
    if not weights.is_file():
        raise FileNotFoundError(f"no {WEIGHTS} in run dir {weights.parent}")
    if verify and file_sha256(weights) != meta["weights_sha256"]:
        raise ValueError(
            f"{weights} does not match the SHA-256 in {CONFIG}: truncated or modified file"
        )
    try:
        return load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise ValueError(f"cannot read {weights}: {err}") from err


def load_state_strict(
    model: torch.nn.Module, state: dict, source: str, assign: bool = False
) -> None:
    """Load a state dict, naming every missing, unexpected or mis-shaped tensor."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mis_shaped = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if own[k].shape != state[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(
            f"unexpected tensors {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}"
        )
    if mis_shaped:
        problems.append(f"shape mismatches {mis_shaped[:8]}")
    if problems:
        raise ValueError(f"{source} does not fit the model config: " + "; ".join(problems))
    model.load_state_dict(state, strict=True, assign=assign)
