"""Coordinate conventions of gair.geo: chip coordinates, antimeridian, validation."""

import numpy as np
import pytest
import torch

from gair import geo


def test_corners_map_to_chip_corners():
    bbox = np.array([10.0, 40.0, 12.0, 42.0])  # west, south, east, north
    latlon = np.array([[42.0, 10.0], [42.0, 12.0], [40.0, 10.0], [40.0, 12.0], [41.0, 11.0]])
    xy = geo.to_chip_coords(latlon, bbox)
    np.testing.assert_allclose(xy, [[-1, -1], [1, -1], [-1, 1], [1, 1], [0, 0]], atol=1e-12)


def test_north_west_point_maps_near_minus_one():
    bbox = np.array([-83.28, 42.47, -83.25, 42.49])
    xy = geo.to_chip_coords(np.array([42.48995, -83.27995]), bbox)
    assert xy[0] < -0.99 and xy[1] < -0.99


def test_antimeridian_bbox():
    bbox = np.array([179.0, -1.0, -179.0, 1.0])  # 2 degrees wide, crossing 180
    latlon = np.array([[0.0, 179.0], [0.0, 180.0], [0.0, -180.0], [0.0, -179.5], [0.0, -179.0]])
    xy = geo.to_chip_coords(latlon, bbox)
    np.testing.assert_allclose(xy[:, 0], [-1.0, 0.0, 0.0, 0.5, 1.0], atol=1e-9)
    back = geo.from_chip_coords(xy, bbox)
    np.testing.assert_allclose(geo.wrap_lon(back[:, 1] - latlon[:, 1]), 0, atol=1e-9)


def test_torch_and_numpy_agree():
    bbox = np.array([170.0, 10.0, -170.0, 30.0])
    latlon = np.array([[20.0, 175.0], [15.0, -171.0]])
    np_xy = geo.to_chip_coords(latlon, bbox)
    t_xy = geo.to_chip_coords(torch.from_numpy(latlon), torch.from_numpy(bbox))
    np.testing.assert_allclose(np_xy, t_xy.numpy())


def test_haversine_known_distance():
    paris, london = np.array([48.8566, 2.3522]), np.array([51.5074, -0.1278])
    assert abs(geo.haversine_km(paris, london) - 343.5) < 2.0
    across = geo.haversine_km(np.array([0.0, 179.5]), np.array([0.0, -179.5]))
    assert abs(across - 111.2) < 0.5  # one degree at the equator, across the antimeridian


@pytest.mark.parametrize(
    "bad, needle",
    [
        ([[np.nan, 0.0]], "nan"),
        ([[91.0, 0.0]], "91.0"),
        ([[0.0, np.inf]], "inf"),
        ([[0.0, 0.0, 0.0]], "shape"),
    ],
)
def test_bad_latlon_raises_naming_value(bad, needle):
    with pytest.raises(ValueError, match=needle):
        geo.validate_latlon(np.array(bad))


def test_validate_wraps_longitude():
    out = geo.validate_latlon(np.array([[10.0, 190.0], [0.0, -180.0]]))
    np.testing.assert_allclose(out, [[10.0, -170.0], [0.0, -180.0]])


def test_validate_point_messages():
    with pytest.raises(ValueError, match="abc"):
        geo.validate_point("abc", 3)
    with pytest.raises(ValueError, match="-95"):
        geo.validate_point(-95, 3)
    assert geo.validate_point("45.5", "181") == (45.5, -179.0)


@pytest.mark.parametrize("bbox", [[0, 10, 1, 5], [0, 0, 0, 1], [0, -91, 1, 0], [np.nan, 0, 1, 1]])
def test_bad_bbox(bbox):
    with pytest.raises(ValueError, match="rs_bbox"):
        geo.validate_bbox(np.array(bbox, dtype=float))


# -- validation before computing (issue #18 item 4; more in test_validation.py) -------------
@pytest.mark.parametrize("as_tensor", [False, True])
@pytest.mark.parametrize(
    "latlon, bbox, needle",
    [
        ([np.nan, 11.0], [10.0, 40.0, 12.0, 42.0], "latlon contains a non-finite value: nan"),
        ([95.0, 11.0], [10.0, 40.0, 12.0, 42.0], "latlon: latitude 95.0"),
        ([41.0, 11.0], [10.0, 42.0, 12.0, 40.0], "bbox: need -90 <= south < north <= 90"),
        ([41.0, 11.0], [11.0, 40.0, 11.0, 42.0], "bbox: west and east must differ"),
        ([41.0, 11.0], [10.0, 41.0, 12.0, 41.0], "bbox: need -90 <= south < north <= 90"),
        ([[41.0, 11.0, 1.0]], [10.0, 40.0, 12.0, 42.0], "latlon must have shape (..., 2)"),
        ([41.0, 11.0], [[10.0, 40.0]], "bbox must have shape (..., 4)"),
    ],
)
def test_to_chip_coords_validates_first(latlon, bbox, needle, as_tensor):
    wrap = torch.tensor if as_tensor else np.array
    with pytest.raises(ValueError) as err:
        geo.to_chip_coords(wrap(latlon), wrap(bbox))
    assert needle in str(err.value)


def test_longitudes_wrap_once_either_way_and_no_further():
    assert geo.validate_point(0, 181) == (0.0, -179.0)
    assert geo.validate_point(0, -540) == (0.0, -180.0)
    np.testing.assert_allclose(geo.validate_latlon([[0.0, 181.0]]), [[0.0, -179.0]])
    np.testing.assert_allclose(geo.validate_latlon([[0.0, -540.0]]), [[0.0, -180.0]])
    for lon in (541, 1e308, "1e308", -541):
        with pytest.raises(ValueError, match=r"longitude.*\[-540, 540\]"):
            geo.validate_point(0, lon)
    for lon in (541.0, 1e308):
        with pytest.raises(ValueError, match=r"longitude .* is outside \[-540, 540\]"):
            geo.validate_latlon([[0.0, lon]])


def test_bbox_longitudes_are_bounded_and_the_whole_circle_is_not_degenerate():
    with pytest.raises(ValueError, match="west and east must be in"):
        geo.validate_bbox(np.array([0.0, 0.0, 1e308, 1.0]))
    assert geo.bbox_width_deg(np.array([-180.0, -90.0, 180.0, 90.0])) == 360.0
    assert geo.bbox_width_deg(np.array([179.0, 0.0, -179.0, 1.0])) == 2.0
