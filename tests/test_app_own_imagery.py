"""The app on an index built from the user's own imagery (issue 15): no demo world, no labels,
a raster basemap of its own, a map fitted to the index's area and heatmaps drawn at the
index's own resolution. The index is a demo index rewritten as such (`tests.own_imagery`)."""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app import assets, logic, maps, raster, tiles
from app.extent import Extent, cell_spacing, mercator_y
from tests.own_imagery import FINGERPRINT, make_own_index, patch_sources

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


@pytest.fixture(scope="module")
def own_index(app_paths, world, tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    return make_own_index(app_paths["index"], root / "index", world=world)


@pytest.fixture
def own(own_index, world, monkeypatch, tmp_path):
    """The own-imagery index with its fake raster source; tiles go to a temp dir."""
    manifest = json.loads((own_index / "manifest.json").read_text())
    fake = patch_sources(monkeypatch, world, manifest["source"]["bounds"])
    monkeypatch.setattr(assets, "TILES_ROOT", tmp_path / "tiles")
    monkeypatch.setenv("GAIR_INDEX", str(own_index))
    monkeypatch.delenv("GAIR_WORLD", raising=False)
    monkeypatch.delenv("GAIR_CHECKPOINT", raising=False)
    return own_index, fake


def _open(own_index):
    from app.resources import Settings, open_resources

    return open_resources(Settings(index=str(own_index)))


def test_index_without_world_opens_and_answers_without_truth(own):
    own_index, fake = own
    res = _open(own_index)
    assert res.world is None and res.source is fake and res.source_kind == "rasters"
    assert not res.has_labels
    assert not [n for n in logic.map_layers(res) if n.startswith("Truth")]
    cell = res.cells.iloc[len(res.cells) // 2]
    r = logic.click_result(res, float(cell["lat"]), float(cell["lon"]), k=4, thumbnails=False)
    assert r["truth"] is None and len(r["places"]) == 4
    assert not {"country", "koppen", "landcover"} & set(r["places"].columns)
    # the heatmap covers the index's cells, not the world
    (s, w), (n, e) = r["overlay"]["bounds"]
    assert (s, w, n, e) != (-raster.MERCATOR_MAX_LAT, -180.0, raster.MERCATOR_MAX_LAT, 180.0)
    assert s < res.cells["lat"].min() < res.cells["lat"].max() < n
    assert w < res.cells["lon"].min() < res.cells["lon"].max() < e
    cmp = logic.compare_points(res, (float(cell["lat"]), float(cell["lon"])), (45.0, 5.0))
    assert cmp["truth_a"] is None
    # the map opens on the index's area, zooms to the rasters' native zoom
    view = maps.index_view(res)
    assert view["max_zoom"] == fake.native_zoom and view["zoom"] > maps.DEFAULT_ZOOM
    lat0, lon0 = view["center"]
    assert s < lat0 < n and w < lon0 < e


def test_raster_basemap_tiles_cover_the_source_only(own, monkeypatch):
    own_index, fake = own
    monkeypatch.setattr(assets, "_tile_threads", {})  # no background build of an earlier test
    res = _open(own_index)
    ready = assets.ensure_tiles(res.source, background=False)
    assert ready == fake.native_zoom == assets.tiles_zoom_ready(res.source)
    d = assets.tiles_dir(res.source)
    for z in range(fake.native_zoom + 1):
        cols, rows = tiles.tile_range(fake.bounds4326, z)
        want = {f"{x}/{y}.png" for x in cols for y in rows}
        got = {f"{p.parent.name}/{p.name}" for p in (d / str(z)).glob("*/*.png")}
        assert got == want, z
    tile = Image.open(sorted((d / str(fake.native_zoom)).glob("*/*.png"))[0])
    assert tile.mode == "RGBA" and tile.size == (256, 256)
    url = assets.tiles_url(res.source)
    assert url.endswith(f"tiles/{FINGERPRINT}/{{z}}/{{x}}/{{y}}.png") and "://" not in url
    m = maps.base_map(res.source, tiles_zoom=ready, max_zoom=maps.index_view(res)["max_zoom"])
    script = m.get_root().render()
    assert f"tiles/{FINGERPRINT}/{{z}}/{{x}}/{{y}}.png" in script
    assert '"maxNativeZoom": 6' in script and '"bounds": [' in script
    assert "openstreetmap" not in script.lower()


def test_app_page_and_click_hide_the_truth(own):
    own_index, _ = own
    at = AppTest.from_file(MAIN, default_timeout=300).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["map_zoom"] > maps.DEFAULT_ZOOM  # fitted to the index's area
    assert [b.label for b in at.button if b.label == "Middle of the area"]
    assert "Truth landcover" not in at.sidebar.selectbox(key="layer").options
    lat, lon = at.session_state["map_center"]
    at.session_state["point"] = (lat, lon)
    at.run()
    for _ in range(120):  # while the model loads, a click shows the nearest cell's stored answer
        if not any("model is loading" in str(i.value) for i in at.info):
            break
        time.sleep(1.0)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    html = "\n".join(str(m.value) for m in at.markdown)
    assert "gair-bars" in html and "truth:" not in html  # class bars without a truth mark
    assert "climate <b>" not in html  # no ground-truth line under the point
    assert not [e for e in at.expander if "ground-truth" in e.label]
    assert "Predicted koppen" in {m.label for m in at.metric}  # heads still answer
    assert not [d for d in at.dataframe if "ground truth (demo world)" in d.value.columns]


def test_heatmap_follows_the_index_extent():
    import h3

    # H3 res 9 over ~20 x 20 km: cell-level detail, a cell spans >= 3 px
    lat0, lon0 = 45.0, 6.0
    box = {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon0 + 0.25, lat0],
           [lon0 + 0.25, lat0 + 0.18], [lon0, lat0 + 0.18], [lon0, lat0]]]}  # fmt: skip
    ids = list(h3.geo_to_cells(box, 9))
    latlon = np.array([h3.cell_to_latlng(c) for c in ids])
    cr = raster.CellRaster.for_cells(latlon[:, 0], latlon[:, 1])
    (s, w), (n, e) = cr.bounds
    half = math.degrees(cell_spacing(latlon[:, 0], latlon[:, 1])) / 2
    assert s == pytest.approx(latlon[:, 0].min() - half, abs=1e-9)
    assert n == pytest.approx(latlon[:, 0].max() + half, abs=1e-9)
    assert w < latlon[:, 1].min() and e > latlon[:, 1].max() and e - w < 0.3
    px_per_rad = cr.width / math.radians(e - w)
    spacing_merc = cr.spacing / math.cos(math.radians(n))
    assert spacing_merc * px_per_rad >= 3.0 - 1e-6 and max(cr.width, cr.height) <= 2048
    assert cr.height == pytest.approx(
        cr.width * float(mercator_y(n) - mercator_y(s)) / math.radians(e - w), abs=1.5
    )
    # every cell is drawn where Leaflet puts it (linear in Mercator between the bounds)
    for i in (0, len(ids) // 2, len(ids) - 1):
        la, lo = latlon[i]
        row = int(
            (float(mercator_y(n)) - float(mercator_y(la)))
            / float(mercator_y(n) - mercator_y(s))
            * cr.height
        )
        col = int((lo - w) / (e - w) * cr.width)
        assert cr.lookup[row, col] == i
    assert len(np.unique(cr.lookup[cr.mask])) == len(ids)  # no cell lost to a coarse grid
    png = cr.continuous(np.linspace(0, 1, len(ids)), 0.0, 1.0)
    assert Image.open(io.BytesIO(png)).size == (cr.width, cr.height)


def test_global_index_keeps_the_global_image():
    lat, lon = np.meshgrid(np.arange(-60.0, 80.0, 3.0), np.arange(-177.0, 180.0, 3.0))
    cr = raster.CellRaster.for_cells(lat.ravel(), lon.ravel())
    assert cr.bounds == raster.OVERLAY_BOUNDS and (cr.width, cr.height) == (1024, 1024)
    old = raster.CellRaster(lat.ravel(), lon.ravel())
    assert np.array_equal(cr.lookup, old.lookup)
    assert Extent(-180.0, -60.0, 180.0, 80.0).is_global


def test_tiles_of_real_rasters_line_up(tmp_path):
    """Tiles rendered from a `gair.sources.RasterSource` (Sentinel-2-like GeoTIFFs): imagery
    where the rasters are, transparent beyond them, at the places the XYZ scheme says."""
    pytest.importorskip("rasterio")
    from gair.preprocess_presets import S2_L2A_BANDS
    from gair.sources.raster import RasterSource
    from tests import raster_fixtures as fx

    source = RasterSource(
        fx.write_mosaic(tmp_path / "rasters"),
        bands=list(S2_L2A_BANDS),
        chip_km=1.28,
        read_px=64,
        model_px=64,
    )
    z = source.native_zoom
    assert 12 <= z <= 14  # 20 m pixels at 45 N
    meta = tiles.build_raster_tiles(source, tmp_path / "tiles", max_zoom=z)
    assert meta["tiles"] == sum(tiles.tile_count(source.bounds4326, k) for k in range(z + 1))
    assert tiles.zoom_ready(tmp_path / "tiles", source.fingerprint) == z

    def pixel(lat, lon):
        x, y = tiles.lonlat_to_tile(lon, lat, z)
        tile = np.asarray(Image.open(tmp_path / f"tiles/{z}/{int(x)}/{int(y)}.png"))
        return tile[int((y % 1) * 256), int((x % 1) * 256)]

    inside = pixel(45.02, 5.97)  # file A
    assert inside[3] == 255 and inside[:3].max() > 0
    assert pixel(45.02, 6.0)[3] == 255  # the overlap of the two UTM zones
    west, south, east, north = source.bounds4326
    x, y = tiles.lonlat_to_tile(east, north, z)
    edge = np.asarray(Image.open(tmp_path / f"tiles/{z}/{int(x)}/{int(y)}.png"))
    if int((x % 1) * 256) < 250:  # the tile reaches beyond the imagery: transparent there
        assert (edge[:, int((x % 1) * 256) + 3 :, 3] == 0).all()
