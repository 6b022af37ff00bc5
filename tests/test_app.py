"""The Streamlit app, driven headless with AppTest: each panel fills for a selected point (set
in session state exactly as a map click sets it), bad input gives messages, never exceptions."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
PARIS = (48.85, 2.35)
TIMEOUT = 300  # the first run opens the world/index/model (cached afterwards)


def new_app() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT)
    return at


def run_with_point(point, k: int = 6) -> AppTest:
    """The page for a point with the model loaded: a click made while the model still loads
    shows the nearest cell's stored answer (tests/test_app_scale.py), so rerun until the exact
    one is there, pausing between runs as a user would (the model loads once pages are quiet)."""
    at = new_app()
    at.session_state["point"] = point
    at.session_state["k"] = k
    at.run()
    deadline = time.time() + TIMEOUT
    while provisional(at) and time.time() < deadline:
        time.sleep(1.0)
        at.run()
    return at


def provisional(at: AppTest) -> bool:
    return any("model is loading" in str(i.value) for i in at.info)


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def metrics(at: AppTest) -> dict:
    return {m.label: m.value for m in at.metric}


def texts(at: AppTest) -> str:
    parts = (
        [m.value for m in at.markdown] + [m.value for m in at.caption] + [e.value for e in at.info]
    )
    return "\n".join(str(p) for p in parts)


# --------------------------------------------------------------------------- set-up messages


def test_missing_index_names_the_build_command(tmp_path, monkeypatch):
    monkeypatch.setenv("GAIR_INDEX", str(tmp_path / "nowhere"))
    at = new_app().run()
    no_exception(at)
    assert any("No index" in e.value for e in at.error)
    assert any("gair index build" in c.value or "make demo" in c.value for c in at.code)


def test_missing_world_names_the_build_command(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("GAIR_WORLD", str(tmp_path / "no-world"))
    at = new_app().run()
    no_exception(at)
    assert any("No demo world" in e.value for e in at.error)
    assert any("gair world build" in c.value for c in at.code)


# --------------------------------------------------------------------------- start page


def test_start_page_and_about(app_env):
    at = new_app().run()
    no_exception(at)
    assert "Click anywhere on the map" in texts(at)
    labels = [t.label for t in at.tabs]
    assert labels == [
        "Embedding",
        "Street views",
        "Similar places",
        "Predictions",
        "Cross-view search",
        "Label & find",
        "Compare",
        "About",
    ]
    about = texts(at)
    assert "GAIR" in about and "implicit neural representation" in about
    assert "rendered views" in about  # the gallery is labelled as rendered
    # index manifest summary and checkpoint table are there
    tables = [str(d.value) for d in at.dataframe]
    assert any("h3:3" in t for t in tables) and any("tiny" in t for t in tables)


# --------------------------------------------------------------------------- a click


def test_click_fills_every_panel(app_env):
    k = 6
    at = run_with_point(PARIS, k=k)
    no_exception(at)
    m = metrics(at)
    assert -1.0 <= float(m["cos(INR, location)"]) <= 1.0
    assert m["Embedding size"] == "256"
    assert -1.0 <= float(m["Min similarity in tile cell"]) <= 1.0 + 1e-6
    # embedding strip + neighbourhood map (plotly), prediction bars (HTML) per class task
    assert len(at.get("plotly_chart")) >= 2
    bars = [md.value for md in at.markdown if "gair-bars" in md.value]
    assert len(bars) >= 3 and all(b.count('class="gair-bar"') >= 2 for b in bars)
    # nearest street views: k thumbnails, each labelled as a rendered view, each with a fly button
    captions = [c for img in at.get("image") for c in img.captions]
    assert sum("rendered view" in c for c in captions) == k
    assert sum(b.label == "Fly here" for b in at.button) == k
    # similar places: the top-k table
    places = [d.value for d in at.dataframe if "cell_id" in d.value.columns]
    assert len(places) == 1 and len(places[0]) == k
    assert places[0]["similarity"].is_monotonic_decreasing
    # predictions (heads present) beside the truth
    assert m["Predicted koppen"]
    # Paris lies in the world's unseen region: its answers are best guesses (the next tests)
    assert any(label.startswith("Elevation (best guess, unseen region)") for label in m)
    shown = texts(at)
    assert "80% range" in shown  # regression heads show their val-fitted range
    assert "Matched by the place's imagery + 1 x location" in shown  # the run's query weight


def land_point_in(app_env, split: str) -> tuple[float, float]:
    """A land point of the test world's `split` ("train", "unseen", ...) in Europe."""
    from gair.world.world import World

    world = World.open(app_env["world"])
    grid = np.stack(np.meshgrid(np.arange(36, 61, 1.0), np.arange(-10, 31, 1.0)), -1)
    grid = grid.reshape(-1, 2)
    inside = grid[world.labels(grid)["is_land"] & (world.split_of(grid) == split)]
    return tuple(map(float, inside[0]))


def test_each_answer_shows_its_heads_record_on_test(app_env):
    """With eval.json's rows for the heads (here given; the tests' small run has no eval.json)
    a class answer says how often the head was right on test, a number's range how often it
    held the truth."""
    measured = {
        "koppen": {"accuracy": 0.876, "ece": 0.018},
        "elevation_m": {"interval80_coverage": 0.751},
    }
    with mock.patch("app.logic.labels.head_scores", return_value=measured) as scores:
        at = run_with_point(land_point_in(app_env, "train"))
    no_exception(at)
    assert scores.call_args.args[1] == "test"
    shown = texts(at)
    assert "right at 88% of test places, calibration error 0.02" in shown
    assert "held the truth at 75% of test places" in shown


def test_a_click_in_the_unseen_region_shows_guesses_with_that_regions_record(app_env):
    measured = {"koppen": {"accuracy": 0.508, "ece": 0.291}}
    with mock.patch("app.logic.labels.head_scores", return_value=measured) as scores:
        at = run_with_point(land_point_in(app_env, "unseen"))
    no_exception(at)
    assert scores.call_args.args[1] == "unseen"  # the region's own record, not test's
    assert any("unseen region" in w.value for w in at.warning)
    assert metrics(at)["Predicted koppen"] == "uncertain"
    shown = texts(at)
    assert "outside the training area (best guess" in shown
    assert "right at 51% of the unseen region's places, calibration error 0.29" in shown


def test_a_click_at_sea_says_the_heads_answer_only_for_land(app_env):
    at = run_with_point((0.0, -30.0))  # mid-Atlantic
    no_exception(at)
    assert any("at sea in the demo world's land mask" in w.value for w in at.warning)
    assert metrics(at)["Predicted koppen"] == "at sea"
    assert any("best guess, at sea" in label for label in metrics(at))
    assert "not for the sea (best guess" in texts(at)


def test_fly_button_moves_the_point(app_env):
    at = run_with_point(PARIS, k=4)
    fly = [b for b in at.button if b.label == "Fly here"][0]
    fly.click().run()
    no_exception(at)
    new_point = at.session_state["point"]
    assert new_point != PARIS
    assert at.session_state["map_center"][0] == pytest.approx(new_point[0], abs=1e-5)


def test_typed_coordinates_and_bad_input(app_env):
    at = new_app().run()
    at.text_input(key="goto").input("33.9S, 18.4E").run()
    no_exception(at)
    assert at.session_state["point"] == pytest.approx((-33.9, 18.4))
    for bad, expect in (("100, 5", "latitude"), ("hello", "cannot read"), ("10, 500", "longitude")):
        at.text_input(key="goto").input(bad).run()
        no_exception(at)
        assert any(expect in e.value for e in at.sidebar.error), (
            bad,
            [e.value for e in at.sidebar.error],
        )
    assert at.session_state["point"] == pytest.approx((-33.9, 18.4))  # unchanged by bad input


def test_bad_point_in_state_is_a_message(app_env):
    at = run_with_point((123.0, 5.0))
    no_exception(at)
    assert any("latitude" in e.value for e in at.sidebar.error)
    assert "Click anywhere on the map" in texts(at)


def test_no_heads_says_how_to_create_them(app_env, tmp_path, monkeypatch):
    run = tmp_path / "run-no-heads"
    shutil.copytree(app_env["run"], run)
    (run / "heads.safetensors").unlink()
    cfg = json.loads((run / "config.json").read_text())
    cfg.pop("heads", None)
    (run / "config.json").write_text(json.dumps(cfg))
    monkeypatch.setenv("GAIR_CHECKPOINT", str(run))
    at = run_with_point(PARIS)
    no_exception(at)
    assert any(f"gair eval --checkpoint {run}" in i.value for i in at.info)


def test_overlay_layers(app_env):
    at = run_with_point(PARIS)
    options = at.sidebar.selectbox(key="layer").options
    assert "Truth landcover" in options and "Predicted koppen" in options
    for layer in ("Truth landcover", "Predicted elevation_m", "Truth koppen"):
        at.sidebar.selectbox(key="layer").select(layer).run()
        no_exception(at)
        assert any("gair-legend" in m.value for m in at.markdown)


# --------------------------------------------------------------------------- cross-view search


def test_gallery_street_view_search(app_env):
    at = new_app().run()
    [b for b in at.button if b.label == "Where was this taken?"][0].click().run()
    no_exception(at)
    m = metrics(at)
    assert "Best place" in m and m["Error of the best place"].endswith("km")
    assert at.session_state["heat_source"] == "image"
    assert any("similarity to the street view" in md.value for md in at.markdown)  # map legend
    # no point is selected, so the two download buttons are the search result's exports
    assert [d.proto.label for d in at.get("download_button")] == ["CSV", "GeoJSON"]
    # the sidebar switches the heatmap back to the selected point's query
    at.sidebar.radio(key="heat_choice").set_value("point").run()
    no_exception(at)
    assert at.session_state["heat_source"] == "point"


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_image_and_non_image(app_env):
    at = new_app().run()
    at.radio(key="search_mode").set_value("Upload an image").run()
    at.file_uploader(key="search_upload").upload("notes.png", b"this is not an image", "image/png")
    at.run()
    no_exception(at)
    assert any("not a readable image" in e.value for e in at.error)

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(96, 128, 3), dtype=np.uint8)
    at.file_uploader(key="search_upload").clear().upload("street.png", _png(img), "image/png")
    at.run()
    no_exception(at)
    assert "Best place" in metrics(at)
    assert at.session_state["search"]["image"].shape == (96, 128, 3)


def test_upload_decompression_bomb_is_a_message(app_env):
    at = new_app().run()
    at.radio(key="search_mode").set_value("Upload an image").run()
    bomb = Image.new("1", (8000, 8000))  # 64 Mpx, a few kB as PNG
    buf = io.BytesIO()
    bomb.save(buf, format="PNG")
    at.file_uploader(key="search_upload").upload("bomb.png", buf.getvalue(), "image/png")
    at.run()
    no_exception(at)
    assert any("limit" in e.value for e in at.error)


# --------------------------------------------------------------------------- compare, export


def test_compare_two_points(app_env):
    at = new_app()
    at.session_state["point"] = PARIS
    at.session_state["compare_b"] = (40.4, -3.7)
    at.run()
    no_exception(at)
    m = metrics(at)
    assert -1.0 <= float(m["cosine (INR embeddings)"]) <= 1.0
    assert float(m["distance"].replace(",", "").split()[0]) == pytest.approx(1053, abs=15)


def test_export_buttons_present(app_env):
    at = run_with_point(PARIS)
    no_exception(at)
    labels = [d.proto.label for d in at.get("download_button")]
    assert "CSV" in labels and "GeoJSON" in labels
