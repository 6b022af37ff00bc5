"""End to end in a real browser, with no network: serve the app on a free localhost port, drive
headless Chromium (Debian's /usr/bin/chromium, through Playwright's Python API, no browser
download), block every request that leaves localhost and assert none was needed; click the map,
wait for the panels, run a cross-view search, and save screenshots.

Screenshots go to $GAIR_E2E_SCREENSHOTS (e.g. docs/img, `make app-screenshots`), else to the
test's temp dir. $GAIR_E2E_INDEX serves a given index (e.g. the demo index) instead of the tiny
one built for the tests ($GAIR_E2E_CHECKPOINT: a run dir with the same weights to open it with).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from app import assets
from tests.e2e.support import build_app_index

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
MAP_IFRAME = 'iframe[title="streamlit_folium.st_folium"]'
PARIS = (48.8566, 2.3522)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(
        f"streamlit did not become healthy in {timeout:.0f} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="module")
def server(world_dir, tmp_path_factory):
    skip_without_browser()
    env = dict(os.environ)
    if os.environ.get("GAIR_E2E_INDEX"):
        env["GAIR_INDEX"] = os.environ["GAIR_E2E_INDEX"]
        env.pop("GAIR_WORLD", None)
    else:
        root = tmp_path_factory.getbasetemp() / "app-index"
        root.mkdir(exist_ok=True)
        _, index_dir = build_app_index(world_dir, root)
        env["GAIR_INDEX"] = str(index_dir)
        env["GAIR_WORLD"] = str(world_dir)
    env.pop("GAIR_CHECKPOINT", None)
    if os.environ.get("GAIR_E2E_CHECKPOINT"):  # e.g. the shipped demo run for the E2E index
        env["GAIR_CHECKPOINT"] = os.environ["GAIR_E2E_CHECKPOINT"]
    with run_server(env, tmp_path_factory.mktemp("e2e") / "streamlit.log") as served:
        yield served


def skip_without_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip(
            "headless Chromium is not installed at /usr/bin/chromium: run scripts/install_browser.sh (apt-get install chromium chromium-driver)"
        )
    pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    missing = assets.missing_vendor_files()
    if missing:
        pytest.skip(f"Leaflet is not vendored (missing {missing}): run scripts/vendor_assets.sh")


@contextlib.contextmanager
def run_server(env: dict, log: Path):
    """Serve the app with `env` on a free localhost port until the block ends:
    yields {"url", "log"}."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app/main.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.enableStaticServing", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(url, proc, log)
        yield {"url": url, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    out = os.environ.get("GAIR_E2E_SCREENSHOTS")
    path = (
        (REPO / out)
        if out and not Path(out).is_absolute()
        else Path(out)
        if out
        else tmp_path_factory.mktemp("shots")
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
            ],
        )
        yield b
        b.close()


def _offline_page(browser, blocked: list[str], requested: list[str], errors: list[str]):
    context = browser.new_context(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)

    def route(r):
        u = r.request.url
        requested.append(u)
        if u.startswith(("data:", "blob:")) or urlparse(u).hostname in LOCAL_HOSTS:
            r.continue_()
        else:
            blocked.append(u)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.on("pageerror", lambda err: errors.append(f"pageerror: {err}"))
    page.on(
        "console",
        lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    return context, page


def _wait_map(page):
    frame = page.frame_locator(MAP_IFRAME).first
    frame.locator(".leaflet-container").wait_for(state="visible")
    frame.locator("img.leaflet-tile-loaded").first.wait_for(state="visible")
    return frame


def _map_frame(page):
    for f in reversed(page.frames):  # the newest first: a rerun may be replacing the iframe
        if "streamlit_folium" in f.url and not f.is_detached():
            return f
    raise AssertionError(f"no map iframe among {[f.url for f in page.frames]}")


def _in_map(page, action, tries: int = 6):
    """`action(frame)` in the map's iframe, found afresh on each try.

    Streamlit may re-create the component's iframe on any rerun, so a frame handle can be
    detached between finding it and using it: retry on a fresh one rather than hold it.
    """
    from playwright.sync_api import Error as PlaywrightError

    for attempt in range(tries):
        try:
            return action(_map_frame(page))
        except (PlaywrightError, AssertionError) as e:
            transient = ("detached", "context was destroyed", "no map iframe")
            if attempt == tries - 1 or not any(t in str(e) for t in transient):
                raise
            page.wait_for_timeout(500)


def _click_latlon(page, lat: float, lon: float) -> None:
    """Click the Leaflet map where (lat, lon) is drawn (the same pixel Leaflet would report)."""
    page.locator(MAP_IFRAME).first.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(300)
    _wait_leaflet(page)
    x, y, left, top = _in_map(
        page,
        lambda frame: frame.evaluate(
            f"""() => {{
                const p = map_div.latLngToContainerPoint([{lat}, {lon}]);
                const r = document.getElementById('map_div').getBoundingClientRect();
                return [p.x, p.y, r.left, r.top];
            }}"""
        ),
    )
    box = page.locator(MAP_IFRAME).first.bounding_box()
    page.mouse.click(box["x"] + left + x, box["y"] + top + y)


def _wait_leaflet(page) -> None:
    """Wait until `map_div` is Leaflet's map: it first names the div itself (a browser exposes
    elements by id), then the map the folium script assigns to it."""
    _in_map(
        page,
        lambda frame: frame.wait_for_function(
            "() => typeof map_div !== 'undefined' && typeof map_div.getZoom === 'function'",
            timeout=30_000,
        ),
    )


def _wait_text(page, text: str, timeout: float = 120_000) -> None:
    page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=timeout)


def _open_tab(page, name: str, timeout: float = 60.0) -> None:
    """Select tab `name` and return once it has stayed selected for 0.4 s. A click that lands
    while Streamlit re-renders the tabs is lost (seen in CI: the tab never opened), so click
    again until the selection holds."""
    tab = page.get_by_role("tab", name=name)
    deadline = time.time() + timeout
    while True:
        tab.click()
        page.wait_for_timeout(400)
        if tab.get_attribute("aria-selected") == "true":
            return
        if time.time() > deadline:
            raise TimeoutError(f"tab {name!r} did not stay selected in {timeout:.0f} s")


def _visible_panel(page):
    """The open tab's panel (hidden panels stay in the DOM)."""
    return page.locator('[role="tabpanel"]:not([hidden])')


def _shot(page, path: Path, anchor=None) -> None:
    """Viewport screenshot, scrolled so `anchor` (a locator) is at the top."""
    if anchor is not None:
        anchor.first.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(600)
    page.screenshot(path=str(path))


def test_offline_click_search_and_screenshots(server, browser, shots):
    blocked: list[str] = []
    requested: list[str] = []
    errors: list[str] = []
    context, page = _offline_page(browser, blocked, requested, errors)
    try:
        page.goto(server["url"])
        _wait_text(page, "Click anywhere on the map")
        _wait_map(page)
        page.wait_for_timeout(1500)  # let the visible tiles finish
        page.screenshot(path=str(shots / "app-start.png"))

        # click the map: the marker, the heatmap overlay and the panels follow
        _click_latlon(page, *PARIS)
        _wait_text(page, "cos(INR, location)")
        frame = page.frame_locator(MAP_IFRAME).first
        frame.locator("img.leaflet-image-layer").first.wait_for(state="attached")
        frame.locator(".leaflet-marker-icon").first.wait_for(state="visible")
        lat_text = page.locator(".gair-point").first.inner_text()  # e.g. "48.9225°N, 2.4609°E"
        lat_s, lon_s = (part.strip() for part in lat_text.split(","))
        assert abs(float(lat_s.split("°")[0]) - PARIS[0]) < 1.0 and lat_s.endswith("N"), lat_text
        assert abs(float(lon_s.split("°")[0]) - PARIS[1]) < 1.0 and lon_s.endswith("E"), lat_text
        page.wait_for_timeout(1000)
        page.screenshot(path=str(shots / "app-click.png"))

        # the map kept its view: the Leaflet map answers with its zoom
        _wait_leaflet(page)
        assert _in_map(page, lambda frame: frame.evaluate("() => map_div.getZoom()")) >= 1

        tablist = page.get_by_role("tablist")
        _open_tab(page, "Embedding")
        _wait_text(page, "How the embedding varies around the point")
        _shot(page, shots / "app-embedding.png", tablist)

        _open_tab(page, "Street views")
        assert page.get_by_text("rendered view", exact=False).count() >= 3
        _shot(page, shots / "app-streetviews.png", tablist)

        _open_tab(page, "Predictions")
        _shot(page, shots / "app-predictions.png", tablist)

        _open_tab(page, "Cross-view search")
        page.get_by_role("button", name="Where was this taken?").click()
        _wait_text(page, "Error of the best place")
        # a frame locator, not a frame: it re-resolves if the rerun re-created the iframe
        page.frame_locator(MAP_IFRAME).first.locator("img.leaflet-image-layer").first.wait_for(
            state="attached"
        )
        page.wait_for_timeout(1000)
        _shot(page, shots / "app-search-map.png", page.locator(MAP_IFRAME).first)
        _shot(page, shots / "app-search.png", page.get_by_text("Best place", exact=False))

        # a second click on the map still works after all that
        _click_latlon(page, -3.4, -62.2)
        page.locator(".gair-point", has_text="°S").first.wait_for(state="visible")
        assert "°W" in page.locator(".gair-point").first.inner_text()

        assert not blocked, f"requests left localhost: {sorted(set(blocked))[:10]}"
        assert any("/app/static/vendor/leaflet/leaflet.js" in u for u in requested)
        assert any("/app/static/tiles/" in u for u in requested)
        js_errors = [e for e in errors if "Error" in e or "pageerror" in e]
        assert not js_errors, js_errors[:5]
    except Exception:
        page.screenshot(path=str(shots / "failure.png"), full_page=True)
        print(
            "blocked:",
            sorted(set(blocked))[:20],
            "\nerrors:",
            errors[:20],
            "\nlog:",
            server["log"].read_text()[-3000:],
        )
        raise
    finally:
        context.close()
