"""WorldTriples: the training triples of the demo world."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from gair.geo import to_chip_coords
from gair.world import WorldTriples


def test_sample_keys_shapes_and_dtypes(world):
    ds = WorldTriples(world, "train", "tiny")
    s = ds[3]
    assert s["rs"].shape == (4, 32, 32) and s["rs"].dtype == torch.float32
    assert s["rs_bbox"].shape == (4,) and s["rs_bbox"].dtype == torch.float64
    assert s["sv"].shape == (3, 64, 64) and s["sv"].dtype == torch.float32
    assert s["latlon"].shape == (2,) and s["latlon"].dtype == torch.float64
    for key, dtype in [
        ("koppen", torch.int64),
        ("landcover", torch.int64),
        ("elevation_m", torch.float32),
        ("population", torch.float32),
        ("is_land", torch.bool),
    ]:
        assert s[key].shape == () and s[key].dtype == dtype
    # normalised, not raw: roughly zero-centred values
    assert -5 < float(s["rs"].mean()) < 5 and float(s["sv"].std()) > 0.1
    # the point lies inside its chip
    xy = to_chip_coords(s["latlon"].numpy(), s["rs_bbox"].numpy())
    assert np.abs(xy).max() <= 1.0


def test_only_locations_of_the_split(world):
    sv = world.streetviews
    for split in ("train", "val", "test"):
        ds = WorldTriples(world, split, "tiny")
        assert len(ds) == (sv["split"] == split).sum()
        got = world.split_of(ds.latlon[:200])
        assert (got == split).all()


def test_val_is_deterministic_and_train_changes_with_the_epoch(world):
    val = WorldTriples(world, "val", "tiny", seed=1)
    a, b = val[10], val[10]
    for k in a:
        assert torch.equal(a[k], b[k])
    val.set_epoch(5)
    assert torch.equal(val[10]["rs_bbox"], a["rs_bbox"])  # val ignores the epoch

    train = WorldTriples(world, "train", "tiny", seed=1)
    x0 = train[10]
    assert torch.equal(train[10]["sv"], x0["sv"])  # deterministic for (seed, epoch, index)
    train.set_epoch(1)
    x1 = train[10]
    assert torch.equal(x1["latlon"], x0["latlon"])
    assert not torch.equal(x1["rs_bbox"], x0["rs_bbox"])  # a new random offset
    assert not torch.equal(x1["sv"], x0["sv"])  # and a new view


def test_train_offsets_spread_over_the_chip(world):
    ds = WorldTriples(world, "train", "tiny")
    batch = ds.__getitems__(list(range(200)))
    xy = np.stack([to_chip_coords(s["latlon"].numpy(), s["rs_bbox"].numpy()) for s in batch])
    assert np.abs(xy).max() <= 1.0 + 1e-9
    assert xy.std(axis=0).min() > 0.4  # uniform on [-1, 1] has std 0.58


def test_dataloader_batches_equal_single_samples(world):
    ds = WorldTriples(world, "test", "tiny", length=40)
    batch = next(iter(DataLoader(ds, batch_size=8, shuffle=False)))
    assert batch["rs"].shape == (8, 4, 32, 32) and batch["sv"].shape == (8, 3, 64, 64)
    one = ds[5]
    for k in one:
        assert torch.equal(batch[k][5], one[k])


def test_dataloader_workers_give_the_same_samples(world):
    ds = WorldTriples(world, "val", "tiny", length=16)
    a = next(iter(DataLoader(ds, batch_size=16, num_workers=0)))
    b = next(iter(DataLoader(ds, batch_size=16, num_workers=1)))
    for k in a:
        assert torch.equal(a[k], b[k])


def test_config_must_match_the_world_bands(world):
    with pytest.raises(ValueError, match="bands"):
        WorldTriples(world, "train", "paper")
    with pytest.raises(ValueError, match="split"):
        WorldTriples(world, "holdout", "tiny")
