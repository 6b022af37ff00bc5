"""Run-dir checkpoints: `model.safetensors` + `config.json`, written atomically.

`config.json` holds the full model config and the SHA-256 of the weights file, so a model is
rebuilt from it alone and a truncated or tampered weights file is caught before use. Nothing
here unpickles: weights are safetensors.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gair import __version__
from gair.atomic import atomic_path, write_json
from gair.config import resolve_config
from gair.run_dir import (  # noqa: F401  (re-exported: the run dir's names live there)
    CONFIG,
    FORMAT_VERSION,
    WEIGHTS,
    checkpoint_hash,
    file_sha256,
    read_run_config,
)


def save_model(model, run_dir: str | Path, extra: dict | None = None) -> Path:
    """Write `model.safetensors` then `config.json` (the commit marker) into `run_dir`.

    `extra` adds top-level entries to config.json (metrics, data fingerprint, preprocessing).
    Existing extra entries of a previous config.json in the directory are kept unless replaced.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(run_dir / WEIGHTS) as tmp:
        # One metadata entry: safetensors writes the map in hash order, so two entries made
        # the bytes (and `weights_sha256`, the checkpoint's identity) differ between saves of
        # the same weights. The format version lives in config.json.
        save_file(state, str(tmp), metadata={"format": f"gair/{FORMAT_VERSION}"})
    previous = read_run_config(run_dir) if (run_dir / CONFIG).exists() else {}
    meta = {k: v for k, v in previous.items() if k not in ("model", "weights_sha256")}
    meta.update(extra or {})
    meta.update(
        format_version=FORMAT_VERSION,
        code_version=__version__,
        model=model.config,
        weights_sha256=file_sha256(run_dir / WEIGHTS),
    )
    write_json(run_dir / CONFIG, meta)
    return run_dir


def load_model(run_dir: str | Path, map_location: str | torch.device = "cpu", verify: bool = True):
    """Rebuild the model from `config.json` alone and load its weights; returns it in eval mode.

    Raises ValueError for a truncated/tampered weights file (hash mismatch or unreadable),
    or for weights whose names/shapes do not match the config.
    """
    from gair.model import GAIR  # local: model imports checkpoint-free modules only

    run_dir = Path(run_dir)
    meta = read_run_config(run_dir)
    weights = run_dir / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"no {WEIGHTS} in run dir {run_dir}")
    if verify and meta.get("weights_sha256") and file_sha256(weights) != meta["weights_sha256"]:
        raise ValueError(
            f"{weights} does not match the SHA-256 in {CONFIG}: truncated or modified file"
        )
    try:
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise ValueError(f"cannot read {weights}: {err}") from err
    config = resolve_config(meta["model"])
    with torch.device("meta"):  # skip the random init: every saved tensor comes from the file
        model = GAIR(config)
    load_state_strict(model, state, str(weights), assign=True)
    if any(t.is_meta for t in model.buffers()):  # computed, non-persistent buffers: build normally
        model = GAIR(config)
        load_state_strict(model, state, str(weights))
    return model.to(map_location).eval()


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
