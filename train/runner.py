"""Run a training config end to end: the run dir, the Lightning Trainer, fit, final export.

Run dir (DESIGN.md): `model.safetensors` + `config.json` (the model, exported after every
validation and at the end), `metrics.csv` + `hparams.yaml` (logs), `tensorboard/` (when
tensorboard is installed) and `last.ckpt` (the trainer's resume state).
"""

from __future__ import annotations

import importlib.util
import logging
import time
import warnings
from pathlib import Path

import lightning as L
import torch

from gair.checkpoint import CONFIG, WEIGHTS
from train.checkpointing import (
    RESUME_FILE,
    AtomicCheckpointIO,
    ResumeCheckpoint,
    RunCSVLogger,
    clean_stale_temps,
    load_resume_state,
)
from train.config import public
from train.data import GAIRDataModule
from train.metrics import quality_bar
from train.module import GAIRTraining

log = logging.getLogger("train")


def quiet_lightning() -> None:
    """One copy of each Lightning log line (its own handler, not also the root's), no ads."""
    logging.getLogger("lightning").propagate = False
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in str(record.msg)
    )
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")


def resolve_precision(trainer_cfg: dict) -> str:
    """'auto': bf16 autocast when training on CUDA, full fp32 on CPU."""
    if trainer_cfg["precision"] != "auto":
        return trainer_cfg["precision"]
    return "bf16-mixed" if _on_cuda(trainer_cfg) else "32-true"


def _on_cuda(trainer_cfg: dict) -> bool:
    return trainer_cfg["accelerator"] in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def resolve_compile(trainer_cfg: dict) -> bool:
    return (
        _on_cuda(trainer_cfg) if trainer_cfg["compile"] == "auto" else bool(trainer_cfg["compile"])
    )


def compile_model(model: torch.nn.Module) -> None:
    """torch.compile the heavy submodules in place (state_dict names do not change)."""
    for part in (model.rs_encoder, model.sv_encoder, model.location_encoder, model.point_query):
        part.compile()


def _is_rank_zero() -> bool:
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def prepare_run_dir(run_dir: Path, resume: bool) -> Path | None:
    """Check the run dir against --resume; return the checkpoint to resume from (or None)."""
    ckpt = run_dir / RESUME_FILE
    if _is_rank_zero() and run_dir.is_dir():
        clean_stale_temps(run_dir)
    if ckpt.is_file():
        if not resume:
            raise ValueError(
                f"{run_dir} already holds a training run ({RESUME_FILE}): pass --resume to "
                "continue it, or --out a new run dir"
            )
        return ckpt
    if resume:
        if _is_rank_zero():
            log.warning("--resume: no %s in %s, starting a new run", RESUME_FILE, run_dir)
    elif (run_dir / WEIGHTS).exists() or (run_dir / CONFIG).exists():
        raise ValueError(f"{run_dir} already holds a model: choose another --out")
    return None


def load_init_weights(model: torch.nn.Module, run_dir: str | Path) -> dict:
    """Copy the weights of a run dir (trained, or `gair import-official`) into `model` for
    fine-tuning: `gair.load_model` checks the weights against the run's SHA-256 and its own
    config; then every tensor must fit `model` by name and shape. The loss state (`criterion.*`:
    temperature, coordinate queue) is the training config's, not the run's: it is training
    state, which the config may change. Returns the provenance recorded in config.json
    (`train.init`)."""
    from gair.checkpoint import checkpoint_hash, load_model, load_state_strict

    own = {k: v for k, v in model.state_dict().items() if k.startswith("criterion.")}
    loaded = load_model(run_dir).state_dict()
    state = {k: v for k, v in loaded.items() if not k.startswith("criterion.")}
    load_state_strict(model, {**state, **own}, f"--init {run_dir}")
    return {"run_dir": str(run_dir), "sha256": checkpoint_hash(run_dir)}


def build_trainer(cfg: dict, run_dir: Path, resume_step: int | None, callbacks=()) -> L.Trainer:
    tcfg = cfg["trainer"]
    loggers = [
        RunCSVLogger(run_dir, resume_step, flush_logs_every_n_steps=tcfg["log_every_n_steps"])
    ]
    if tcfg["tensorboard"] and (
        importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")
    ):
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(str(run_dir), name="tensorboard", version=""))
    return L.Trainer(
        default_root_dir=str(run_dir),
        accelerator=tcfg["accelerator"],
        devices=tcfg["devices"],
        num_nodes=tcfg["num_nodes"],
        strategy=tcfg["strategy"],
        precision=resolve_precision(tcfg),
        max_epochs=tcfg["max_epochs"],
        max_steps=tcfg["max_steps"],
        accumulate_grad_batches=cfg["optimizer"]["accumulate"],
        gradient_clip_val=cfg["optimizer"]["grad_clip"],
        check_val_every_n_epoch=tcfg["val_every_n_epochs"],
        log_every_n_steps=tcfg["log_every_n_steps"],
        num_sanity_val_steps=0,
        enable_checkpointing=False,  # our ResumeCheckpoint writes last.ckpt
        enable_progress_bar=tcfg["progress_bar"],
        enable_model_summary=tcfg["progress_bar"],
        deterministic=tcfg["deterministic"],
        use_distributed_sampler=False,  # train.data's samplers shard and resume themselves
        logger=loggers,
        callbacks=[ResumeCheckpoint(run_dir / RESUME_FILE, tcfg["ckpt_every_n_steps"]), *callbacks],
        plugins=[AtomicCheckpointIO()],
    )


def train(
    cfg: dict,
    out: str | Path | None = None,
    resume: bool = False,
    datasets=None,
    callbacks=(),
    revalidate: bool = False,
) -> dict:
    """Train by a validated config. Returns a summary (run dir, steps, final metrics).

    Args:
        out: run dir (default: the config's `run_dir`, else `runs/<name>`).
        resume: continue from `out/last.ckpt`.
        datasets: optional (train, val, fingerprint) instead of the config's data (tests).
        callbacks: extra Lightning callbacks (tests).
        revalidate: validate (and export) after fitting even when the last validation was at
            the final step: re-scores a finished run with the current metrics code.
    """
    quiet_lightning()
    run_dir = Path(out or cfg["run_dir"] or f"runs/{cfg['name']}")
    ckpt = prepare_run_dir(run_dir, resume)
    resume_step = None
    if ckpt is not None:
        resume_step = int(load_resume_state(ckpt, mmap=True)["global_step"])
        if _is_rank_zero():
            log.info("resuming %s from global step %d", run_dir, resume_step)
    threads = torch.get_num_threads()
    if cfg["trainer"]["cpu_threads"]:
        torch.set_num_threads(cfg["trainer"]["cpu_threads"])
    try:
        return _fit(cfg, run_dir, ckpt, resume_step, datasets, callbacks, revalidate)
    finally:
        torch.set_num_threads(threads)


def _fit(cfg, run_dir, ckpt, resume_step, datasets, callbacks, revalidate=False) -> dict:
    L.seed_everything(cfg["seed"], workers=True, verbose=False)

    datamodule = GAIRDataModule(cfg, datasets)  # opens the data first: a missing world fails fast
    module = GAIRTraining(cfg, run_dir, datamodule.fingerprint)
    module.rs_chip = datamodule.rs_chip
    if cfg.get("init") and ckpt is None:  # a resumed run restores its own weights instead
        module.init_from = load_init_weights(module.model, cfg["init"])
        if _is_rank_zero():
            log.info("fine-tuning from %s (weights %s)", cfg["init"], module.init_from["sha256"])
    module.set_locations(*datamodule.location_sets(cfg["data"]["gallery_train"]))
    if resolve_compile(cfg["trainer"]):
        compile_model(module.model)
    trainer = build_trainer(cfg, run_dir, resume_step, callbacks)
    if trainer.is_global_zero:
        trainer.loggers[0].log_hyperparams(public(cfg))

    started = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None)
    seconds = time.perf_counter() - started
    if trainer.interrupted:
        raise KeyboardInterrupt
    steps_run = trainer.global_step - (resume_step or 0)
    if revalidate or module.last_val_step != trainer.global_step:
        trainer.validate(module, datamodule=datamodule, verbose=False)  # final metrics + export
    metrics = {k.removeprefix("val/"): v for k, v in module.last_metrics.items()}
    return {
        "rank": int(trainer.global_rank),
        "run_dir": str(run_dir),
        "global_step": int(trainer.global_step),
        "epoch": int(trainer.current_epoch),
        "resumed_from_step": resume_step,
        "steps_run": int(steps_run),
        "fit_seconds": round(seconds, 2),
        "steps_per_s": round(steps_run / seconds, 4) if seconds > 0 else None,
        "samples_per_s": round(steps_run * module.optim_info.get("effective_batch", 0) / seconds, 2)
        if seconds > 0
        else None,
        "metrics": metrics,
        "quality_bar": quality_bar(module.last_metrics) if module.last_metrics else None,
        "module": module,
    }
