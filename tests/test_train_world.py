"""Training on the real demo world (the `world_dir` session fixture): the on-the-fly loader feeds a
short fit, and the run dir records the world's fingerprint."""

from __future__ import annotations

import json

import pytest

from gair import load_model
from gair.world import World
from train.config import load_config
from train.runner import train


@pytest.mark.slow
def test_short_fit_on_the_demo_world(world_dir, tmp_path):
    cfg = load_config(
        "test",
        [
            "data.source=world",
            f"data.path={world_dir}",
            "data.samples_per_epoch=64",
            "data.val_samples=64",
            "data.gallery_train=256",
            "data.num_workers=1",
        ],
        max_steps=6,
    )
    summary = train(cfg, out=tmp_path / "run")
    assert summary["global_step"] == 6
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["data"] == {
        "source": "world",
        "path": str(world_dir),
        "fingerprint": World.open(world_dir).fingerprint,
    }
    m = meta["metrics"]
    assert m["n"] == m["gallery"] == 64 and m["gallery_with_train"] == 64 + 256
    assert 0 <= m["r10"] <= 1 and m["loc_median_km"] >= 0 and m["baseline_median_km"] > 0
    assert load_model(tmp_path / "run").config["rs"]["bands"] == World.open(world_dir).bands
    # the chips' ground size: 16 px of 1/15 degree (the world's raster), 1.0667 degree squares
    chip = meta["rs_chip"]
    assert chip["shape"] == "degree-square" and chip["px"] == 16
    assert chip["deg"] == pytest.approx(16 / 15) and chip["km"] == pytest.approx(118.6, abs=0.1)
