"""Everything the browser loads comes from this app's own server.

- Leaflet's JS/CSS: installed at set-up from the npm registry by `scripts/vendor_assets.sh`
  into `app/static/vendor/leaflet/` (git-ignored, never committed), served by Streamlit's
  static file serving at `/app/static/vendor/leaflet/...`.
- `localise_map(m)` rewrites every folium element's `default_js` / `default_css` (what
  streamlit-folium hands the component to load) to those local files and drops the assets
  this app does not use (jQuery, Bootstrap, Font Awesome, awesome-markers, ...), so no request
  leaves localhost.
- The world's RS basemap: Web Mercator XYZ tiles rendered from `world.rs` into
  `app/static/tiles/<world fingerprint>/` (git-ignored), built by `python -m app.assets tiles`
  at set-up, or in the background on the app's first start.
- A raster source's basemap (an index built from the user's imagery): PNG tiles with alpha
  rendered from the source (`app.tiles`) into `app/static/tiles/<source fingerprint>/`, zooms
  up to its native zoom, only where it has imagery; the low zooms now, the rest in the
  background. A prepared-chips source has no basemap (`tiles_zoom_ready` is -1).
"""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path

from app import raster

log = logging.getLogger("gair.app")

APP_DIR = Path(__file__).resolve().parent
STATIC_DIR = APP_DIR / "static"
VENDOR_DIR = STATIC_DIR / "vendor"
TILES_ROOT = STATIC_DIR / "tiles"
LEAFLET_VERSION = "1.9.4"
TILE_MAX_ZOOM = 5  # zoom 5 = 8192 px around the world, finer than the 5400 px raster
SYNC_TILE_ZOOM = 2  # zooms built synchronously on a first start (21 tiles, well under a second)

# folium/branca asset names -> local files (relative to app/static/). Anything else is dropped.
LOCAL_JS = {"leaflet": "vendor/leaflet/leaflet.js"}
LOCAL_CSS = {"leaflet_css": "vendor/leaflet/leaflet.css"}
REQUIRED_FILES = [
    "vendor/leaflet/leaflet.js",
    "vendor/leaflet/leaflet.css",
    "vendor/leaflet/images/marker-icon.png",
]


def base_url_path() -> str:
    """Streamlit's `server.baseUrlPath` as a URL prefix ("" or "/prefix")."""
    try:
        import streamlit as st

        base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    except Exception:  # outside a Streamlit runtime
        base = ""
    return f"/{base}" if base else ""


def static_url(relative: str) -> str:
    """URL of a file under app/static/ as Streamlit serves it (same origin as the app)."""
    return f"{base_url_path()}/app/static/{relative.lstrip('/')}"


def missing_vendor_files() -> list[str]:
    return [f for f in REQUIRED_FILES if not (STATIC_DIR / f).is_file()]


def localise_map(m) -> dict:
    """Point every element's JS/CSS at local files; drop unused CDN assets. Returns what was
    kept and dropped (names). Works on folium maps and any element tree under them."""
    import branca

    kept, dropped = [], []

    def walk(el):
        yield el
        for child in getattr(el, "_children", {}).values():
            yield from walk(child)

    for el in walk(m):
        if isinstance(el, branca.colormap.ColorMap):
            raise ValueError(
                "branca colour maps pull d3 from a CDN in streamlit-folium; draw legends in Streamlit"
            )
        for attr, table in (("default_js", LOCAL_JS), ("default_css", LOCAL_CSS)):
            links = getattr(el, attr, None)
            if not links:
                continue
            local = []
            for name, url in links:
                if name in table:
                    local.append((name, static_url(table[name])))
                    kept.append(name)
                elif url.startswith(("/", "./")) and "://" not in url:
                    local.append((name, url))
                    kept.append(name)
                else:
                    dropped.append(name)
            setattr(el, attr, local)  # instance attribute shadows the class default
    return {"kept": sorted(set(kept)), "dropped": sorted(set(dropped))}


# --------------------------------------------------------------------------- RS basemap tiles

_tile_lock = threading.Lock()
_tile_threads: dict[str, threading.Thread] = {}


def tiles_kind(source) -> str:
    """ "world" (JPEG tiles of the demo world), "rasters" (PNG tiles of the user's rasters) or
    "none" (nothing to draw a basemap from)."""
    kind = str(getattr(source, "kind", None) or "world") if source is not None else "none"
    return kind if kind in ("world", "rasters") else "none"


def tiles_dir(world) -> Path:
    return TILES_ROOT / world.fingerprint


def tiles_url(world) -> str:
    ext = "png" if tiles_kind(world) == "rasters" else "jpg"
    return static_url(f"tiles/{world.fingerprint}/{{z}}/{{x}}/{{y}}.{ext}")


def tiles_max_zoom(source) -> int:
    """The finest zoom of the source's basemap tiles (-1: no basemap)."""
    kind = tiles_kind(source)
    if kind == "rasters":
        from app import tiles

        return tiles.top_zoom(source)
    return TILE_MAX_ZOOM if kind == "world" else -1


def tiles_zoom_ready(world) -> int:
    """Highest zoom whose tiles are all written (-1: none)."""
    kind = tiles_kind(world)
    if kind == "none":
        return -1
    d = tiles_dir(world)
    if kind == "rasters":
        from app import tiles

        return min(tiles.zoom_ready(d, world.fingerprint), tiles_max_zoom(world))
    for z in range(TILE_MAX_ZOOM, -1, -1):
        if raster.tiles_ready(d, world.fingerprint, z):
            return z
    return -1


def _tile_plan(source):
    """How a source's basemap is built: (build(max_zoom, min_zoom), the zoom built before the
    first page, the finest zoom). The demo world's JPEG tiles or the user's rasters' PNG tiles."""
    if tiles_kind(source) == "rasters":
        from app import tiles

        top = tiles_max_zoom(source)

        def build(max_zoom: int, min_zoom: int) -> None:
            tiles.build_raster_tiles(
                source, tiles_dir(source), max_zoom=max_zoom, min_zoom=min_zoom
            )

        return build, min(tiles.sync_zoom(source), top), top

    def build_world(max_zoom: int, min_zoom: int) -> None:
        raster.build_world_tiles(source, tiles_dir(source), max_zoom=max_zoom, min_zoom=min_zoom)

    return build_world, SYNC_TILE_ZOOM, TILE_MAX_ZOOM


def ensure_tiles(world, background: bool = True) -> int:
    """Make sure the RS basemap tiles exist: builds the low zooms now and the rest in a
    background thread (once per source per process). Returns the zoom ready now."""
    if tiles_kind(world) == "none":
        return -1
    build, sync, top = _tile_plan(world)
    ready = tiles_zoom_ready(world)
    if ready >= top:
        return ready
    with _tile_lock:
        ready = tiles_zoom_ready(world)
        if ready < sync:
            build(sync, ready + 1)
            ready = sync
        key = world.fingerprint
        if ready < top and key not in _tile_threads:
            start = ready + 1
            if not background:
                build(top, start)
                return top

            def work():
                try:
                    build(top, start)
                except Exception:  # pragma: no cover - logged, the map keeps the low zooms
                    log.exception("building the basemap tiles failed")

            t = threading.Thread(target=work, name="gair-tiles", daemon=True)
            _tile_threads[key] = t
            t.start()
    return ready


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.assets", description="app set-up steps")
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tiles", help="render the basemap tiles (demo world or an index's rasters)")
    t.add_argument("--world", default="data/world")
    t.add_argument("--index", default=None, help="render the imagery of this index instead")
    sub.add_parser("check", help="exit 1 when vendored Leaflet files are missing")
    args = parser.parse_args(argv)
    if args.cmd == "check":
        missing = missing_vendor_files()
        for f in missing:
            print(f"missing app/static/{f}: run scripts/vendor_assets.sh")
        return 1 if missing else 0
    if args.index:
        from index.search import read_manifest
        from index.sources import open_index_source

        source = open_index_source(args.index, read_manifest(args.index))
    else:
        from gair.world import World

        source = World.open(args.world)
    if tiles_kind(source) == "none":
        print(f"no basemap to render: {source!r} has no imagery to draw (prepared chips)")
        return 0
    if tiles_zoom_ready(source) >= tiles_max_zoom(source):
        print(f"RS basemap tiles up to date in {tiles_dir(source)}")
        return 0
    top = ensure_tiles(source, background=False)
    print(f"RS basemap tiles to zoom {top} in {tiles_dir(source)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# --------------------------------------------------------------------------- overlay images

OVERLAY_DIR = STATIC_DIR / "overlays"
OVERLAY_KEEP = 2000  # newest files kept; a click writes at most one (content-addressed)
_overlay_lock = threading.Lock()
_overlay_writes = 0


def overlay_url(png: bytes) -> str:
    """Serve an overlay PNG as a static file (content-addressed) and return its URL. A file
    instead of a data URL keeps the map update small: folium/branca compile every rendered
    snippet as a Jinja template, and lexing a ~100 kB base64 string costs ~100 ms a click."""
    import hashlib

    from gair.atomic import atomic_path  # temp beside the target, mode per umask, swept

    global _overlay_writes
    name = hashlib.sha1(png).hexdigest()[:20] + ".png"
    path = OVERLAY_DIR / name
    if not path.is_file():
        with atomic_path(path, durable=False) as tmp:
            tmp.write_bytes(png)
        with _overlay_lock:
            _overlay_writes += 1
            if _overlay_writes % 100 == 0:
                _prune_overlays()
    return static_url(f"overlays/{name}")


def _prune_overlays() -> None:
    from gair.atomic import remove_stale_temps

    remove_stale_temps(OVERLAY_DIR)  # temps of killed writes (their names are not reused)
    files = sorted(OVERLAY_DIR.glob("*.png"), key=lambda p: p.stat().st_mtime)
    for old in files[:-OVERLAY_KEEP]:
        old.unlink(missing_ok=True)
