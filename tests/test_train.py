"""Training module: real (tiny) fits on synthetic data; export, reload, exact resume."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load as load_safetensors

from gair import load_model
from gair.checkpoint import checkpoint_hash
from gair.cli import main as gair_main
from gair.run_dir import rs_chip_km
from train.checkpointing import RESUME_FILE, load_resume_state
from train.config import load_config
from train.data import collate
from train.runner import train
from train.synthetic import SyntheticTriples


def tiny_cfg(*overrides: str, max_steps: int | None = None) -> dict:
    return load_config("test", list(overrides), max_steps)


def run_files(run_dir) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir())


def test_fit_writes_a_run_dir_that_reloads_exactly(tmp_path):
    cfg = tiny_cfg(max_steps=12)
    summary = train(cfg, out=tmp_path / "run")
    run = tmp_path / "run"
    assert summary["global_step"] == 12 and summary["steps_run"] == 12
    assert run_files(run) == [
        "config.json",
        "hparams.yaml",
        "last.ckpt",
        "metrics.csv",
        "model.safetensors",
    ]
    meta = json.loads((run / "config.json").read_text())
    assert meta["train"]["global_step"] == 12
    assert meta["data"]["fingerprint"].startswith("synthetic:")
    # the chips' ground size travels with the run (synthetic chips: 32/15 degree squares)
    chip = meta["rs_chip"]
    assert chip["shape"] == "degree-square" and chip["px"] == 16
    assert chip["deg"] == pytest.approx(32 / 15) and chip["km"] == pytest.approx(237.2, abs=0.1)
    assert rs_chip_km(meta) == chip["km"] and meta["train"]["init"] is None
    assert meta["train"]["config"]["name"] == "test"
    for key in ("r1", "r10", "loc_median_km", "baseline_median_km"):
        assert meta["metrics"][key] == pytest.approx(summary["metrics"][key])
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {
        "train/loss",
        "train/lr",
        "val/r10",
        "val/loc_median_km",
        "val/baseline_median_km",
    } <= set(header)
    assert load_resume_state(run / RESUME_FILE)["global_step"] == 12

    # the exported model reproduces the in-memory model exactly
    trained = summary["module"].model.eval()
    loaded = load_model(run)
    data = SyntheticTriples("val", cfg["model_config"], 8, seed=5)
    batch = collate([data[i] for i in range(8)])
    with torch.no_grad():
        a, b = trained(batch), loaded(batch)
        for key in ("z", "s", "loss", "incl", "secl_sv", "secl_rs"):
            assert torch.equal(a[key], b[key]), key
        ll = batch["latlon"]
        assert torch.equal(trained.encode_location(ll), loaded.encode_location(ll))


@pytest.mark.parametrize("mode", ["center-pool", "bilinear"])
def test_inr_ablation_modes_train(tmp_path, mode):
    cfg = tiny_cfg(f"model.inr.mode={mode}", "data.val_samples=32", max_steps=3)
    train(cfg, out=tmp_path / mode)
    assert load_model(tmp_path / mode).config["inr"]["mode"] == mode


def test_refuses_to_overwrite_a_run_without_resume(tmp_path):
    cfg = tiny_cfg(max_steps=2)
    train(cfg, out=tmp_path / "run")
    with pytest.raises(ValueError, match="--resume"):
        train(cfg, out=tmp_path / "run")


def test_revalidate_rescores_a_finished_run_without_training(tmp_path):
    cfg = tiny_cfg(max_steps=4)
    run = tmp_path / "run"
    train(cfg, out=run)
    weights = (run / "model.safetensors").read_bytes()
    meta = json.loads((run / "config.json").read_text())
    meta["metrics"] = {"r10": -1.0}  # as if scored by older metrics code
    (run / "config.json").write_text(json.dumps(meta))
    rows = len((run / "metrics.csv").read_text().splitlines())

    again = train(cfg, out=run, resume=True, revalidate=True)
    assert again["steps_run"] == 0 and again["global_step"] == 4
    meta = json.loads((run / "config.json").read_text())
    assert meta["train"]["global_step"] == 4
    assert meta["metrics"]["r10"] >= 0 and "loc_posterior_median_km" in meta["metrics"]
    assert meta["quality_bar"]["loc_answer"] == "posterior-median"
    with open(run / "metrics.csv", newline="") as f:
        logged = list(csv.DictReader(f))
    assert len(logged) >= rows - 1 and logged[-1]["val/loc_posterior_median_km"] != ""
    loaded = load_model(run).state_dict()
    for name, tensor in load_safetensors(weights).items():  # the same weights, bit for bit
        assert torch.equal(loaded[name], tensor), name


def test_cli_revalidate_needs_resume(tmp_path, capsys):
    assert gair_main(["train", "--config", "test", "--revalidate", "--out", str(tmp_path)]) == 2
    assert "--revalidate needs --resume" in capsys.readouterr().err


class Crash(Callback):
    """Simulates a crash when the step after optimizer step `at` starts (after every save and
    validation that step triggered)."""

    def __init__(self, at: int):
        self.at = at

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at:
            raise RuntimeError("simulated crash")


RESUME_OVERRIDES = ("data.val_samples=32",)  # 16 batches per epoch, a checkpoint every 4 steps


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return train(tiny_cfg(*RESUME_OVERRIDES), out=tmp_path_factory.mktemp("whole") / "run")


@pytest.mark.parametrize("crash_at", [8, 16])  # mid-epoch; the last batch of epoch 0
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, crash_at, uninterrupted):
    cfg, whole = tiny_cfg(*RESUME_OVERRIDES), uninterrupted  # 2 epochs = 32 steps
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, out=tmp_path / "crashed", callbacks=[Crash(crash_at)])
    assert load_resume_state(tmp_path / "crashed" / RESUME_FILE)["global_step"] == crash_at
    resumed = train(cfg, out=tmp_path / "crashed", resume=True)
    assert resumed["resumed_from_step"] == crash_at
    assert resumed["steps_run"] == whole["global_step"] - crash_at
    assert resumed["global_step"] == whole["global_step"] == 32
    a = whole["module"].model.state_dict()
    b = resumed["module"].model.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not list((tmp_path / "crashed").glob(".*"))


# -- fine-tuning from a run dir (--init) --------------------------------------------------------
class FirstWeights(Callback):
    """Records the model's weights when training starts."""

    def on_train_start(self, trainer, pl_module):
        self.state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("base") / "run"
    train(tiny_cfg("data.val_samples=32", max_steps=4), out=run)
    return run


def test_init_fine_tunes_from_a_trained_run(base_run, tmp_path):
    cfg = load_config("test", ["data.val_samples=32"], 3, init=base_run)
    assert cfg["init"] == str(base_run)
    first = FirstWeights()
    summary = train(cfg, out=tmp_path / "ft", callbacks=[first])
    assert summary["global_step"] == 3
    base = load_model(base_run).state_dict()
    for key, tensor in base.items():  # training started from the run's weights
        if not key.startswith("criterion."):
            assert torch.equal(first.state[key], tensor), key
    assert first.state["criterion.queue.count"] == 0  # the loss state is the config's
    meta = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert meta["train"]["init"] == {"run_dir": str(base_run), "sha256": checkpoint_hash(base_run)}
    assert meta["train"]["config"]["init"] == str(base_run)
    tuned = load_model(tmp_path / "ft").state_dict()
    assert not torch.equal(tuned["sv_proj.weight"], base["sv_proj.weight"])  # it trained


def test_init_model_config_must_agree_or_come_from_the_run(base_run):
    with pytest.raises(ValueError, match=r"differs from the one of --init.*rs\.heads"):
        load_config("test", ["model.rs.heads=1"], 2, init=base_run)
    # model: init takes the run's model (loss settings may change: they are training state)
    cfg = load_config("test", ["model=init", "model.loss.temperature=0.05"], 2, init=base_run)
    assert cfg["model_config"]["rs"] == load_model(base_run).config["rs"]
    assert cfg["model_config"]["loss"]["temperature"] == 0.05
    with pytest.raises(ValueError, match="none is given"):
        load_config("test", ["model=init"], 2)
    with pytest.raises(FileNotFoundError, match="--init"):
        load_config("test", [], 2, init=base_run.parent / "nope")


def test_cli_init(base_run, tmp_path, capsys):
    out = tmp_path / "ft"
    argv = ["train", "--config", "test", "--init", str(base_run), "--out", str(out)]
    assert gair_main(argv + ["--max-steps", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["global_step"] == 2
    assert json.loads((out / "config.json").read_text())["train"]["init"]["run_dir"] == str(
        base_run
    )
    assert gair_main(argv[:4] + [str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "--init" in capsys.readouterr().err


def test_init_fine_tunes_an_imported_official_checkpoint(tmp_path):
    """The official release's layout (a small random one), imported, then fine-tuned on
    synthetic data with its own model config (10-band 96 px chips, 224 px views)."""
    from gair.official import import_official
    from tests.official_reference import (
        add_gair_model_extras,
        make_release_state,
        save_release_checkpoint,
    )

    state = make_release_state(rs_depth=1, sv_depth=1, loc_hidden=32, n_freq=8, seed=3)
    save_release_checkpoint(add_gair_model_extras(state), tmp_path / "gair.pth")
    import_official(tmp_path / "gair.pth", tmp_path / "official")
    overrides = ["model=init", "data.synthetic_train=16", "data.synthetic_val=8",
                 "data.val_samples=8", "data.gallery_train=8", "optimizer.batch_size=4"]  # fmt: skip
    cfg = load_config("test", overrides, 2, init=tmp_path / "official")
    assert cfg["model_config"]["name"] == "official"
    first = FirstWeights()
    summary = train(cfg, out=tmp_path / "ft", callbacks=[first])
    assert summary["global_step"] == 2
    imported = load_model(tmp_path / "official").state_dict()
    assert torch.equal(
        first.state["point_query.decoder.weight"], imported["point_query.decoder.weight"]
    )
    meta = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert meta["model"]["rs"]["encoder"] == "croma_vit" and meta["rs_chip"]["px"] == 96
