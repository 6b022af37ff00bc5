"""The app at millions of cells (issue 17), on the small app index: the stored vectors read on
demand, the heatmap from the drawn cells' int8 codes, overlays redrawn for a zoomed-in view,
and a click answered from the index while the model still loads."""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pandas as pd
import pytest

from app import logic, raster
from app.extent import Extent
from app.logic import detail, provisional
from gair.geo import haversine_km
from index import integrity
from index.vectors import StoredVectors

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


@pytest.fixture(scope="module")
def res(app_paths):
    from app.resources import Settings, open_resources

    return open_resources(Settings(index=str(app_paths["index"]), world=str(app_paths["world"])))


# --------------------------------------------------------------------------- stored vectors


def test_stored_vectors_gather_rows_in_any_order(tmp_path, monkeypatch):
    import index.vectors as V

    data = np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float16)
    np.save(tmp_path / "v.npy", data)
    stored = StoredVectors(tmp_path / "v.npy")
    assert stored.shape == (1000, 8) and stored.dtype == np.float16 and len(stored) == 1000
    monkeypatch.setattr(V, "GATHER_ROWS", 7)  # many mappings per gather
    rows = np.array([999, 3, 3, 500, 0, 42, 7, 998, 1])
    np.testing.assert_array_equal(stored[rows], data[rows])
    np.testing.assert_array_equal(stored[5], data[5])
    np.testing.assert_array_equal(stored[10:20], data[10:20])
    np.testing.assert_array_equal(np.asarray(stored, np.float32), data.astype(np.float32))


def test_ids_digest_is_one_line_per_id():
    ids = pd.Series([f"8{i:014x}" for i in range(70_001)])  # more than one chunk
    slow = hashlib.sha256()
    for value in ids:
        slow.update(f"{value}\n".encode())
    assert integrity.ids_sha256(ids) == slow.hexdigest()
    assert integrity.ids_sha256(list(ids)) == slow.hexdigest()
    assert integrity.ids_sha256([]) == hashlib.sha256().hexdigest()


def test_tables_hold_repetitive_text_as_categories(res):
    assert isinstance(res.cells["country"].dtype, pd.CategoricalDtype)
    assert not isinstance(res.cells["cell_id"].dtype, pd.CategoricalDtype)  # unique ids stay text
    assert "geometry" not in res.cells  # lat/lon hold it
    assert (res.cells["country"] == res.cells["country"].iloc[0]).any()


# --------------------------------------------------------------------------- the heatmap


def test_heatmap_from_int8_codes_is_close_to_exact(res):
    rows = res.raster.rows
    vec = np.asarray(res.index.cell_vectors[int(rows[len(rows) // 2])], np.float32)
    exact = np.asarray(res.index.cell_vectors[rows], np.float32) @ vec
    approx = res.heat_similarity(vec)
    assert approx.shape == exact.shape
    # per-row int8: |error| <= sum|q| * max|v| / 254 per row; far below the colour ramp's span
    bound = np.abs(vec).sum() * np.abs(np.asarray(res.index.cell_vectors[rows])).max() / 254
    assert np.abs(approx - exact).max() <= bound + 1e-6


def test_raster_draws_the_same_from_the_drawn_rows_or_all_cells():
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-60, 70, 20_000), rng.uniform(-180, 180, 20_000)
    cr = raster.CellRaster(lat, lon, width=128)  # many cells per pixel: a few are drawn
    assert 0 < len(cr.rows) < len(lat)
    values = rng.uniform(0, 1, len(lat)).astype(np.float32)
    full = cr.continuous(values, 0.0, 1.0)
    assert cr.continuous(values[cr.rows], 0.0, 1.0) == full
    with pytest.raises(ValueError, match="values for a raster"):
        cr.continuous(values[:10], 0.0, 1.0)


# --------------------------------------------------------------------------- zoomed-in detail


def _view(south, west, north, east, zoom=6):
    return {
        "bounds": {
            "_southWest": {"lat": south, "lng": west},
            "_northEast": {"lat": north, "lng": east},
        },
        "zoom": zoom,
    }


def test_view_extent_pads_and_refuses_bad_views():
    box, zoom = detail.view_extent(_view(40.0, 0.0, 44.0, 5.0))
    assert zoom == 6 and box.west < 0.0 and box.east > 5.0 and box.south < 40.0
    for bad in (None, {}, _view(40, -170, 44, 190), _view(-80, -180, 80, 180), {"bounds": 3}):
        assert detail.view_extent(bad) is None


class FineIndex:
    """What `detail.in_view` reads of the app's resources: cells 0.1 deg apart over France, a
    global 1024 px raster (39 km pixels: coarser than the cells), a view cache."""

    def __init__(self):
        lat, lon = np.meshgrid(np.arange(42, 51, 0.1), np.arange(-4, 8, 0.1), indexing="ij")
        self.cell_latlon = np.stack([lat.ravel(), lon.ravel()], 1)
        self.raster = raster.CellRaster(lat.ravel(), lon.ravel(), width=1024)
        self.views = {}

    def cached_view(self, key, build):
        if key not in self.views:
            self.views[key] = build()
        return self.views[key]


def test_zoomed_in_overlay_is_redrawn_for_the_cells_in_view():
    res = FineIndex()
    drawn = []

    def draw(cr, rows):
        drawn.append(rows)
        return cr.continuous(res.cell_latlon[rows, 0], 42.0, 51.0)

    overlay = {"png": b"global", "bounds": res.raster.bounds, "draw": draw, "key": ("t",)}
    view = _view(45.0, 1.0, 47.0, 4.0, zoom=8)
    out = detail.in_view(res, overlay, view)
    assert out is not overlay and out["png"][:4] == b"\x89PNG"
    (s, w), (n, e) = out["bounds"]
    assert w < 1.0 and e > 4.0 and s < 45.0 and n > 47.0  # the view plus its margin
    ll = res.cell_latlon[drawn[0]]
    assert (ll[:, 0] >= s).all() and (ll[:, 0] <= n).all() and (ll[:, 1] >= w).all()
    assert detail.in_view(res, overlay, view) is out and len(drawn) == 1  # cached
    assert detail.in_view(res, overlay, None) is overlay  # no view yet: the global image
    assert detail.in_view(res, {"png": b"x"}, view) == {"png": b"x"}  # not redrawable
    nothing = _view(-30.0, -60.0, -20.0, -50.0)  # no cells there
    assert detail.in_view(res, overlay, nothing) is overlay


def test_coarse_cells_keep_the_global_overlay():
    res = FineIndex()
    res.raster.spacing = math.radians(1.0)  # cells ~110 km apart: the global image shows them
    assert not detail.needs_detail(res, Extent(1.0, 45.0, 4.0, 47.0))


def test_app_layers_and_similarity_are_redrawable(res):
    r = logic.click_result(res, 48.85, 2.35, k=5)
    assert callable(r["overlay"]["draw"]) and r["overlay"]["key"]
    rows = np.arange(0, len(res.cells), 3)
    cr = raster.CellRaster(res.cell_latlon[rows, 0], res.cell_latlon[rows, 1], width=256)
    assert r["overlay"]["draw"](cr, rows)[:4] == b"\x89PNG"
    layer = logic.layer_overlay(res, "Truth koppen")
    assert layer["draw"](cr, rows)[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- before the model


def test_provisional_click_answers_from_the_nearest_cell(res):
    lat, lon = 48.80, 2.30
    r = provisional.provisional_click(res, lat, lon, k=5)
    row, km = provisional.nearest_cell(res, lat, lon)
    dists = haversine_km(np.array([[lat, lon]]), res.cell_latlon)
    assert km == pytest.approx(dists.min()) and row == int(np.argmin(dists))
    assert r["provisional"]["cell_id"] == res.cells["cell_id"].iloc[row]
    assert r["provisional"]["distance_km"] == pytest.approx(km)
    np.testing.assert_array_equal(
        r["embedding"], np.asarray(res.index.cell_vectors[row], np.float32)
    )
    assert r["places"].iloc[0]["cell_id"] == r["provisional"]["cell_id"]  # itself first
    assert len(r["places"]) == 5 and len(r["streetviews"]) == 5
    assert r["overlay"]["png"][:4] == b"\x89PNG" and r["neighbourhood"] is None
    assert r["query"] == {"lat": lat, "lon": pytest.approx(lon), "k": 5}
    assert r["truth"]["split"] == "unseen"  # Paris lies in the world's unseen region ...
    stored = {"koppen": {"kind": "classification", "top": "C", "top_p": 0.9}}
    with mock.patch.object(provisional, "stored_predictions", return_value=stored):
        r = provisional.provisional_click(res, lat, lon, k=5)
    assert r["predictions"]["koppen"]["caveat"] == "unseen"  # ... so its stored answers are guesses
    with pytest.raises(ValueError):
        provisional.provisional_click(res, 95.0, 0.0, k=5)


def test_stored_predictions_only_while_the_heads_are_the_builds(res, monkeypatch):
    row = 3
    monkeypatch.setitem(res.manifest, "heads_sha256", None)  # built before the heads
    assert provisional.stored_predictions(res, row) is None
    tasks = [{"name": "koppen", "kind": "classification", "units": "", "input": "inr"},
             {"name": "elevation_m", "kind": "regression", "units": "m", "input": "location"}]  # fmt: skip
    monkeypatch.setattr("gair.run_dir.heads_sha256", lambda run_dir: "abc")
    monkeypatch.setitem(res.manifest, "heads_sha256", "abc")
    monkeypatch.setattr(res, "run_config", {**res.run_config, "heads": {"tasks": tasks}})
    cells = res.cells.copy()
    cells["pred_koppen"], cells["pred_koppen_p"] = "C (temperate)", np.float32(0.55)
    cells["pred_elevation_m"] = np.float32(123.0)
    monkeypatch.setattr(type(res), "cells", property(lambda self: cells))
    got = provisional.stored_predictions(res, row)
    assert got["koppen"]["top"] == "C (temperate)" and got["koppen"]["uncertain"]
    assert got["koppen"]["probs"].tolist() == pytest.approx([0.55])
    assert got["elevation_m"] == {
        "kind": "regression",
        "units": "m",
        "input": "location",
        "value": 123.0,
    }
    monkeypatch.setitem(res.manifest, "heads_sha256", "older")  # heads retrained since
    assert provisional.stored_predictions(res, row) is None


def test_a_click_before_the_model_loads_is_answered_then_replaced(app_env):
    """A fresh process's first click: the nearest cell's stored answer at once, said so; the
    exact one once the model has loaded."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()  # fresh resources: the model is not loaded
    at = AppTest.from_file(MAIN, default_timeout=300)
    at.session_state["point"] = (48.85, 2.35)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    notes = [str(i.value) for i in at.info if "model is loading" in str(i.value)]
    assert notes and "nearest grid cell" in notes[0] and " km from the point" in notes[0]
    deadline = time.time() + 300
    while any("model is loading" in str(i.value) for i in at.info) and time.time() < deadline:
        time.sleep(1.0)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any("model is loading" in str(i.value) for i in at.info)


def test_page_runs_are_tracked_for_the_background_loads():
    from app.resources import Resources

    fake = SimpleNamespace(
        _heads_lock=__import__("threading").Lock(), _page_runs=0, _last_page_run=0.0
    )
    run = Resources.page_run.__get__(fake)
    with run():
        assert fake._page_runs == 1
    assert fake._page_runs == 0 and fake._last_page_run > 0
    t = time.monotonic()
    Resources._wait_for_quiet_pages(fake, quiet_s=0.3)
    assert time.monotonic() - t >= 0.2  # waited for the quiet spell after the page
