"""Crash-safe run directories: atomic resume checkpoints, safe loading, atomic CSV metrics.

Lightning's own writer (`_atomic_save`) goes through an fsspec transaction that stages the file
in the system temp dir and moves it into place: across filesystems that move is a copy (not
atomic) and nothing is fsynced. Here every file of the run dir is written to a temp name beside
its target, fsynced and renamed (`gair.atomic.atomic_path`), so a kill at any moment leaves
either the previous complete file or the new complete file; a stale temp from a killed writer is
removed when the run dir is opened again.

Resume loading never unpickles code: `torch.load(weights_only=True)` on our own `last.ckpt`
only (the checkpoint holds tensors, numbers, strings and containers; see tests).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from gair.atomic import atomic_path, remove_stale_temps, write_text

log = logging.getLogger("train")

RESUME_FILE = "last.ckpt"
METRICS_FILE = "metrics.csv"


def clean_stale_temps(run_dir: Path) -> list[str]:
    """Remove temps left in `run_dir` by a writer that was killed mid-write (never a live
    writer's: `gair.atomic.remove_stale_temps` tests each temp's lock)."""
    return remove_stale_temps(run_dir)


def load_resume_state(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> dict:
    """Read a resume checkpoint with `torch.load(weights_only=True)`: no code is unpickled."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path} holds more than tensors and plain data; refusing to unpickle it ({err})"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"cannot read resume checkpoint {path}: {err}") from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO: atomic writes (temp + fsync + rename), weights-only loads."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with atomic_path(path) as tmp:
            tmp.write_bytes(buffer.getbuffer())

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return load_resume_state(path, map_location=map_location or "cpu")


class ResumeCheckpoint(Callback):
    """Saves the trainer's full state to `run_dir/last.ckpt` every N optimizer steps, at the end
    of every epoch and at the end of training (always after an optimizer step, never in the
    middle of gradient accumulation).

    A step that ends an epoch is saved from `on_train_epoch_end` instead of the batch hook:
    Lightning (2.6) resumes a checkpoint taken in the batch hook of an epoch's last batch by
    skipping the whole next epoch; the epoch-end state resumes correctly (see tests).
    """

    def __init__(self, path: str | Path, every_n_steps: int):
        self.path = Path(path)
        self.every_n_steps = int(every_n_steps)
        self._last_saved = -1

    def on_train_start(self, trainer, pl_module) -> None:
        self._last_saved = trainer.global_step  # a resumed run's state is already on disk

    def _save(self, trainer) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # full state (not torch.load's flag)
        self._last_saved = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        last_of_epoch = batch_idx + 1 >= trainer.num_training_batches
        if step != self._last_saved and step % self.every_n_steps == 0 and not last_of_epoch:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.global_step != self._last_saved:
            self._save(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.global_step != self._last_saved:
            self._save(trainer)


class _AtomicMetricsWriter(ExperimentWriter):
    """CSVLogger's writer, rewritten to (a) keep the history of a resumed run (rows before the
    resumed step; Lightning's writer deletes metrics.csv when its directory is not empty) and
    (b) write the whole file atomically at each flush instead of appending in place."""

    def __init__(self, log_dir: str, keep_before_step: int | None):
        self.hparams: dict = {}
        self.metrics: list[dict] = []
        self.metrics_keys: list[str] = []
        self.log_dir = log_dir
        self.metrics_file_path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        os.makedirs(log_dir, exist_ok=True)
        self._rows: list[dict] = []
        if keep_before_step is not None and os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as fh:
                reader = csv.DictReader(fh)
                self.metrics_keys = list(reader.fieldnames or [])
                for row in reader:
                    try:
                        if int(float(row.get("step") or 0)) < keep_before_step:
                            self._rows.append(row)
                    except ValueError:
                        continue

    def save(self) -> None:
        if not self.metrics:
            return
        for row in self.metrics:
            for key in row:
                if key not in self.metrics_keys:
                    self.metrics_keys.append(key)
        self._rows.extend(self.metrics)
        self.metrics = []
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=sorted(self.metrics_keys))
        writer.writeheader()
        writer.writerows(self._rows)
        write_text(self.metrics_file_path, out.getvalue())

    def log_hparams(self, params: dict) -> None:
        self.hparams.update(params)
        text = yaml.safe_dump(_plain(self.hparams), sort_keys=False)
        write_text(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE), text)


def _plain(obj):
    """Containers and scalars only (YAML-safe)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return str(obj)


class RunCSVLogger(CSVLogger):
    """Lightning's CSVLogger writing `metrics.csv` (and `hparams.yaml`) straight into the run dir,
    atomically; on resume it keeps the rows logged before the resumed step."""

    def __init__(
        self,
        run_dir: str | Path,
        resume_step: int | None = None,
        flush_logs_every_n_steps: int = 50,
    ):
        super().__init__(
            save_dir=str(run_dir),
            name="",
            version="",
            flush_logs_every_n_steps=flush_logs_every_n_steps,
        )
        self._resume_step = resume_step

    @property
    def log_dir(self) -> str:
        return self.save_dir

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._experiment = _AtomicMetricsWriter(self.log_dir, self._resume_step)
        return self._experiment
