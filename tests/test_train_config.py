"""Training module, fast parts: config validation, optimiser recipe, metrics, safe checkpoint I/O."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
import yaml

from gair import build_model
from gair.cli import main as gair_main
from gair.geo import haversine_km
from train import config as tconfig
from train.checkpointing import (
    AtomicCheckpointIO,
    RunCSVLogger,
    clean_stale_temps,
    load_resume_state,
)
from train.metrics import (
    geographic_median,
    median_km,
    quality_bar,
    random_pick_median_km,
    retrieval_recall,
    validation_metrics,
)
from train.optim import no_decay_names, param_groups, scaled_lr, warmup_cosine


def write_yaml(path, data) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


# -- config validation -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["demo", "paper", "real", "test"])
def test_shipped_configs_validate(name):
    cfg = tconfig.load_config(name)
    assert cfg["model_config"]["name"] in ("tiny", "paper")
    assert cfg["name"] == name


def test_unknown_key_is_named_with_the_file(tmp_path):
    path = write_yaml(tmp_path / "x.yaml", {"optimizer": {"lrr": 0.1}})
    with pytest.raises(ValueError, match=r"unknown key 'optimizer\.lrr' in .*x\.yaml"):
        tconfig.load_config(path)


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("optimizer", "base_lr", -1.0),
        ("optimizer", "betas", [0.9]),
        ("optimizer", "batch_size", 0),
        ("trainer", "precision", "fp8"),
        ("trainer", "devices", "many"),
        ("data", "source", "s3"),
        ("trainer", "progress_bar", "yes"),
    ],
)
def test_bad_values_are_named(tmp_path, section, key, value):
    path = write_yaml(tmp_path / "bad.yaml", {section: {key: value}})
    with pytest.raises(ValueError, match=rf"bad value for '{section}\.{key}' in .*bad\.yaml"):
        tconfig.load_config(path)


def test_bad_model_override_is_reported(tmp_path):
    path = write_yaml(tmp_path / "m.yaml", {"model": {"base": "tiny", "inr": {"mode": "nearest"}}})
    with pytest.raises(ValueError, match=r"m\.yaml.*inr\.mode"):
        tconfig.load_config(path)


def test_set_overrides_and_inr_ablation():
    cfg = tconfig.load_config(
        "demo", ["model.inr.mode=center-pool", "optimizer.base_lr=1e-3"], max_steps=7
    )
    assert cfg["model_config"]["inr"]["mode"] == "center-pool"
    assert cfg["model_config"]["rs"]["img_size"] == 32  # the rest of the demo model is kept
    assert cfg["optimizer"]["base_lr"] == 1e-3  # YAML's "1e-3" string is read as a number
    assert cfg["trainer"]["max_steps"] == 7
    with pytest.raises(ValueError, match="unknown key 'optimizer.nope'"):
        tconfig.load_config("demo", ["optimizer.nope=1"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        tconfig.load_config("demo", ["optimizer.base_lr"])


def test_warmup_epochs_and_steps_are_exclusive(tmp_path):
    path = write_yaml(tmp_path / "w.yaml", {"optimizer": {"warmup_epochs": 1, "warmup_steps": 5}})
    with pytest.raises(ValueError, match="not both"):
        tconfig.load_config(path)


def test_missing_world_says_how_to_build_it(tmp_path):
    from train.data import open_datasets

    cfg = tconfig.load_config("demo", [f"data.path={tmp_path / 'nowhere'}"])
    with pytest.raises(FileNotFoundError, match=r"no world at .*nowhere: run `gair world build"):
        open_datasets(cfg)


def test_cli_reports_bad_config_with_exit_code_2(tmp_path, capsys):
    path = write_yaml(tmp_path / "x.yaml", {"optimizer": {"lrr": 0.1}})
    assert gair_main(["train", "--config", path]) == 2
    assert "unknown key 'optimizer.lrr'" in capsys.readouterr().err
    missing = tmp_path / "nowhere"
    assert (
        gair_main(
            [
                "train",
                "--config",
                "demo",
                "--out",
                str(tmp_path / "run"),
                "--set",
                f"data.path={missing}",
            ]
        )
        == 2
    )
    assert "gair world build" in capsys.readouterr().err


# -- optimisation recipe -----------------------------------------------------------------------
def test_no_weight_decay_on_bias_norm_1d_temperature_and_tokens():
    model = build_model({"base": "tiny", "loss": {"learn_temperature": True}})
    skip = no_decay_names(model)
    names = dict(model.named_parameters())
    assert "criterion.log_scale" in skip  # the learnable temperature
    assert "sv_encoder.vit.cls_token" in skip and "rs_encoder.vit.pos_embed" in skip
    assert all(n in skip for n, p in names.items() if p.ndim <= 1)
    assert "sv_encoder.vit.blocks.0.attn.qkv.weight" not in skip
    assert "location_encoder.branches.0.mlp.0.weight" not in skip
    assert not any(n.endswith(".b") for n in names)  # RFF matrices are buffers, never optimised
    groups = param_groups(model, 0.05)
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    assert sum(len(g["params"]) for g in groups) == len(names)


def test_lr_scaling_and_schedule():
    assert scaled_lr(1.5e-4, 256, 2, 4) == pytest.approx(1.5e-4 * 8)
    f = warmup_cosine(warmup_steps=10, total_steps=110, floor=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way down the half-cosine
    assert f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    values = [f(s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


# -- metrics -----------------------------------------------------------------------------------
def test_retrieval_recall():
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(500, 16, generator=g)
    assert retrieval_recall(keys * 3.0, keys) == {1: 1.0, 10: 1.0}
    rand = retrieval_recall(torch.randn(500, 16, generator=g), keys)
    assert rand[10] < 0.06  # chance is 0.02


def test_geographic_median_and_errors():
    pts = np.array([[10.0, 20.0], [10.0, 20.0], [10.0, 20.0], [-50.0, 150.0]])
    np.testing.assert_allclose(geographic_median(pts), [10.0, 20.0], atol=1e-3)
    assert median_km(np.array([0.0, 0.0]), np.array([[0.0, 1.0], [0.0, 0.0], [0.0, 2.0]])) == (
        pytest.approx(111.195, rel=1e-3)
    )


def test_validation_metrics_for_a_perfect_model():
    n = 100
    latlon = torch.stack([torch.linspace(-60, 60, n), torch.linspace(-170, 170, n)], -1).double()
    emb = torch.nn.functional.one_hot(torch.arange(n), n).float()
    base = geographic_median(latlon.numpy())
    m = validation_metrics(emb, emb, latlon, emb, base, -emb[:7], latlon[:7] + 1.0)
    assert m["val/r1"] == 1.0 and m["val/r10"] == 1.0 and m["val/loc_median_km"] == 0.0
    assert m["val/chance_r10"] == pytest.approx(0.1) and m["val/baseline_median_km"] > 1000
    assert m["val/loc_median_km_with_train"] == 0.0 and m["val/gallery_with_train"] == 107
    assert m["val/heldout_pick_median_km"] > 1000  # a random held-out place is far off
    bar = quality_bar(m)
    assert bar["loc_gallery"] == "train" and not bar["met"]  # training places only: far off
    assert m["val/loc_gain_train_only"] < 3.0
    assert "val/loc_posterior_median_km" not in m  # needs the model's temperature


def test_validation_scores_the_posterior_median_answer_with_the_temperature():
    n = 60
    latlon = torch.stack([torch.linspace(-50, 50, n), torch.linspace(-150, 150, n)], -1).double()
    emb = torch.nn.functional.one_hot(torch.arange(n), n).float()
    base = geographic_median(latlon.numpy())
    m = validation_metrics(emb, emb, latlon, emb, base, emb, latlon + 0.5, logit_scale=100.0)
    assert m["val/loc_posterior_median_km"] < 1.0  # a sure posterior answers its own place
    assert m["val/loc_posterior_median_km_train_only"] == pytest.approx(
        m["val/loc_median_km_train_only"], abs=1.0
    )
    bar = quality_bar(m)
    assert bar["loc_answer"] == "posterior-median" and bar["loc_gallery"] == "train"
    assert bar["loc_gain_over_median_baseline"] == m["val/loc_posterior_gain_train_only"]
    assert bar["loc_median_km"] == m["val/loc_posterior_median_km_train_only"]


def test_train_only_gallery_answers_the_nearest_matching_training_place():
    n = 50
    latlon = torch.stack([torch.linspace(-40, 40, n), torch.linspace(-100, 100, n)], -1).double()
    emb = torch.nn.functional.one_hot(torch.arange(n), n).float()
    shifted = latlon + torch.tensor([0.0, 1.0], dtype=torch.float64)  # 1 degree east of each
    m = validation_metrics(emb, emb, latlon, emb, None, emb, shifted)
    assert m["val/loc_median_km_with_train"] == 0.0  # the held-out place itself is in there
    # without it, the best answer is the training place 1 degree of longitude away
    expected = haversine_km(latlon, shifted).median().item()
    assert m["val/loc_median_km_train_only"] == pytest.approx(expected)
    assert 75 < m["val/loc_median_km_train_only"] < 112


def test_random_pick_median_is_the_median_of_all_pairwise_distances():
    true = np.array([[0.0, 0.0], [0.0, 2.0]])
    gallery = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    # distances in degrees along the equator: 0, 1, 3 and 2, 1, 1 -> median of 6 values (1, 1)
    assert random_pick_median_km(gallery, true) == pytest.approx(111.195, rel=1e-3)


def test_quality_bar_uses_the_strictest_gallery():
    m = {"val/r10": 0.2, "val/chance_r10": 0.01, "val/loc_gain": 4.0}
    assert quality_bar(m)["met"] and quality_bar(m)["loc_gallery"] == "heldout"
    m["val/loc_gain_with_train"] = 3.5  # the held-out-only gain no longer counts
    assert quality_bar(m)["met"] and quality_bar(m)["loc_gallery"] == "heldout+train"
    m["val/loc_gain_train_only"] = 1.1  # nor does the one with held-out places in the gallery
    assert not quality_bar(m)["met"] and quality_bar(m)["loc_gallery"] == "train"
    assert quality_bar(m)["loc_answer"] == "best-entry"
    m["val/loc_posterior_gain"] = 9.0  # the product's answer counts once it is scored ...
    assert quality_bar(m)["met"] and quality_bar(m)["loc_answer"] == "posterior-median"
    m["val/loc_posterior_gain_train_only"] = 2.9  # ... on its strictest gallery
    assert not quality_bar(m)["met"] and quality_bar(m)["loc_gallery"] == "train"


# -- crash-safe files --------------------------------------------------------------------------
def test_checkpoint_io_is_atomic_and_refuses_pickled_code(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 3, "state_dict": {"w": torch.ones(2)}}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    assert io.load_checkpoint(path)["global_step"] == 3

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled code ran",))

    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(pickle.dumps({"x": Evil()}, protocol=2))
    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_resume_state(bad)
    (tmp_path / ".last.ckpt.abc123.tmp").write_bytes(b"half")
    assert clean_stale_temps(tmp_path) == [".last.ckpt.abc123.tmp"]


def test_csv_logger_keeps_history_before_the_resumed_step(tmp_path):
    first = RunCSVLogger(tmp_path)
    for step in range(6):
        first.log_metrics({"train/loss": float(step)}, step=step)
    first.save()
    resumed = RunCSVLogger(tmp_path, resume_step=4)
    resumed.log_metrics({"train/loss": 40.0, "val/r10": 0.5}, step=4)
    resumed.save()
    rows = (tmp_path / "metrics.csv").read_text().strip().splitlines()
    assert rows[0] == "step,train/loss,val/r10"
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2", "3", "4"]
    assert not list(tmp_path.glob(".*.tmp"))
    assert math.isclose(float(rows[-1].split(",")[1]), 40.0)


# -- samplers ----------------------------------------------------------------------------------
def test_epoch_sampler_shards_subsets_and_resumes():
    from train.data import EpochSampler

    data = list(range(100))
    ranks = [
        EpochSampler(data, num_replicas=3, rank=r, shuffle=True, seed=1, per_epoch=60)
        for r in range(3)
    ]
    for s in ranks:
        s.set_epoch(2)
    shards = [list(s) for s in ranks]
    assert [len(x) for x in shards] == [20, 20, 20] == [len(s) for s in ranks]
    assert len(set().union(*map(set, shards))) == 60  # disjoint across ranks
    ranks[0].set_epoch(3)
    assert list(ranks[0]) != shards[0]  # a fresh subset per epoch
    ranks[0].set_epoch(2)
    ranks[0].start = 5  # resume: skip what this rank already trained on, once
    assert list(ranks[0]) == shards[0][5:] and list(ranks[0]) == shards[0]
    val = [EpochSampler(data, num_replicas=3, rank=r, shuffle=False, seed=0) for r in range(3)]
    assert sorted(set().union(*map(set, map(list, val)))) == data  # padded, nothing dropped
