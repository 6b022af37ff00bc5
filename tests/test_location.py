"""The GeoCLIP-style location encoder: projection, coordinate order, pretrained weights."""

import pytest
import torch
import torch.nn.functional as F

from gair.encoders.location import (
    LocationEncoder,
    equal_earth,
    geoclip_weights_path,
    load_geoclip_weights,
)


def _need_geoclip():
    try:
        geoclip_weights_path()
    except FileNotFoundError as err:
        pytest.skip(str(err))


GEOCLIP_CFG = {"sigmas": [1.0, 16.0, 256.0], "n_freq": 256, "hidden": 1024, "depth": 3, "seed": 0}


def test_equal_earth_axes_and_range():
    pts = torch.tensor([[0.0, 0.0], [0.0, 180.0], [90.0, 0.0], [0.0, -90.0]])
    v = equal_earth(pts)
    assert torch.allclose(v[0], torch.zeros(2))
    assert v[1, 0] > 0.9 and abs(v[1, 1]) < 1e-6  # longitude drives x
    assert v[2, 1] > 0.4 and abs(v[2, 0]) < 1e-6  # latitude drives y
    assert v[3, 0] < 0
    assert v.abs().max() <= 1.0


def test_equal_earth_is_equal_area_like():
    # x extent shrinks towards the poles, unlike plate carree
    eq = equal_earth(torch.tensor([[0.0, 180.0], [60.0, 180.0]]))
    assert eq[1, 0] < eq[0, 0] * 0.8


@pytest.fixture(scope="module")
def pretrained():
    _need_geoclip()
    enc = LocationEncoder(GEOCLIP_CFG, 512)
    fresh = load_geoclip_weights(enc)
    assert fresh == []  # 512-d head: every tensor comes from GeoCLIP
    return enc.eval()


def test_pretrained_nearby_cities_are_more_similar(pretrained):
    cities = {
        "paris": (48.8566, 2.3522),
        "brussels": (50.8503, 4.3517),
        "sydney": (-33.8688, 151.2093),
        "tokyo": (35.6762, 139.6503),
        "yokohama": (35.4437, 139.6380),
        "new_york": (40.7128, -74.0060),
        "boston": (42.3601, -71.0589),
    }
    with torch.no_grad():
        emb = F.normalize(pretrained(torch.tensor(list(cities.values()))), dim=-1)
    sim = dict(zip(cities, emb))

    def cos(a, b):
        return float(sim[a] @ sim[b])

    assert cos("paris", "brussels") > cos("paris", "sydney")
    assert cos("paris", "brussels") > cos("paris", "new_york")
    assert cos("tokyo", "yokohama") > cos("tokyo", "boston")
    assert cos("new_york", "boston") > cos("new_york", "tokyo")


def test_equal_earth_matches_proj():
    """Our projection equals PROJ's Equal Earth (unit sphere) times GeoCLIP's scale, with our
    (lat, lon) order against PROJ's (lon, lat): pins the input order independently."""
    from pyproj import Proj

    proj = Proj("+proj=eqearth +R=1")
    latlon = [(45.0, 90.0), (-30.0, -120.0), (70.0, 10.0), (-5.0, 179.0)]
    want = torch.tensor([proj(lon, lat) for lat, lon in latlon], dtype=torch.float64) * (
        66.50336 / 180
    )
    got = equal_earth(torch.tensor(latlon, dtype=torch.float64))
    torch.testing.assert_close(got, want, atol=1e-9, rtol=0)


def test_geoclip_init_needs_matching_shapes():
    _need_geoclip()
    with pytest.raises(ValueError, match="hidden=1024"):
        load_geoclip_weights(LocationEncoder({**GEOCLIP_CFG, "hidden": 256}, 512))


def test_head_stays_fresh_for_other_sizes():
    _need_geoclip()
    fresh = load_geoclip_weights(LocationEncoder(GEOCLIP_CFG, 256))
    assert "branches.0.head.weight" in fresh
