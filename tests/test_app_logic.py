"""The app's logic without Streamlit: coordinates, the click result, cross-view search, export,
overlay rasters in Web Mercator, and that the map loads nothing from outside localhost."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from app import assets, logic, maps, raster
from gair.geo import haversine_km


@pytest.fixture(scope="module")
def res(app_paths):
    from app.resources import Settings, open_resources

    return open_resources(Settings(index=str(app_paths["index"]), world=str(app_paths["world"])))


# --------------------------------------------------------------------------- coordinates


@pytest.mark.parametrize(
    "text, expected",
    [
        ("48.85, 2.35", (48.85, 2.35)),
        ("48.85 2.35", (48.85, 2.35)),
        (" -33.9 ; 18.4 ", (-33.9, 18.4)),
        ("33.9S 18.4E", (-33.9, 18.4)),
        ("40.7N, 74.0W", (40.7, -74.0)),
        ("0,-180", (0.0, -180.0)),
    ],
)
def test_parse_coordinates(text, expected):
    assert logic.parse_coordinates(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "lat, lon"),
        ("abc", "cannot read"),
        ("91, 0", "latitude"),
        ("0, 181", "longitude"),
        ("1, 2, 3", "cannot read"),
        ("nan, 1", "cannot read"),
    ],
)
def test_parse_coordinates_rejects_with_a_message(text, message):
    with pytest.raises(ValueError, match=message):
        logic.parse_coordinates(text)


def test_clicks_on_a_world_copy_wrap():
    assert logic.check_point(10.0, 370.0, wrap=True) == pytest.approx((10.0, 10.0))
    with pytest.raises(ValueError):
        logic.check_point(10.0, 370.0)


# --------------------------------------------------------------------------- the click


def test_click_result_matches_the_index(res):
    cell = res.cells.iloc[len(res.cells) // 2]
    r = logic.click_result(res, float(cell["lat"]), float(cell["lon"]), k=5)
    # the clicked point gets the embedding the index stored for the same coordinates
    stored = np.asarray(res.index.cell_vectors[len(res.cells) // 2], np.float32)
    np.testing.assert_allclose(r["embedding"], stored, rtol=1e-3, atol=2e-5)  # float16 store
    assert r["places"].iloc[0]["cell_id"] == cell["cell_id"]
    assert r["places"].iloc[0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert r["places"].iloc[0]["distance_km"] == pytest.approx(0.0, abs=1e-3)
    assert len(r["places"]) == 5 and len(r["streetviews"]) == 5 and len(r["thumbnails"]) == 5
    assert all(t.dtype == np.uint8 and t.ndim == 3 for t in r["thumbnails"])
    assert np.linalg.norm(r["embedding"]) == pytest.approx(1.0, abs=1e-5)
    assert -1 <= r["location_similarity"] <= 1
    nb = r["neighbourhood"]
    assert nb["similarity"].shape == (logic.NEIGHBOURHOOD_N, logic.NEIGHBOURHOOD_N)
    assert nb["lat"][0] >= float(cell["lat"]) >= nb["lat"][-1]
    assert nb["lon"][0] <= float(cell["lon"]) <= nb["lon"][-1]
    assert r["overlay"]["png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert set(r["predictions"]) == {
        "koppen",
        "landcover",
        "elevation_m",
        "population",
        "continent",
    }
    probs = r["predictions"]["koppen"]["probs"]
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert r["truth"]["is_land"] in (True, False) and isinstance(r["truth"]["landcover"], str)


def test_answers_at_sea_and_in_the_unseen_region_carry_their_caveat(res):
    """The heads are fitted on land points of the training split: at a point the land mask puts
    at sea every answer carries caveat "sea", in the region held out whole "unseen" (the panels
    show them as best guesses); elsewhere on land none does."""
    grid = np.stack(np.meshgrid(np.arange(-60, 61, 2.0), np.arange(-180, 180, 2.0)), -1)
    grid = grid.reshape(-1, 2)
    land = res.world.labels(grid)["is_land"]
    split = res.world.split_of(grid)
    cases = {
        "sea": grid[~land][0],
        "unseen": grid[land & (split == "unseen")][0],
        None: grid[land & (split == "train")][0],
    }
    for caveat, point in cases.items():
        r = logic.click_result(res, *map(float, point), k=3)
        assert r["predictions"] and r["truth"]["split"] == str(res.world.split_of(point))
        assert {p.get("caveat") for p in r["predictions"].values()} == {caveat}, point
        assert logic.caveat_at(r["truth"]) == caveat
    # no ground truth (the user's imagery): nothing to say, nothing marked
    assert logic.mark_caveat(r["predictions"], None) is r["predictions"]


def test_head_scores_read_the_heads_rows_of_one_split():
    from types import SimpleNamespace

    rows = [
        {"task": "koppen", "method": "gair-heads", "metric": "accuracy", "mean": 0.88,
         "split": "test"},
        {"task": "koppen", "method": "gair-heads", "metric": "accuracy", "mean": 0.51,
         "split": "unseen"},  # another split's record
        {"task": "koppen", "method": "linear", "metric": "accuracy", "mean": 0.7, "split": "test"},
        {"task": "elevation_m", "method": "gair-heads", "metric": "interval80_coverage",
         "mean": 0.75, "split": "test"},
        {"task": "population", "method": "gair-heads", "metric": "skill", "mean": None,
         "split": "test"},  # not a number: skipped
        "not a row",
    ]  # fmt: skip
    scores = logic.head_scores(SimpleNamespace(eval_result={"rows": rows}))
    assert scores == {"koppen": {"accuracy": 0.88}, "elevation_m": {"interval80_coverage": 0.75}}
    unseen = logic.head_scores(SimpleNamespace(eval_result={"rows": rows}), "unseen")
    assert unseen == {"koppen": {"accuracy": 0.51}}  # the region held out whole: its own record
    assert logic.head_scores(SimpleNamespace(eval_result=None)) == {}


def test_neighbourhood_costs_no_extra_encoder_pass(res):
    emb = res.index.embedder
    before = emb.encoder_passes
    logic.click_result(res, 47.3, 8.5, k=3, thumbnails=False, heatmap=False)
    assert emb.encoder_passes - before <= 4  # the point's 2 x 2 tiles serve the whole grid


def test_click_result_rejects_bad_coordinates(res):
    with pytest.raises(ValueError, match="latitude"):
        logic.click_result(res, 95.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        logic.click_result(res, float("nan"), 0.0)


def test_gallery_view_finds_itself(res):
    row = res.gallery.iloc[7]
    out = logic.image_search(res, sv_row=row, k=5)
    assert out["streetviews"].iloc[0]["sv_id"] == row["sv_id"]
    assert out["streetviews"].iloc[0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert out["error_km"] >= 0 and out["guess"] is not None
    lat, lon = out["located"]  # the location encoder's posterior median over every cell
    assert -90 <= lat <= 90 and -180 <= lon <= 180
    truth = np.array([row["lat"], row["lon"]])
    assert out["located_error_km"] == pytest.approx(
        float(haversine_km(truth, np.array([lat, lon])))
    )
    table = logic.results_table(out)
    assert table.iloc[1]["kind"] == "estimate" and table.iloc[1]["lat"] == pytest.approx(lat)
    assert out["overlay"]["png"][:4] == b"\x89PNG"
    gj = json.loads(logic.to_geojson(out))  # the search result exports too: truth first
    assert gj["features"][0]["properties"]["kind"] == "query"
    assert gj["features"][0]["geometry"]["coordinates"] == pytest.approx([row["lon"], row["lat"]])


def test_uploads_are_checked():
    with pytest.raises(ValueError, match="not a readable image"):
        logic.decode_upload(b"<html>hello</html>", "page.png")
    with pytest.raises(ValueError, match="empty"):
        logic.decode_upload(b"", "empty.jpg")
    with pytest.raises(ValueError, match="limit"):
        logic.decode_upload(b"\0" * (21 * 1024 * 1024), "huge.jpg")
    buf = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buf, format="PNG")  # 64 Mpx decompression bomb
    with pytest.raises(ValueError, match="limit"):
        logic.decode_upload(buf.getvalue(), "bomb.png")


def test_compare_points(res):
    out = logic.compare_points(res, (48.85, 2.35), (40.4, -3.7))
    assert out["distance_km"] == pytest.approx(1053, abs=15)
    assert -1 <= out["cosine"] <= 1
    same = logic.compare_points(res, (48.85, 2.35), (48.85, 2.35))
    assert same["cosine"] == pytest.approx(1.0, abs=1e-5)


def test_exports(res):
    r = logic.click_result(res, 45.0, 5.0, k=4, thumbnails=False)
    csv = logic.to_csv(r).decode()
    assert csv.splitlines()[0] == "kind,rank,id,lat,lon,similarity,distance_km"
    assert len(csv.strip().splitlines()) == 1 + 1 + 4 + 4
    gj = json.loads(logic.to_geojson(r))
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == 9
    lon, lat = gj["features"][0]["geometry"]["coordinates"]
    assert (lat, lon) == pytest.approx((45.0, 5.0))
    kinds = {f["properties"]["kind"] for f in gj["features"]}
    assert kinds == {"query", "place", "streetview"}


def test_static_layers(res):
    names = logic.map_layers(res)
    assert (
        names[0] == logic.LAYER_SIMILARITY
        and "Truth landcover" in names
        and "Predicted koppen" in names
    )
    for name in names[1:]:
        layer = logic.layer_overlay(res, name)
        assert layer["png"][:4] == b"\x89PNG", name
        assert layer["legend"].title


# --------------------------------------------------------------------------- Web Mercator rasters


def test_mercator_rows():
    lats = raster.mercator_row_lats(256)
    assert lats[0] == pytest.approx(85.0511 - (85.0511 - 84.92), abs=0.2)  # first row centre
    assert np.all(np.diff(lats) < 0)
    assert lats[128] < 0 < lats[127] and lats[127] == pytest.approx(-lats[128])
    # equal steps in Mercator y
    y = np.log(np.tan(np.pi / 4 + np.radians(lats) / 2))
    np.testing.assert_allclose(np.diff(y), np.diff(y)[0], rtol=1e-9)


def test_cell_raster_places_cells_where_leaflet_draws_them():
    grid = np.stack(
        np.meshgrid(np.arange(30.0, 60.01, 2.0), np.arange(0.0, 40.01, 2.0), indexing="ij"), -1
    ).reshape(-1, 2)
    cr = raster.CellRaster(grid[:, 0], grid[:, 1], width=512)
    for i in (0, 17, 100, len(grid) - 1):
        la, lo = grid[i]
        # Leaflet's ImageOverlay: linear in Mercator y between the bounds
        y = math.log(math.tan(math.pi / 4 + math.radians(la) / 2))
        row = int((math.pi - y) / (2 * math.pi) * 512)
        col = int((lo + 180) / 360 * 512)
        assert cr.lookup[row, col] == i
    assert (cr.lookup == -1).mean() > 0.9  # far from every cell: transparent
    assert cr.lookup[256, 10] == -1  # (0N, 176W): far from every cell
    png = cr.continuous(np.linspace(0, 1, len(grid)), 0.0, 1.0)
    im = Image.open(io.BytesIO(png))
    assert im.size == (512, 512) and im.mode == "P"


def test_world_tiles_line_up_with_the_raster(world, tmp_path):
    meta = raster.build_world_tiles(world, tmp_path, max_zoom=2)
    assert meta["tiles"] == 1 + 4 + 16 and raster.tiles_ready(tmp_path, world.fingerprint, 2)
    rgb = raster.world_rgb(world)
    z, n = 2, 4
    for la, lo in [(30.0, 31.0), (-25.0, 135.0), (60.0, -100.0), (0.0, 0.0)]:
        # pixel of (la, lo) in the XYZ scheme
        x = (lo + 180) / 360 * 256 * n
        y = (
            (math.pi - math.log(math.tan(math.pi / 4 + math.radians(la) / 2)))
            / (2 * math.pi)
            * 256
            * n
        )
        tile = np.asarray(
            Image.open(tmp_path / str(z) / str(int(x // 256)) / f"{int(y // 256)}.jpg").convert(
                "RGB"
            )
        )
        got = tile[int(y % 256), int(x % 256)].astype(int)
        r = int((90 - la) / 180 * rgb.shape[0])
        c = int((lo + 180) / 360 * rgb.shape[1])
        want = rgb[max(r - 3, 0) : r + 4, c - 3 : c + 4].reshape(-1, 3).astype(int)
        # JPEG + resampling: close to some source pixel in the neighbourhood
        assert np.abs(want - got).sum(1).min() < 60, (la, lo, got, want.mean(0))


# --------------------------------------------------------------------------- nothing leaves localhost

URL = re.compile(r"(?:https?:)?//[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+[^\s\"'<>)]*")
DATA_URL = re.compile(r"data:[a-z]+/[a-z0-9.+-]+;base64,[A-Za-z0-9+/=]+")


def _component_args(m, layers=None, control=None) -> dict:
    import streamlit_folium

    captured = {}

    def fake(**kw):
        captured.update(kw)
        return kw.get("default")

    with mock.patch.object(streamlit_folium, "_component_func", fake):
        streamlit_folium.st_folium(
            m,
            key="map",
            feature_group_to_add=layers,
            layer_control=control,
            returned_objects=["last_clicked"],
        )
    return captured


def _external(args: dict) -> list[str]:
    found = []
    for name in ("script", "header", "html", "feature_group", "layer_control"):
        text = DATA_URL.sub("", args.get(name) or "")
        found += [u for u in URL.findall(text) if "localhost" not in u]
    for link in list(args["js_links"]) + list(args["css_links"]):
        if not link.startswith("/"):
            found.append(link)
    return found


def test_the_map_outlines_the_unseen_region_along_its_true_edges(res):
    import h3

    block = res.world.manifest["splits"]["unseen_block"]
    ring = np.array(maps.h3_outline(block))
    assert np.allclose(ring[0], ring[-1]) and len(ring) > 6 * 10
    # every sampled point lies on the edge: a nudge towards the centre is in the region (what
    # `World.split_of` calls unseen), a nudge away is not
    centre = np.array(h3.cell_to_latlng(block))
    for lat, lon in ring[:-1:7]:
        step = centre - (lat, lon)
        inside, outside = (lat, lon) + 0.01 * step, (lat, lon) - 0.01 * step
        assert res.world.split_of(inside) == "unseen"
        assert h3.latlng_to_cell(*outside, 0) != block
    args = _component_args(maps.base_map(res.world), control=maps.layer_control())
    assert '"dashArray": "8 6"' in args["script"]  # the outline is drawn ...
    assert maps.UNSEEN_LAYER_NAME in args["layer_control"]  # ... and named in the layer control
    assert maps.unseen_region_layer(object()) is None  # a source with no splits: no outline


def test_map_loads_nothing_from_outside(res):
    r = logic.click_result(res, 48.85, 2.35, k=3, thumbnails=False)
    m = maps.base_map(res.world)
    args = _component_args(
        m,
        maps.query_layers(r, point=(48.85, 2.35), overlay=r["overlay"], compare_point=(40.0, -3.0)),
        maps.layer_control(),
    )
    assert _external(args) == []
    assert args["js_links"] == ["/app/static/vendor/leaflet/leaflet.js"]
    assert args["css_links"] == ["/app/static/vendor/leaflet/leaflet.css"]
    assert f"/app/static/tiles/{res.world.fingerprint}/{{z}}/{{x}}/{{y}}.jpg" in args["script"]
    everything = json.dumps(
        {k: v for k, v in args.items() if isinstance(v, str | list | dict | None)}
    ).lower()
    assert "jquery" not in everything and "bootstrap" not in everything
    assert args["feature_group"].count("L.imageOverlay") == 1  # the heatmap is ONE image overlay
    url = re.search(r'L\.imageOverlay\(\s*"([^"]+)"', args["feature_group"]).group(1)
    assert (
        url.startswith("/app/static/overlays/")
        and (assets.STATIC_DIR / url[len("/app/static/") :]).is_file()
    )
    # all markers of a layer are one element (a loop over JSON), not one folium element each
    assert (
        args["feature_group"].count("var pts = ") == 3
        and "circle_marker_" not in args["feature_group"]
    )


def test_online_basemaps_only_when_asked(res):
    args = _component_args(maps.base_map(res.world, online=True), control=maps.layer_control())
    external = _external(args)
    assert external and all(
        any(host in u for host in ("openstreetmap.org", "arcgisonline.com", "cartocdn.com"))
        for u in external
    )
    assert all(link.startswith("/") for link in list(args["js_links"]) + list(args["css_links"]))


def test_localise_drops_cdn_plugins():
    import folium
    import folium.plugins

    m = folium.Map(tiles=None)
    folium.plugins.Fullscreen().add_to(m)
    report = assets.localise_map(m)
    assert "leaflet" in report["kept"] and "jquery" in report["dropped"]
    args = _component_args(m)
    assert all(link.startswith("/app/static/") for link in args["js_links"] + args["css_links"])


def test_vendored_leaflet_present_or_reported():
    missing = assets.missing_vendor_files()
    if missing:
        pytest.skip(f"run scripts/vendor_assets.sh: missing {missing}")
    js = (assets.STATIC_DIR / "vendor/leaflet/leaflet.js").read_text(errors="ignore")
    assert "Leaflet" in js[:500] or "leaflet" in js[:500].lower()
    assert Path(assets.STATIC_DIR / ".gitignore").read_text().split() == [
        "vendor/",
        "tiles/",
        "overlays/",
    ]


def test_gair_app_command_line(tmp_path):
    import argparse

    from app import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["app", "--index", "idx", "--port", "8600", "--checkpoint", "run"])
    cmd = cli.command(args)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("app/main.py")
    assert "--server.enableStaticServing" in cmd and cmd[cmd.index("--server.port") + 1] == "8600"
    assert cmd[cmd.index("--") + 1 :] == ["--index", "idx", "--checkpoint", "run"]
    args = parser.parse_args(["app", "--index", str(tmp_path / "none")])
    with pytest.raises(FileNotFoundError, match="no index"):
        cli.run(args)
