"""The basemap of an index built from the user's rasters: Web Mercator XYZ tiles rendered from
the source (`source.read_rgba_mercator`, true colour with alpha 0 where there is no imagery)
into `app/static/tiles/<source fingerprint>/{z}/{x}/{y}.png`, served by the app itself.

Only tiles that intersect the source's bounds are written, zooms 0..`source.native_zoom` (fewer
for a mosaic so large that its tiles would exceed MAX_TILES); a
`tiles.json` marker records the highest zoom complete so far (rewritten after each zoom), so a
map drawn while the tiles are still being rendered uses the zooms that are there.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

TILE_PX = 256
RASTER_TILES_FORMAT = 1
EARTH_M = 20037508.342789244  # half the Web Mercator world, metres (EPSG:3857)
SYNC_TILES = 16  # zooms are rendered while the page waits as long as they hold this few tiles
MAX_TILES = 40_000  # at most this many tiles in all (~1-2 GB); deeper zooms overzoom the last


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[float, float]:
    """Fractional XYZ tile coordinates (x, y) of a point at zoom z."""
    from app.extent import mercator_y

    n = 2**z
    x = (lon + 180.0) / 360.0 * n
    y = (math.pi - float(mercator_y(lat))) / (2 * math.pi) * n
    return x, y


def tile_range(bounds4326, z: int) -> tuple[range, range]:
    """The tile columns and rows at zoom z that intersect (west, south, east, north)."""
    west, south, east, north = (float(v) for v in bounds4326)
    n = 2**z
    x0, y0 = lonlat_to_tile(west, north, z)
    x1, y1 = lonlat_to_tile(east, south, z)
    cols = range(max(0, math.floor(x0)), min(n - 1, math.ceil(x1) - 1) + 1)
    rows = range(max(0, math.floor(y0)), min(n - 1, math.ceil(y1) - 1) + 1)
    return cols, rows


def tile_bounds_m(x: int, y: int, z: int) -> tuple[float, float, float, float]:
    """EPSG:3857 metre bounds (x0, y0, x1, y1) = (west, south, east, north) of a tile."""
    size = 2 * EARTH_M / 2**z
    west = -EARTH_M + x * size
    north = EARTH_M - y * size
    return west, north - size, west + size, north


def tile_count(bounds4326, z: int) -> int:
    cols, rows = tile_range(bounds4326, z)
    return len(cols) * len(rows)


def marker(tiles_dir: Path) -> Path:
    return Path(tiles_dir) / "tiles.json"


def zoom_ready(tiles_dir: Path, fingerprint: str) -> int:
    """Highest zoom whose tiles are all written (-1: none)."""
    try:
        meta = json.loads(marker(tiles_dir).read_text())
    except (OSError, ValueError):
        return -1
    if meta.get("format") != RASTER_TILES_FORMAT or meta.get("fingerprint") != fingerprint:
        return -1
    return int(meta.get("max_zoom", -1))


def _png(rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba, np.uint8), mode="RGBA").save(
        buf, format="PNG", compress_level=6
    )
    return buf.getvalue()


def render_tile(source, x: int, y: int, z: int) -> bytes:
    """One 256 px PNG tile of the source (transparent where it has no imagery)."""
    x0, y0, x1, y1 = tile_bounds_m(x, y, z)
    rgba = np.asarray(source.read_rgba_mercator(x0, y0, x1, y1, TILE_PX))
    if rgba.shape != (TILE_PX, TILE_PX, 4) or rgba.dtype != np.uint8:
        raise ValueError(
            f"read_rgba_mercator gave {rgba.dtype} {rgba.shape}, expected uint8 "
            f"[{TILE_PX}, {TILE_PX}, 4]"
        )
    return _png(rgba)


def build_raster_tiles(source, tiles_dir: str | Path, max_zoom: int, min_zoom: int = 0) -> dict:
    """Write the tiles of zooms min_zoom..max_zoom that intersect `source.bounds4326`; the
    marker is rewritten after each complete zoom (a half-written zoom is never taken as done)."""
    from gair.atomic import atomic_path  # temp beside the target, mode per umask, swept

    tiles_dir = Path(tiles_dir)
    count = 0
    for z in range(min_zoom, max_zoom + 1):
        cols, rows = tile_range(source.bounds4326, z)
        for x in cols:
            for y in rows:
                data = render_tile(source, x, y, z)
                with atomic_path(tiles_dir / str(z) / str(x) / f"{y}.png", durable=False) as tmp:
                    tmp.write_bytes(data)
                count += 1
        meta = {
            "format": RASTER_TILES_FORMAT,
            "fingerprint": source.fingerprint,
            "max_zoom": z,
            "native_zoom": int(source.native_zoom),
            "bounds4326": [float(v) for v in source.bounds4326],
        }
        with atomic_path(marker(tiles_dir), durable=False) as tmp:
            tmp.write_text(json.dumps(meta))
    return {"tiles": count, "max_zoom": max_zoom}


def top_zoom(source, budget: int = MAX_TILES) -> int:
    """The finest zoom rendered: the native zoom, or less where the zooms up to it would hold
    more than `budget` tiles (a country-sized mosaic); Leaflet scales the last zoom up."""
    total = 0
    for z in range(int(source.native_zoom) + 1):
        total += tile_count(source.bounds4326, z)
        if total > budget:
            return max(0, z - 1)
    return int(source.native_zoom)


def sync_zoom(source) -> int:
    """The highest zoom worth rendering before the first page: all zooms up to it together
    hold at most SYNC_TILES tiles (-1: not even zoom 0, which cannot happen)."""
    total, z = 0, -1
    while z < int(source.native_zoom):
        total += tile_count(source.bounds4326, z + 1)
        if total > SYNC_TILES:
            break
        z += 1
    return z
