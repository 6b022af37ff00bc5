"""Training on `gair data prepare` output: the spatially blocked split and a short fit."""

from __future__ import annotations

import json

import numpy as np
import yaml
from safetensors.numpy import save_file

from gair import load_model
from gair.data.prepare import PREPARED_FORMAT, PREPARED_FORMAT_VERSION
from gair.preprocess import preprocess_preset
from train.config import CONFIG_DIR, validate
from train.data import prepared_latlon, spatial_split
from train.runner import train

L2A = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]


def write_prepared(out, n=160, shard_size=64, chip=16, view=16, seed=0):
    """A small output in `gair data prepare`'s layout (shards + manifest), made directly."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True)
    lat = rng.uniform(-50, 60, n)
    lon = rng.uniform(-170, 170, n)
    shards = []
    for k, start in enumerate(range(0, n, shard_size)):
        sl = slice(start, min(n, start + shard_size))
        m = sl.stop - sl.start
        la, lo = lat[sl], lon[sl]
        tensors = {
            "rs": (1500 + 700 * rng.standard_normal((m, len(L2A), chip, chip))).astype(np.float32),
            "rs_bbox": np.stack([lo - 0.01, la - 0.01, lo + 0.01, la + 0.01], 1),
            "latlon": np.stack([la, lo], 1),
            "sv": rng.integers(0, 256, (m, view, view, 3), dtype=np.uint8),
            "coverage": np.ones(m, np.float32),
        }
        name = f"shard-{k:05d}.safetensors"
        ids = [f"p{i}" for i in range(sl.start, sl.stop)]
        save_file(
            tensors, str(out / name), metadata={"format": PREPARED_FORMAT, "ids": json.dumps(ids)}
        )
        shards.append({"file": name, "count": m})
    manifest = {
        "format": PREPARED_FORMAT,
        "format_version": PREPARED_FORMAT_VERSION,
        "count": n,
        "bands": L2A,
        "params": {"chip_km": 2.0, "chip_px": chip},  # as `gair data prepare` records them
        "shards": shards,
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return np.stack([lat, lon], 1)


def test_spatial_split_holds_out_whole_blocks():
    rng = np.random.default_rng(1)
    latlon = np.stack([rng.uniform(-60, 60, 2000), rng.uniform(-180, 180, 2000)], 1)
    is_val = spatial_split(latlon, 0.1, 10.0, seed=0)
    assert 0.1 <= is_val.mean() < 0.2
    block = lambda ll: (int((ll[0] + 90) // 10), int((ll[1] + 180) // 10))  # noqa: E731
    val_blocks = {block(p) for p in latlon[is_val]}
    assert not val_blocks & {block(p) for p in latlon[~is_val]}
    assert (spatial_split(latlon, 0.1, 10.0, seed=0) == is_val).all()
    assert (spatial_split(latlon, 0.1, 10.0, seed=1) != is_val).any()


def test_short_fit_on_prepared_triples(tmp_path):
    latlon = write_prepared(tmp_path / "prepared")
    np.testing.assert_array_equal(prepared_latlon(tmp_path / "prepared"), latlon)
    raw = yaml.safe_load((CONFIG_DIR / "test.yaml").read_text())
    raw["model"]["rs"]["bands"] = L2A[1:9] + L2A[10:]  # GAIR's 10 bands, picked by name
    raw["model"]["preprocess"] = preprocess_preset("official")
    raw["data"].update(
        source="prepared",
        path=str(tmp_path / "prepared"),
        val_block_deg=30.0,
        val_fraction=0.2,
        val_samples=64,
        gallery_train=16,
    )
    raw["optimizer"]["batch_size"] = 8
    raw["trainer"]["max_steps"] = 3
    cfg = validate(raw, "test.yaml (prepared)")
    summary = train(cfg, out=tmp_path / "run")
    assert summary["global_step"] == 3
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["data"]["source"] == "prepared" and len(meta["data"]["fingerprint"]) == 64
    assert (
        0 < meta["metrics"]["n"] < 160
        and meta["metrics"]["gallery_with_train"] > meta["metrics"]["n"]
    )
    assert load_model(tmp_path / "run").config["rs"]["bands"] == raw["model"]["rs"]["bands"]
    # the chips' ground size comes from the prepared data: 2 km squares of 16 px
    assert meta["rs_chip"]["km"] == 2.0 and meta["rs_chip"]["shape"] == "ground-square"
    assert meta["rs_chip"]["source_px"] == 16 and meta["rs_chip"]["source_gsd_m"] == 125.0
