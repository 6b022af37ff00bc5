"""*Label & find* (issue 16) in a real browser, with no network: label two positives and a
negative by clicking the map, see the hits, confirm one, export the hits and the set.

Same server, browser and screenshot settings as `test_browser.py` (its fixtures); screenshots
`app-labels.png` (the map), `app-labels-hits.png` (hits and threshold) and
`app-labels-quality.png` (hit list, learning curve, exports) go to $GAIR_E2E_SCREENSHOTS.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.test_browser import (  # noqa: F401  (fixtures used by name)
    MAP_IFRAME,
    _click_latlon,
    _offline_page,
    _open_tab,
    _shot,
    _wait_map,
    _wait_text,
    browser,
    server,
    shots,
)

pytestmark = pytest.mark.e2e

POSITIVES = [(23.5, 11.0), (22.0, 47.0)]  # the Sahara, the Arabian desert
NEGATIVE = (-3.4, -62.2)  # the Amazon


def _caption(page, pos: int, neg: int) -> None:
    _wait_text(page, f"{pos} positive, {neg} negative")


def test_label_by_clicking_confirm_and_export(server, browser, shots, tmp_path):  # noqa: F811
    blocked: list[str] = []
    requested: list[str] = []
    errors: list[str] = []
    context, page = _offline_page(browser, blocked, requested, errors)
    try:
        page.goto(server["url"])
        _wait_text(page, "Click anywhere on the map")
        _wait_map(page)
        sidebar = page.locator('[data-testid="stSidebar"]')

        # two positives and a negative, by clicking the map in labelling mode
        sidebar.get_by_text("add a positive", exact=True).click()
        page.wait_for_timeout(500)
        for i, (lat, lon) in enumerate(POSITIVES, 1):
            _click_latlon(page, lat, lon)
            _caption(page, i, 0)
        sidebar.get_by_text("add a negative", exact=True).click()
        page.wait_for_timeout(500)
        _click_latlon(page, *NEGATIVE)
        _caption(page, 2, 1)
        frame = page.frame_locator(MAP_IFRAME).first
        frame.locator(".gair-label-neg").first.wait_for(state="attached")
        assert frame.locator(".gair-label-pos").count() == 2
        assert "Click anywhere on the map" in page.content()  # no point was selected

        # the hits: the tab lists them; lower the threshold until some are listed
        _open_tab(page, "Label & find")
        _wait_text(page, "Cross-validated precision")
        slider = page.get_by_role("slider").filter(has_text="").last
        for _ in range(10):
            if page.get_by_role("button", name="Confirm").count():
                break
            slider.focus()
            for _ in range(10):
                page.keyboard.press("ArrowLeft")
            page.wait_for_timeout(1500)
        confirm = page.get_by_role("button", name="Confirm").first
        confirm.wait_for(state="visible")
        frame.locator("img.leaflet-image-layer").first.wait_for(state="attached")
        page.wait_for_timeout(1000)
        _shot(page, shots / "app-labels.png", page.locator(MAP_IFRAME).first)

        confirm.click()
        _caption(page, 3, 1)
        page.get_by_role("button", name="Confirm").first.wait_for(state="visible")
        page.wait_for_timeout(1000)
        hits_metric = page.locator('[data-testid="stMetricLabel"]', has_text="Hits").first
        _shot(page, shots / "app-labels-hits.png", hits_metric)
        _shot(page, shots / "app-labels-quality.png", page.get_by_text("Top hits", exact=False))

        # export the hits and the set
        with page.expect_download() as dl:
            page.get_by_role("button", name="Hits GeoJSON").click()
        hits = json.loads(Path(dl.value.path()).read_text())
        assert hits["type"] == "FeatureCollection" and hits["features"]
        props = hits["features"][0]["properties"]
        assert {"cell_id", "score", "rank"} <= set(props)
        assert hits["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
        with page.expect_download() as dl:
            page.get_by_role("button", name="Label set GeoJSON").click()
        saved = json.loads(Path(dl.value.path()).read_text())
        labels = [f["properties"]["label"] for f in saved["features"]]
        assert labels.count("positive") == 3 and labels.count("negative") == 1
        assert [f["properties"]["kind"] for f in saved["features"]][-1] == "cell"

        assert not blocked, f"requests left localhost: {sorted(set(blocked))[:10]}"
        js_errors = [e for e in errors if "Error" in e or "pageerror" in e]
        assert not js_errors, js_errors[:5]
    except Exception:
        page.screenshot(path=str(shots / "failure-labels.png"), full_page=True)
        print("blocked:", sorted(set(blocked))[:20], "\nerrors:", errors[:20],
              "\nlog:", server["log"].read_text()[-3000:])  # fmt: skip
        raise
    finally:
        context.close()
