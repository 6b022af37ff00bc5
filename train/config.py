"""Training configurations: YAML files under `train/configs/`, validated against a schema.

A training config has five parts: top-level run settings, `model` (a preset name of
`gair.config` or a dict with `base:` plus overrides), `data`, `optimizer` and `trainer`. Every
key is known: an unknown key or a bad value raises a `ValueError` that names the key and the
file. `--set key=value` overrides (dotted keys, YAML values) go through the same validation.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from gair.config import resolve_config

CONFIG_DIR = Path(__file__).parent / "configs"

PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
DATA_SOURCES = ("world", "prepared", "synthetic")


class _Bad(Exception):
    """A value failed its check; the message says what was expected."""


# -- value checks: each takes the value and returns it (possibly normalised) or raises _Bad ---------
def _int(minimum: int | None = None, allow: Iterable = ()) -> Callable[[Any], Any]:
    allowed = tuple(allow)

    def check(v):
        if v in allowed and not isinstance(v, bool):
            return v
        if not isinstance(v, int) or isinstance(v, bool) or (minimum is not None and v < minimum):
            extra = f" or one of {list(allowed)}" if allowed else ""
            raise _Bad(f"must be an integer >= {minimum}{extra}")
        return v

    return check


def _float(minimum: float = 0.0, strict: bool = False) -> Callable[[Any], float]:
    def check(v):
        if isinstance(v, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            with contextlib.suppress(ValueError):
                v = float(v)
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            raise _Bad("must be a number")
        if v < minimum or (strict and v == minimum):
            raise _Bad(f"must be {'>' if strict else '>='} {minimum}")
        return float(v)

    return check


def _optional(check: Callable) -> Callable:
    return lambda v: None if v is None else check(v)


def _choice(options: Iterable) -> Callable:
    options = tuple(options)

    def check(v):
        if v not in options:
            raise _Bad(f"must be one of {list(options)}")
        return v

    return check


def _bool(v):
    if not isinstance(v, bool):
        raise _Bad("must be true or false")
    return v


def _str(v):
    if not isinstance(v, str) or not v:
        raise _Bad("must be a non-empty string")
    return v


def _betas(v):
    if (
        not isinstance(v, list | tuple)
        or len(v) != 2
        or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in v)
        or not all(0 <= b < 1 for b in v)
    ):
        raise _Bad("must be two numbers in [0, 1), e.g. [0.9, 0.95]")
    return [float(b) for b in v]


def _devices(v):
    if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and (v >= 1 or v == -1)):
        return v
    if isinstance(v, list) and v and all(isinstance(i, int) and i >= 0 for i in v):
        return v
    raise _Bad("must be 'auto', a positive count, -1 (all) or a list of device indices")


def _compile(v):
    if v == "auto" or isinstance(v, bool):
        return v
    raise _Bad("must be 'auto', true or false")


def _model(v):
    if isinstance(v, str | dict):
        return v
    raise _Bad(
        "must be a preset name (e.g. 'tiny'), a mapping with 'base:' and overrides, or 'init' "
        "(the model of the run given with --init)"
    )


INIT_MODEL = "init"  # `model: init`: the model config of the run named by `init` / --init
# model config sections a fine-tuning run may change without changing what the weights compute
INIT_FREE_KEYS = ("name", "loss")


# The schema: nested dicts of (default, check). `model` is validated by gair.config.
SCHEMA: dict[str, Any] = {
    "name": ("custom", _str),
    "run_dir": (None, _optional(_str)),  # default --out
    "seed": (0, _int(0)),
    # fine-tune: start from the weights of this run dir (trained, or `gair import-official`);
    # `model` then defaults to the run's own model config and must agree with it
    "init": (None, _optional(_str)),
    "model": ("tiny", _model),
    "data": {
        "source": ("world", _choice(DATA_SOURCES)),
        "path": ("data/world", _str),  # world dir, or `gair data prepare` output
        # training samples per epoch, a fresh random subset of the locations each epoch
        # (null: every training location once per epoch)
        "samples_per_epoch": (None, _optional(_int(1))),
        "val_samples": (1000, _int(1)),  # validation subset = the retrieval candidates
        # prepared data: a separately prepared validation set, else a spatially blocked split
        # (blocks of val_block_deg x val_block_deg degrees, a seeded val_fraction of them)
        "val_path": (None, _optional(_str)),
        "val_fraction": (0.1, _float(0.0, strict=True)),
        "val_block_deg": (10.0, _float(0.0, strict=True)),
        "gallery_train": (0, _int(0)),  # training locations added to the location gallery
        "num_workers": (2, _int(0)),
        "synthetic_train": (2048, _int(1)),  # sizes for source: synthetic
        "synthetic_val": (512, _int(1)),
    },
    "optimizer": {
        "batch_size": (64, _int(1)),  # per device
        "accumulate": (1, _int(1)),
        "base_lr": (1.5e-4, _float(0.0, strict=True)),  # lr per 256 samples of effective batch
        "min_lr": (0.0, _float(0.0)),
        "weight_decay": (0.05, _float(0.0)),
        "betas": ([0.9, 0.95], _betas),
        "eps": (1e-8, _float(0.0, strict=True)),
        "warmup_epochs": (0.0, _float(0.0)),
        "warmup_steps": (0, _int(0)),
        "grad_clip": (None, _optional(_float(0.0, strict=True))),
    },
    "trainer": {
        "max_epochs": (10, _int(1)),
        "max_steps": (-1, _int(1, allow=(-1,))),
        "accelerator": ("auto", _choice(ACCELERATORS)),
        "devices": ("auto", _devices),
        "num_nodes": (1, _int(1)),
        "strategy": ("auto", _str),  # auto | ddp | ddp_find_unused_parameters_true | fsdp ...
        "precision": ("auto", _choice(PRECISIONS)),  # auto: bf16-mixed on CUDA, else 32-true
        "compile": ("auto", _compile),  # torch.compile the encoders; auto: on CUDA only
        "val_every_n_epochs": (1, _int(1)),
        "log_every_n_steps": (10, _int(1)),
        "ckpt_every_n_steps": (200, _int(1)),  # resume checkpoint (last.ckpt) cadence
        "progress_bar": (True, _bool),
        "tensorboard": (True, _bool),  # used when tensorboard is installed
        "deterministic": (False, _bool),
        "cpu_threads": (None, _optional(_int(1))),  # torch.set_num_threads; null: torch default
    },
}


def _defaults(schema: dict) -> dict:
    return {
        k: _defaults(v) if isinstance(v, dict) else copy.deepcopy(v[0]) for k, v in schema.items()
    }


def _check(cfg: Any, schema: dict, where: str, source: str) -> dict:
    if not isinstance(cfg, dict):
        raise ValueError(f"{where or 'config'} in {source} must be a mapping, got {cfg!r}")
    out = _defaults(schema)
    for key, value in cfg.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in schema:
            raise ValueError(f"unknown key {path!r} in {source} (known here: {sorted(schema)})")
        spec = schema[key]
        if isinstance(spec, dict):
            out[key] = _check(value, spec, path, source)
            continue
        try:
            out[key] = spec[1](value)
        except _Bad as err:
            raise ValueError(f"bad value for {path!r} in {source}: {err}, got {value!r}") from None
    return out


def _cross_checks(cfg: dict, source: str) -> None:
    opt = cfg["optimizer"]
    if opt["warmup_epochs"] and opt["warmup_steps"]:
        raise ValueError(
            f"bad value in {source}: set optimizer.warmup_epochs or optimizer.warmup_steps, not both"
        )
    if cfg["model"] == INIT_MODEL and not cfg["init"]:
        raise ValueError(
            f"bad value in {source}: model 'init' takes the model of the run given with --init "
            "RUN_DIR (or init:), and none is given"
        )
    try:
        cfg["model_config"] = resolve_config(cfg["model"])
    except ValueError as err:
        raise ValueError(f"bad model config in {source}: {err}") from None
    if cfg["init"]:
        check_init_model(cfg["model_config"], cfg["init"], source)


def init_model_config(run_dir: str | Path) -> dict:
    """The model config of a run dir to fine-tune from (its config.json; torch-free)."""
    from gair.run_dir import read_run_config

    try:
        meta = read_run_config(run_dir)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"--init {run_dir}: {err}") from None
    try:
        return resolve_config(meta["model"])
    except ValueError as err:
        raise ValueError(f"--init {run_dir}: its model config is invalid: {err}") from None


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in a or key not in b:
                out.append(f"{sub}: {a.get(key, 'missing')!r} vs {b.get(key, 'missing')!r}")
            else:
                out += _differences(a[key], b[key], sub)
        return out
    return [] if a == b else [f"{path}: {a!r:.60} vs {b!r:.60}"]


def check_init_model(model_config: dict, run_dir: str | Path, source: str) -> None:
    """A fine-tuning config's model must be the run's (up to `INIT_FREE_KEYS`: its name and
    the loss settings), so that the weights mean what they meant."""
    theirs = init_model_config(run_dir)
    ours = {k: v for k, v in model_config.items() if k not in INIT_FREE_KEYS}
    diff = _differences(ours, {k: v for k, v in theirs.items() if k not in INIT_FREE_KEYS})
    if diff:
        more = f" ... ({len(diff)} in all)" if len(diff) > 6 else ""
        raise ValueError(
            f"the model config in {source} differs from the one of --init {run_dir} "
            f"(config vs run: {'; '.join(diff[:6])}{more}): leave `model` out of the config, "
            "or set `model: init` (--set model=init), to take the run's"
        )


def validate(raw: dict, source: str = "<config>") -> dict:
    """Fill defaults, check every key and value; adds `model_config` (the resolved model)."""
    raw = dict(raw or {})
    raw.pop("model_config", None)
    raw.pop("config_file", None)
    cfg = _check(raw, SCHEMA, "", source)
    _cross_checks(cfg, source)
    return cfg


def resolve_path(config: str | Path) -> Path:
    """`train/configs/demo.yaml`, or a bare name `demo` for a config shipped in the package."""
    path = Path(config)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / f"{config}.yaml"
    if path.suffix == "" and shipped.is_file():
        return shipped
    raise FileNotFoundError(
        f"no training config {config!r} (shipped: {sorted(p.stem for p in CONFIG_DIR.glob('*.yaml'))})"
    )


def parse_overrides(pairs: Iterable[str]) -> list[tuple[str, Any]]:
    """`key.sub=value` strings -> (dotted key, YAML-parsed value)."""
    out = []
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            raise ValueError(f"--set {key}: cannot parse value {text!r} ({err})") from None
        out.append((key.strip(), value))
    return out


def apply_overrides(raw: dict, overrides: Iterable[tuple[str, Any]]) -> dict:
    """Set dotted keys in a raw config dict. `model.X` on a preset name turns it into a dict."""
    raw = copy.deepcopy(raw)
    for key, value in overrides:
        parts = key.split(".")
        if parts[0] == "model" and len(parts) > 1 and isinstance(raw.get("model", "tiny"), str):
            raw["model"] = {"base": raw.get("model", "tiny")}
        node = raw
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"--set {key}: {part!r} is not a mapping")
            node = child
        node[parts[-1]] = value
    return raw


def load_config(
    config: str | Path,
    overrides: Iterable[str] = (),
    max_steps: int | None = None,
    init: str | Path | None = None,
) -> dict:
    """Read and validate a training YAML; `overrides` are `key=value` strings (`--set`);
    `init` (--init): a run dir to fine-tune from. With a run to start from, a config whose
    `model` is absent or `init` takes the run's model config (before the `--set model.X`
    overrides), and any other model config must agree with it (`check_init_model`)."""
    path = resolve_path(config)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a mapping of config keys, got {type(raw).__name__}")
    pairs = parse_overrides(overrides)
    if max_steps is not None:
        pairs.append(("trainer.max_steps", max_steps))
    if init is not None:
        pairs.append(("init", str(init)))
    given = dict(pairs)
    run = given.get("init", raw.get("init"))
    model = given.get("model", raw.get("model", INIT_MODEL if run else None))
    if run and isinstance(run, str) and model == INIT_MODEL:
        raw["model"] = init_model_config(run)
        pairs = [(k, v) for k, v in pairs if k != "model"]
    raw = apply_overrides(raw, pairs)
    source = str(path) + (" (with --set/--max-steps overrides)" if pairs else "")
    cfg = validate(raw, source)
    cfg["config_file"] = str(path)
    return cfg


def public(cfg: dict) -> dict:
    """The config as recorded in config.json / hparams (JSON-able, no derived entries)."""
    return {k: copy.deepcopy(v) for k, v in cfg.items() if k not in ("model_config",)}
