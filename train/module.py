"""The LightningModule: GAIR's loss as the training step, retrieval and geolocation metrics as
validation, the optimisation recipe, and the export of the model to the run dir."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from gair import build_model, save_model
from train.config import public
from train.data import steps_per_epoch
from train.metrics import geographic_median, quality_bar, validation_metrics
from train.optim import build_optimizer

log = logging.getLogger("train")

LOSS_TERMS = ("loss", "incl", "secl_sv", "secl_rs")


class GAIRTraining(L.LightningModule):
    """Trains `gair.GAIR` built from `cfg["model_config"]`.

    Args:
        cfg: validated training config (`train.config.load_config`).
        run_dir: where `model.safetensors` + `config.json` are exported after each validation
            (None: no export).
        data_fingerprint: identity of the training data, recorded in config.json and checked on
            resume.
    """

    def __init__(self, cfg: dict, run_dir: str | Path | None = None, data_fingerprint: str = ""):
        super().__init__()
        self.cfg = cfg
        self.model = build_model(cfg["model_config"])
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.data_fingerprint = data_fingerprint
        self.rs_chip: dict | None = None  # the chips' ground size (train.data.rs_chip_of)
        self.init_from: dict | None = None  # the run dir fine-tuned from (runner, --init)
        self.extra_gallery: torch.Tensor | None = None
        self.baseline_latlon: np.ndarray | None = None
        self.last_metrics: dict[str, float] = {}
        self.last_val_step = -1
        self.optim_info: dict = {}
        self._val: list[dict] = []
        self._clock: tuple[float, int] | None = None

    # -- data-dependent state ------------------------------------------------------------------
    def set_locations(self, train_latlon: np.ndarray, extra_gallery: np.ndarray) -> None:
        """Training locations (for the geographic-median baseline) and the training locations
        added to the validation location gallery for the second geolocation number."""
        self.baseline_latlon = geographic_median(train_latlon) if len(train_latlon) else None
        extra = np.asarray(extra_gallery, dtype=np.float64).reshape(-1, 2)
        self.extra_gallery = torch.as_tensor(extra) if len(extra) else None

    # -- training ------------------------------------------------------------------------------
    def on_train_start(self) -> None:
        self._clock = (time.perf_counter(), self.global_step)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.model(batch)
        n = batch["sv"].shape[0]
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=n)
        self.log_dict({f"train/{k}": out[k] for k in LOSS_TERMS[1:]}, batch_size=n)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=n)
        return out["loss"]

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        every = self.cfg["trainer"]["log_every_n_steps"]
        if self._clock is None or (self.global_step - self._clock[1]) < every:
            return
        t0, s0 = self._clock
        now = time.perf_counter()
        effective = self.optim_info.get("effective_batch", batch["sv"].shape[0])
        rate = (self.global_step - s0) * effective / max(now - t0, 1e-9)
        self.log("train/samples_per_s", rate, batch_size=1)
        self._clock = (now, self.global_step)

    def configure_optimizers(self):
        trainer, opt = self.trainer, self.cfg["optimizer"]
        batches = trainer.datamodule.batches_per_epoch(trainer.world_size)
        per_epoch = steps_per_epoch(batches, opt["accumulate"])
        total = per_epoch * self.cfg["trainer"]["max_epochs"]
        if self.cfg["trainer"]["max_steps"] > 0:
            total = min(total, self.cfg["trainer"]["max_steps"])
        optimizer, scheduler, self.optim_info = build_optimizer(
            self.model, opt, trainer.world_size, per_epoch, total
        )
        if trainer.is_global_zero:
            log.info(
                "optimizer: lr %.3g (base %.3g x effective batch %d / 256), warm-up %d of %d steps",
                self.optim_info["lr"],
                opt["base_lr"],
                self.optim_info["effective_batch"],
                self.optim_info["warmup_steps"],
                total,
            )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    # -- validation ----------------------------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self.model(batch)
        n = batch["sv"].shape[0]
        self.log("val/loss", out["loss"], batch_size=n, sync_dist=True)
        self._val.append(
            {
                "index": batch["index"],
                "z": out["z"].float(),
                "s": out["s"].float(),
                "latlon": batch["latlon"].double(),
            }
        )

    def _gather_validation(self) -> dict[str, torch.Tensor]:
        local = {k: torch.cat([b[k] for b in self._val]) for k in self._val[0]}
        self._val = []
        if self.trainer.world_size > 1:  # per-rank shards are equal-sized (padded)
            local = {k: v.flatten(0, 1) for k, v in self.all_gather(local).items()}
        index, first = np.unique(local["index"].cpu().numpy(), return_index=True)
        keep = torch.as_tensor(first, device=local["index"].device)
        return {k: v[keep] for k, v in local.items()}

    @torch.no_grad()
    def location_embeddings(self, latlon: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        with torch.autocast(self.device.type, enabled=False):
            return torch.cat(
                [
                    self.model.encode_location(latlon[i : i + chunk].float()).float()
                    for i in range(0, latlon.shape[0], chunk)
                ]
            )

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._val:
            self._val = []
            return
        val = self._gather_validation()
        extra = self.extra_gallery
        metrics = validation_metrics(
            val["z"],
            val["s"],
            val["latlon"],
            self.location_embeddings(val["latlon"]),
            self.baseline_latlon,
            None if extra is None else self.location_embeddings(extra.to(self.device)),
            extra,
            logit_scale=self.model.logit_scale(),
        )
        self.log_dict(metrics, batch_size=1, sync_dist=True)  # equal on all ranks already
        self.last_metrics = metrics
        self.last_val_step = self.global_step
        if self.trainer.is_global_zero:
            self._report(metrics)
            if self.run_dir is not None:
                self.export()

    def _report(self, metrics: dict) -> None:
        bar = quality_bar(metrics)
        text = (
            f"validation at step {self.global_step}: SV->RS-INR R@1 {metrics['val/r1']:.3f} "
            f"R@10 {metrics['val/r10']:.3f} among {metrics['val/n']:.0f} "
            f"({bar['r10_over_chance']:.1f}x chance); SV->location median "
            f"{metrics['val/loc_median_km']:.0f} km among the held-out places (a random one: "
            f"{metrics['val/heldout_pick_median_km']:.0f} km)"
        )
        if "val/loc_median_km_with_train" in metrics:
            text += (
                f", {metrics['val/loc_median_km_with_train']:.0f} km with "
                f"{metrics['val/gallery_with_train'] - metrics['val/n']:.0f} training locations "
                f"in the gallery, {metrics['val/loc_median_km_train_only']:.0f} km with the "
                "training locations alone"
            )
        text += (
            f"; {bar['loc_answer']} answer {bar['loc_median_km']:.0f} km on the "
            f"{bar['loc_gallery']} gallery, {bar['loc_gain_over_median_baseline']:.2f}x better "
            f"than the always-median baseline ({metrics.get('val/baseline_median_km', 0):.0f} km)"
        )
        log.info(text + ("; quality bar met" if bar["met"] else ""))

    # -- export and resume -----------------------------------------------------------------------
    def export(self) -> Path:
        """Write `model.safetensors` + `config.json` (with metrics, training config, data
        fingerprint) to the run dir, atomically."""
        metrics = {k.removeprefix("val/"): v for k, v in self.last_metrics.items()}
        extra = {
            "metrics": metrics,
            "quality_bar": quality_bar(self.last_metrics) if self.last_metrics else None,
            "train": {
                "config": public(self.cfg),
                "global_step": int(self.global_step),
                "epoch": int(self.current_epoch),
                "optimizer": self.optim_info,
                "init": self.init_from,
                "baseline_latlon": None
                if self.baseline_latlon is None
                else [float(x) for x in self.baseline_latlon],
            },
            "data": {
                "source": self.cfg["data"]["source"],
                "path": self.cfg["data"]["path"],
                "fingerprint": self.data_fingerprint,
            },
        }
        if self.rs_chip is not None:
            extra["rs_chip"] = self.rs_chip
        return save_model(self.model, self.run_dir, extra=extra)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["gair"] = {
            "model_config": self.model.config,
            "data_fingerprint": self.data_fingerprint,
            "train_config": public(self.cfg),
            "last_metrics": dict(self.last_metrics),
            "last_val_step": int(self.last_val_step),
            "init_from": self.init_from,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("gair") or {}
        if saved.get("model_config") != self.model.config:
            raise ValueError(
                "the resume checkpoint was trained with a different model config than this "
                "training config; resume with the run's own config or start a new run dir"
            )
        if saved.get("data_fingerprint") != self.data_fingerprint:
            log.warning(
                "resuming on different data (fingerprint %s, checkpoint has %s)",
                self.data_fingerprint,
                saved.get("data_fingerprint"),
            )
        self.last_metrics = dict(saved.get("last_metrics") or {})
        self.last_val_step = int(saved.get("last_val_step", -1))
        self.init_from = saved.get("init_from")
