"""Grids over an area of interest (issue 15): `gair index build --aoi` with a GeoJSON polygon or
a bbox, filled with H3 from the area, never by listing the globe; the globe's own limit."""

from __future__ import annotations

import json
import math
import time

import h3
import numpy as np
import pytest
import shapely

from index import aoi as aoi_module
from index import grid as grids
from index.build import BuildSpec, select_cells

KM_PER_DEG = 111.19492664455873


def _square(lat0: float, lon0: float, side_km: float) -> dict:
    """A GeoJSON Polygon: side_km x side_km on the ground, south-west corner at (lat0, lon0)."""
    dlat = side_km / KM_PER_DEG
    dlon = side_km / (KM_PER_DEG * math.cos(math.radians(lat0 + dlat / 2)))
    ring = [[lon0, lat0], [lon0 + dlon, lat0], [lon0 + dlon, lat0 + dlat], [lon0, lat0 + dlat]]
    return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}


def _write(path, obj) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def _globe(res: int) -> tuple[list[str], np.ndarray]:
    """Every cell at `res` and its centre (lat, lon), listed the slow way (the reference)."""
    cells = sorted(c for base in h3.get_res0_cells() for c in h3.cell_to_children(base, res))
    return cells, np.array([h3.cell_to_latlng(c) for c in cells])


@pytest.fixture
def no_globe(monkeypatch):
    """Listing the globe fails: a grid over an area must not need it."""

    def refuse(*args, **kwargs):
        raise AssertionError("the globe was listed")

    monkeypatch.setattr(grids.h3, "get_res0_cells", refuse)


def test_20_km_aoi_at_resolution_9_without_listing_the_globe(tmp_path, no_globe, world):
    path = _write(tmp_path / "aoi.geojson", {"type": "Feature", "properties": {},
                                             "geometry": _square(48.80, 2.25, 20.0)})  # fmt: skip
    aoi = grids.load_aoi(path)
    assert aoi.area_km2 == pytest.approx(400.0, rel=0.01)
    started = time.perf_counter()
    cells = grids.grid_cells("h3:9", aoi=aoi)
    assert time.perf_counter() - started < 10.0
    # ~400 km^2 / 0.105 km^2 per res-9 cell (the global mean; cells are smaller at 49 N)
    assert 3_000 < len(cells) < 5_500
    assert grids.estimate_cells(9, aoi=aoi) == pytest.approx(3_800, rel=0.02)
    assert aoi.contains(cells[["lat", "lon"]].to_numpy()).all()
    assert cells["cell_id"].is_unique and list(cells["cell_id"]) == sorted(cells["cell_id"])
    assert {h3.get_resolution(c) for c in cells["cell_id"]} == {9}
    # the build's selection goes the same way (and labels the cells from the world)
    spec = BuildSpec(checkpoint="unused", world="unused", grid="h3:9", aoi=path)
    selected = select_cells(spec, world)
    assert list(selected["cell_id"]) == list(cells["cell_id"]) and "is_land" in selected
    assert len(grids.grid_cells("h3:10", aoi=aoi)) > 6 * len(cells)


@pytest.mark.parametrize(
    "bbox",
    [
        (0.0, 44.0, 6.0, 49.0),
        (170.0, -20.0, -170.0, 20.0),  # across the antimeridian
        (-180.0, -90.0, 180.0, 90.0),  # the whole globe
        (-180.0, 60.0, 180.0, 90.0),  # a polar cap (H3 cannot fill it in one piece)
        (100.0, 80.0, -100.0, 90.0),
        (-179.5, -5.0, 179.5, 5.0),  # almost all the way round
        (0.0, -90.0, 90.0, 90.0),
        (180.0, -10.0, -170.0, 10.0),
    ],
)
def test_bbox_cells_are_those_whose_centre_is_inside(bbox):
    """A bbox is filled, not listed, and means what it meant: the globe's cells filtered by
    `in_bbox` (edges included), in cell-id order."""
    bbox = np.array(bbox)
    for res in (1, 2, 3):
        cells, latlon = _globe(res)
        expected = [c for c, inside in zip(cells, grids.in_bbox(latlon, bbox)) if inside]
        got = grids.h3_cells(res, bbox)
        assert list(got["cell_id"]) == expected, res
        np.testing.assert_array_equal(got["lat"], latlon[np.isin(cells, expected), 0])


def test_bbox_path_never_lists_the_globe(no_globe):
    frame = grids.grid_cells("h3:6", np.array([2.0, 48.0, 3.0, 49.0]))
    assert 200 < len(frame) < 400


def _reference(aoi, res: int) -> set[str]:
    cells, latlon = _globe(res)
    inside = shapely.intersects_xy(aoi.geometry, latlon[:, 1], latlon[:, 0])
    return {c for c, ok in zip(cells, inside) if ok}


def test_polygon_with_a_hole():
    outer = [[0, 40], [20, 40], [20, 55], [0, 55], [0, 40]]
    hole = [[5, 45], [15, 45], [15, 50], [5, 50], [5, 45]]
    aoi = grids.aoi_from_geojson({"type": "Polygon", "coordinates": [outer, hole]}, "hole")
    got = set(grids.h3_cells(3, aoi=aoi)["cell_id"])
    assert got == _reference(aoi, 3)
    centres = np.array([h3.cell_to_latlng(c) for c in got])
    in_hole = (centres[:, 0] > 45) & (centres[:, 0] < 50) & (centres[:, 1] > 5)
    assert not (in_hole & (centres[:, 1] < 15)).any()
    assert aoi.area_km2 == pytest.approx(
        grids.bbox_area_km2(np.array([0, 40, 20, 55])) - grids.bbox_area_km2([5, 45, 15, 50])
    )


def test_antimeridian_aoi_written_three_ways():
    ring = [[170, -10], [190, -10], [190, 10], [170, 10], [170, -10]]
    continuous = {"type": "Polygon", "coordinates": [ring]}
    west = {"type": "Polygon", "coordinates": [[[x - 360, y] for x, y in ring]]}
    cut = {  # RFC 7946: cut at the antimeridian
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {
                    "type": "MultiPolygon",
                    "coordinates": [
                        [[[170, -10], [180, -10], [180, 10], [170, 10], [170, -10]]],
                        [[[-180, -10], [-170, -10], [-170, 10], [-180, 10], [-180, -10]]],
                    ],
                },
            }
        ],
    }
    aois = [grids.aoi_from_geojson(obj, name) for name, obj in
            (("continuous", continuous), ("west", west), ("cut", cut))]  # fmt: skip
    assert len({a.sha256 for a in aois}) == 1
    assert aois[0].bbox == (170.0, -10.0, -170.0, 10.0)
    cells = [set(grids.h3_cells(3, aoi=a)["cell_id"]) for a in aois]
    assert cells[0] == cells[1] == cells[2] == _reference(aois[0], 3)
    # the same area as the bbox across the antimeridian
    bbox = set(grids.h3_cells(3, np.array([170.0, -10.0, -170.0, 10.0]))["cell_id"])
    assert cells[0] == bbox
    # a polygon 340 degrees wide is not one across the antimeridian
    wide = [[-170, -30], [170, -30], [170, 30], [-170, 30], [-170, -30]]
    aoi = grids.aoi_from_geojson({"type": "Polygon", "coordinates": [wide]}, "wide")
    assert aoi.bbox == (-170.0, -30.0, 170.0, 30.0)
    assert set(grids.h3_cells(2, aoi=aoi)["cell_id"]) == _reference(aoi, 2)


def test_polar_and_odd_shapes_fill_exactly():
    cap = [[-180, 60], [180, 60], [180, 90], [-180, 90], [-180, 60]]
    tri = [[10, 10], [60, 70], [100, -20], [10, 10]]
    for ring in (cap, tri):
        aoi = grids.aoi_from_geojson({"type": "Polygon", "coordinates": [ring]}, "shape")
        assert set(grids.h3_cells(3, aoi=aoi)["cell_id"]) == _reference(aoi, 3)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "not an area"),
        ({"type": "Point", "coordinates": [0, 0]}, "not an area"),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
            "Self-intersection",
        ),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 95], [1, 0], [0, 0]]]}, "latitude 95"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [400, 1], [1, 0], [0, 0]]]}, "longitude"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "at least 4"),
        ({"type": "Polygon", "coordinates": [[[0, 0], ["a", 1], [1, 0], [0, 0]]]}, "numbers"),
        ({"type": "Feature", "properties": {}, "geometry": None}, "without geometry"),
        ({"type": "FeatureCollection", "features": []}, "without features"),
        ([1, 2, 3], "not a GeoJSON object"),
        (
            {
                "type": "Polygon",
                "crs": {"type": "name", "properties": {"name": "EPSG:3857"}},
                "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]],
            },
            "WGS 84",
        ),
    ],
)
def test_bad_geojson_is_a_clear_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "area.geojson"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ValueError, match=message) as err:
        grids.load_aoi(path)
    assert str(path) in str(err.value)


def test_too_large_and_missing_aoi_files(tmp_path, monkeypatch):
    path = _write(tmp_path / "big.geojson", _square(10.0, 10.0, 5.0))
    monkeypatch.setattr(aoi_module, "MAX_AOI_BYTES", 50)
    with pytest.raises(ValueError, match="too large") as err:
        grids.load_aoi(path)
    assert "big.geojson" in str(err.value)
    with pytest.raises(FileNotFoundError, match="nope.geojson"):
        grids.load_aoi(tmp_path / "nope.geojson")


def test_grid_size_limits():
    assert grids.MAX_H3_RES == 10 and grids.GLOBE_MAX_RES == 6
    with pytest.raises(ValueError, match="--aoi"):
        grids.grid_cells("h3:7")  # 98 M cells over the globe
    with pytest.raises(ValueError, match="0..10"):
        grids.parse_grid_spec("h3:11")
    big = grids.aoi_from_geojson(_square(0.0, 0.0, 2000.0), "big.geojson")
    with pytest.raises(ValueError, match="big.geojson.*coarser --grid"):
        grids.grid_cells("h3:10", aoi=big)
    with pytest.raises(ValueError, match="bbox"):
        grids.grid_cells("h3:9", np.array([-180.0, -90.0, 180.0, 90.0]))
    assert len(grids.grid_cells("h3:10", np.array([2.30, 48.85, 2.31, 48.86]))) > 10


def test_aoi_is_part_of_the_build_identity(tmp_path):
    a = _write(tmp_path / "a.geojson", _square(45.0, 5.0, 30.0))
    b = _write(tmp_path / "b.geojson", _square(45.0, 5.0, 31.0))
    same = _write(tmp_path / "same.json", {"type": "Feature", "properties": {"x": 1},
                                           "geometry": _square(45.0, 5.0, 30.0)})  # fmt: skip

    def ident(path):
        return BuildSpec("ck", "w", grid="h3:6", aoi=path).identity("hash", "world")

    assert ident(a) != ident(b) and ident(a) == ident(same) and ident(a) != ident(None)
    assert ident(a)["aoi"] == grids.load_aoi(a).sha256


def test_cli_build_with_an_aoi(tiny_run, world_dir, tmp_path, capsys):
    from gair.cli import main

    aoi = _write(tmp_path / "paris.geojson", _square(48.5, 2.0, 60.0))
    out = tmp_path / "index"
    argv = ["index", "build", "--checkpoint", str(tiny_run), "--world", str(world_dir),
            "--grid", "h3:6", "--aoi", aoi, "--gallery-size", "40", "--shard-size", "32",
            "--out", str(out), "--json"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    manifest = json.loads(capsys.readouterr().out)
    expected = grids.grid_cells("h3:6", aoi=grids.load_aoi(aoi))
    assert manifest["cells"]["count"] == len(expected) > 50
    record = manifest["grid"]["aoi"]
    assert record["sha256"] == grids.load_aoi(aoi).sha256 and record["source"] == aoi
    assert record["geojson"]["type"] == "Polygon" and record["area_km2"] == pytest.approx(
        3600, 0.01
    )
    assert record["bbox"][0] == pytest.approx(2.0) and manifest["grid"]["spec"] == "h3:6"
    import pandas as pd

    cells = pd.read_parquet(out / "cells.parquet")
    assert sorted(cells["cell_id"]) == list(expected["cell_id"])
    # --aoi W,S,E,N is the same as --bbox; both at once, or a bad AOI, exit 2 before the model
    bbox_out = tmp_path / "bbox-index"
    argv_bbox = argv[:8] + ["--aoi", "2.0,48.5,2.5,48.8", "--gallery-size", "40",
                            "--out", str(bbox_out), "--json"]  # fmt: skip
    assert main(argv_bbox) == 0
    assert json.loads(capsys.readouterr().out)["grid"]["bbox"] == [2.0, 48.5, 2.5, 48.8]
    assert main(argv + ["--bbox", "0,0,1,1"]) == 2
    assert "not both" in capsys.readouterr().err
    bad = _write(tmp_path / "line.geojson", {"type": "LineString", "coordinates": [[0, 0], [1, 1]]})
    assert main(argv[:9] + [bad, "--out", str(tmp_path / "x")]) == 2
    assert "line.geojson" in capsys.readouterr().err
    globe = ["index", "build", "--checkpoint", str(tiny_run), "--grid", "h3:7"]
    assert main(globe + ["--out", str(tmp_path / "y")]) == 2
    assert "--aoi" in capsys.readouterr().err


def test_coastal_cells_keep_a_land_anchor_inside_them():
    """A hexagon whose centre is at sea but that holds land (a coastal city's) stays in a
    land-only grid, anchored at the land point inside it nearest its centre."""
    from index.grid import coastal_anchors, h3_cells

    cells = h3_cells(3, np.array([0.0, 40.0, 12.0, 50.0]))

    def is_land(latlon):  # land west of 5.0 E
        return np.asarray(latlon)[:, 1] < 5.0

    land = is_land(cells[["lat", "lon"]].to_numpy())
    coast = coastal_anchors(cells, land, is_land)
    assert len(coast) and not set(coast["cell_id"]) & set(cells["cell_id"][land])
    assert (coast["lon"] < 5.0).all()  # every anchor is on land ...
    for row in coast.itertuples():  # ... and inside its own cell
        assert h3.latlng_to_cell(row.lat, row.lon, 3) == row.cell_id
    # every sea-centred cell with a vertex on land (pulled inside) is found
    sea = cells[~land]
    touching = {
        c
        for c, lat, lon in sea[["cell_id", "lat", "lon"]].itertuples(index=False)
        if any(lon + 0.75 * (v[1] - lon) < 5.0 for v in h3.cell_to_boundary(c))
    }
    assert touching <= set(coast["cell_id"])
    assert coastal_anchors(cells, np.ones(len(cells), bool), is_land).empty
