"""The demo world's splits: representative held-out blocks, and training chips that never show
a held-out pixel."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest

from gair.evaluation.points import random_land
from gair.world import grid
from gair.world.dataset import WorldTriples
from gair.world.heldout_mask import heldout_raster, window_offsets

INHABITED = ("Africa", "Asia", "Europe", "North America", "Oceania", "South America")


def test_streetviews_are_real_locations_on_land_with_splits(world):
    sv = world.streetviews
    assert {"id", "lat", "lon", "split", "source", "block"} <= set(sv.columns)
    assert sv["id"].is_unique
    assert (sv["source"] == "geoclip").sum() > 80_000
    assert set(sv["split"]) == {"train", "val", "test", "unseen", "buffer"}
    assert (sv["split"] == "train").mean() > 0.7
    assert world.labels(sv[["lat", "lon"]].to_numpy())["is_land"].all()


@pytest.fixture(scope="module")
def land_points(world):
    ll = random_land(world, 20_000, 0)
    return ll, world.split_of(ll), world.labels(ll)


def test_land_area_by_split(world, land_points):
    _, split, _ = land_points
    share = pd.Series(split).value_counts(normalize=True)
    assert 0.08 < share["test"] < 0.12 and 0.08 < share["val"] < 0.12
    assert share["train"] > 0.7 and share["buffer"] < 0.06


@pytest.mark.parametrize("kind", ["streetviews", "land"])
def test_test_split_looks_like_the_world(world, land_points, kind):
    if kind == "land":
        ll, split, labels = land_points
    else:
        sv = world.streetviews
        ll, split = sv[["lat", "lon"]].to_numpy(), sv["split"].to_numpy()
        labels = world.labels(ll)
    test = split == "test"
    blocks = {
        h3.latlng_to_cell(a, b, world.manifest["splits"]["block_h3_res"]) for a, b in ll[test]
    }
    assert len(blocks) >= 100
    country = pd.Series(labels["country"][test])
    assert country[country != ""].value_counts().iloc[0] / test.sum() <= 0.15
    seen = set(labels["country"][split == "train"])
    assert np.isin(labels["country"][test], list(seen)).mean() >= 0.9
    continent = pd.Series(labels["continent"][test]).value_counts(normalize=True)
    for name in INHABITED:
        assert continent.get(name, 0.0) >= 0.02, name


def test_unseen_region_is_held_out_whole(world):
    sv = world.streetviews
    parent = world.manifest["splits"]["unseen_block"]
    cells = [h3.latlng_to_cell(a, b, 0) for a, b in zip(sv.lat, sv.lon)]
    inside = np.array(cells) == parent
    assert (sv["split"][inside] == "unseen").all() and (sv["split"][~inside] != "unseen").all()
    london = world.labels(np.array([51.5, -0.12]))
    assert london["country"] == "GBR" and world.split_of(np.array([51.5, -0.12])) == "unseen"


def test_raster_agrees_with_h3_at_pixel_centres(world):
    held = world.manifest["splits"]["heldout_blocks"]
    res = world.manifest["splits"]["block_h3_res"]
    some = {c: v for c, v in list(held.items())[:40] if h3.get_resolution(c) == res}
    mask = heldout_raster(some)
    rng = np.random.default_rng(0)
    r = rng.integers(0, grid.HEIGHT, 40_000)
    c = rng.integers(0, grid.WIDTH, 40_000)
    lat, lon = grid.row_lat(r), grid.col_lon(c)
    inside = np.array([h3.latlng_to_cell(a, b, res) in some for a, b in zip(lat, lon)])
    assert inside.sum() > 50
    assert mask[r[inside], c[inside]].all()  # every pixel centre in a block is masked


def test_no_training_chip_shows_a_held_out_pixel(world):
    ds = WorldTriples(world, "train", "tiny", seed=3)
    mask = world.splits.mask
    sv = world.streetviews
    held = sv[sv["split"].isin(["val", "test", "unseen"])][["lat", "lon"]].to_numpy()
    # the training locations nearest to held-out blocks, over several epochs
    from scipy.spatial import cKDTree

    tree = cKDTree(grid.unit_vectors(held[:, 0], held[:, 1]))
    d, _ = tree.query(grid.unit_vectors(ds.latlon[:, 0], ds.latlon[:, 1]))
    near = np.argsort(d)[:400]
    for epoch in range(3):
        ds.set_epoch(epoch)
        u = np.random.default_rng(epoch).random(len(near))
        offsets = ds._clear_offsets(near, u)
        assert np.abs(offsets).max() <= 1.0
        _, bbox = world.chips(ds.latlon[near], ds.chip_px, offsets)
        for west, _, _, north in bbox:  # World.chips reads rows R..R+S and columns C..C+S
            r0 = int(np.floor((90.0 - north) / grid.DEG_PER_PX))
            c0 = int(np.floor((west + 180.0) / grid.DEG_PER_PX))
            rows = np.arange(r0, r0 + ds.chip_px + 1)
            cols = np.arange(c0, c0 + ds.chip_px + 1) % grid.WIDTH
            assert not mask[np.ix_(rows, cols)].any()
    # and the point stays inside its chip
    sample = ds[int(near[0])]
    w, s, e, n = sample["rs_bbox"].tolist()
    lat, lon = sample["latlon"].tolist()
    assert s <= lat <= n and (w <= lon <= e or w <= lon + 360 <= e or w <= lon - 360 <= e)


def test_window_offsets_put_the_point_where_the_window_says():
    ll = np.array([[10.03, 20.01], [-45.5, 179.99], [60.0, -179.97]])
    s = 8
    for k in range(s):
        off = window_offsets(ll, s, np.full((3, 2), k))
        assert (np.abs(off) <= 1.0).all()


def test_split_of_arbitrary_points_matches_the_stored_splits(world):
    sv = world.streetviews.sample(2000, random_state=0)
    got = world.split_of(sv[["lat", "lon"]].to_numpy())
    assert (got == sv["split"].to_numpy()).all()
    assert world.split_of(np.array([[10.0, 20.0], [-30.0, 140.0]])).shape == (2,)
