"""Issue 15 in a real browser, with no network: an index built from rasters written by the test
(two UTM zones, a gap; tests/raster_fixtures.py), a checkpoint in the official release's layout
and a CSV gallery of photos; no demo world anywhere. The map opens on the area with a basemap
rendered from the rasters, a click answers, and a click in the gap says there is no imagery.

Screenshots `app-own-imagery.png` (the click) and `app-own-imagery-gap.png` go to
$GAIR_E2E_SCREENSHOTS, like `test_browser.py`'s (whose browser and helpers this reuses)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests import raster_fixtures as fx
from tests.e2e.test_browser import (  # noqa: F401  (fixtures used by name)
    _click_latlon,
    _offline_page,
    _open_tab,
    _visible_panel,
    _wait_map,
    _wait_text,
    browser,
    run_server,
    shots,
    skip_without_browser,
)

pytestmark = pytest.mark.e2e

COVERED = (45.022, 5.99)
GAP = (45.022, 6.05)


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    skip_without_browser()
    from PIL import Image

    from gair.cli import main

    tmp = tmp_path_factory.mktemp("own-imagery")
    rasters, aoi = fx.write_mosaic(tmp / "rasters"), fx.write_aoi(tmp / "aoi.geojson")
    run = fx.import_random_release(tmp)
    rng = np.random.default_rng(0)
    (tmp / "photos").mkdir()
    rows = ["lon,lat,path"]
    for i in range(6):
        img = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
        Image.fromarray(img).save(tmp / f"photos/p{i}.jpg")
        rows.append(f"{5.98 + 0.005 * i},{45.02},photos/p{i}.jpg")
    (tmp / "photos.csv").write_text("\n".join(rows) + "\n")
    index = tmp / "index"
    argv = ["index", "build", "--checkpoint", str(run), "--source", str(rasters)]
    argv += ["--aoi", str(aoi), "--grid", "h3:9", "--gallery-csv", str(tmp / "photos.csv")]
    assert main([*argv, "--out", str(index)]) == 0
    env = dict(os.environ, GAIR_INDEX=str(index))
    for name in ("GAIR_WORLD", "GAIR_CHECKPOINT"):
        env.pop(name, None)
    with run_server(env, tmp / "streamlit.log") as served:
        yield served


def test_own_imagery_index_click_and_gap_offline(own_server, browser, shots):  # noqa: F811
    blocked: list[str] = []
    requested: list[str] = []
    errors: list[str] = []
    context, page = _offline_page(browser, blocked, requested, errors)
    try:
        page.goto(own_server["url"])
        _wait_text(page, "Click anywhere on the map")
        _wait_map(page)
        _click_latlon(page, *COVERED)
        _wait_text(page, "cos(INR, location)")
        point = page.locator(".gair-point").first.inner_text()
        assert point.startswith("45.02") and "°N" in point and "°E" in point, point
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shots / "app-own-imagery.png"))
        assert page.get_by_text("A (tropical)", exact=False).count() == 0  # no demo truth

        _open_tab(page, "Street views")
        _visible_panel(page).locator("img").nth(1).wait_for(state="visible")

        # the gap lies east of the rasters (outside the fitted view): go there by coordinates
        page.get_by_placeholder("e.g. 48.85").fill(f"{GAP[0]}, {GAP[1]}")
        page.get_by_role("button", name="Go", exact=True).click()
        _wait_text(page, "no imagery")
        page.screenshot(path=str(shots / "app-own-imagery-gap.png"))

        assert not blocked, f"requests left localhost: {sorted(set(blocked))[:10]}"
        assert any("/app/static/tiles/" in u and u.endswith(".png") for u in requested)
        js_errors = [e for e in errors if "Error" in e or "pageerror" in e]
        assert not js_errors, js_errors[:5]
    except Exception:
        page.screenshot(path=str(shots / "failure-own-imagery.png"), full_page=True)
        print("blocked:", sorted(set(blocked))[:20], "\nerrors:", errors[:20])
        print("log:", own_server["log"].read_text()[-3000:])
        raise
    finally:
        context.close()
