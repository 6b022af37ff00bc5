"""Rasters for the map: Web Mercator geometry, the world's RS basemap tiles, and per-cell values
(similarity, predictions, labels) drawn as ONE colour-mapped image overlay.

Leaflet stretches an image overlay linearly in Web Mercator (EPSG:3857) between its bounds, so
every image here has rows equally spaced in Mercator y, not in latitude; a plate-carree image
would drift by hundreds of km at mid latitudes.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from app.extent import MERCATOR_MAX_LAT, cell_spacing, cells_extent, mercator_y

OVERLAY_BOUNDS = [[-MERCATOR_MAX_LAT, -180.0], [MERCATOR_MAX_LAT, 180.0]]  # [[S, W], [N, E]]
TILE_PX = 256
TILES_FORMAT = 1


def mercator_row_lats(
    n_rows: int, y_top: float = math.pi, y_bottom: float = -math.pi
) -> np.ndarray:
    """Latitudes (degrees) of the centres of `n_rows` rows equally spaced in Mercator y from
    y_top down to y_bottom (radians of the unit sphere; the whole world is [pi, -pi])."""
    y = y_top - (np.arange(n_rows) + 0.5) * (y_top - y_bottom) / n_rows
    return np.degrees(2.0 * np.arctan(np.exp(y)) - math.pi / 2.0)


def column_lons(n_cols: int, west: float = -180.0, east: float = 180.0) -> np.ndarray:
    return west + (np.arange(n_cols) + 0.5) * (east - west) / n_cols


# --------------------------------------------------------------------------- colour maps


def _ramp(stops: list[tuple[float, tuple[int, int, int]]], n: int = 254) -> np.ndarray:
    """Piecewise-linear colour ramp [n, 3] uint8 through (position, rgb) stops."""
    pos = np.array([p for p, _ in stops])
    rgb = np.array([c for _, c in stops], dtype=np.float64)
    t = np.linspace(0.0, 1.0, n)
    return np.stack([np.interp(t, pos, rgb[:, i]) for i in range(3)], -1).round().astype(np.uint8)


# Perceptually ordered ramps (sampled from matplotlib's inferno / viridis / cividis anchors), so
# the app needs no colour library at run time.
COLORMAPS = {
    "inferno": _ramp(
        [
            (0.0, (0, 0, 4)),
            (0.2, (66, 10, 104)),
            (0.4, (147, 38, 103)),
            (0.6, (221, 81, 58)),
            (0.8, (252, 165, 10)),
            (1.0, (252, 255, 164)),
        ]
    ),
    "viridis": _ramp(
        [
            (0.0, (68, 1, 84)),
            (0.25, (59, 82, 139)),
            (0.5, (33, 145, 140)),
            (0.75, (94, 201, 98)),
            (1.0, (253, 231, 37)),
        ]
    ),
    "terrain": _ramp(
        [
            (0.0, (38, 115, 77)),
            (0.3, (140, 184, 104)),
            (0.55, (230, 214, 140)),
            (0.8, (163, 117, 82)),
            (1.0, (250, 250, 250)),
        ]
    ),
}

# Qualitative palette for classes (Tableau 20-like, high contrast on the Blue Marble).
CLASS_COLORS = np.array(
    [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (188, 189, 34),
        (23, 190, 207),
        (174, 199, 232),
        (255, 187, 120),
        (152, 223, 138),
        (255, 152, 150),
        (197, 176, 213),
        (196, 156, 148),
        (247, 182, 210),
        (219, 219, 141),
        (158, 218, 229),
        (127, 127, 127),
        (199, 199, 199),
    ],
    dtype=np.uint8,
)


def hex_color(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def png_bytes(
    index_img: np.ndarray, palette: np.ndarray, alpha: np.ndarray, compress_level: int = 1
) -> bytes:
    """A palette PNG: index_img uint8 [H, W], palette [256, 3] uint8, alpha [256] uint8 (tRNS)."""
    im = Image.fromarray(np.ascontiguousarray(index_img, dtype=np.uint8), mode="P")
    im.putpalette(np.asarray(palette, dtype=np.uint8).reshape(-1).tolist())
    buf = io.BytesIO()
    im.save(
        buf,
        format="PNG",
        transparency=bytes(np.asarray(alpha, dtype=np.uint8).tolist()),
        compress_level=compress_level,
    )
    return buf.getvalue()


# --------------------------------------------------------------------------- cell overlays


@dataclass
class Legend:
    """What an overlay's colours mean: a continuous range or a list of classes."""

    title: str
    kind: str  # "continuous" | "classes"
    vmin: float = 0.0
    vmax: float = 1.0
    colormap: str = "inferno"
    classes: list[tuple[str, str]] | None = None  # (name, hex colour)

    def gradient_css(self) -> str:
        cmap = COLORMAPS[self.colormap]
        stops = ", ".join(hex_color(cmap[int(i)]) for i in np.linspace(0, len(cmap) - 1, 8))
        return f"linear-gradient(90deg, {stops})"


class CellRaster:
    """Draws per-cell values as one Web Mercator image: a lookup from every output pixel to its
    nearest grid cell (within about one cell spacing; farther pixels stay transparent, e.g.
    the sea of a land-only index), built once per index; each overlay is then one gather.

    `extent` None draws the whole Web Mercator world as a `width` x `width` square (the demo's
    global heatmap); an `app.extent.Extent` draws only that box, `width` x `height` pixels
    (square in Mercator; see `for_cells`). `bounds` is where Leaflet places the image."""

    def __init__(
        self,
        lat: np.ndarray,
        lon: np.ndarray,
        width: int = 1024,
        extent=None,
        height: int | None = None,
        spacing: float | None = None,
    ):
        from scipy import ndimage

        lat = np.asarray(lat, np.float64)
        lon = np.asarray(lon, np.float64)
        self.extent = extent
        self.width = w = int(width)
        if extent is None:
            west, east, y_top, y_bottom = -math.pi, math.pi, math.pi, -math.pi
            self.bounds = OVERLAY_BOUNDS
            self.height = h = w
        else:
            west, east = math.radians(extent.west), math.radians(extent.east)
            y_top, y_bottom = float(mercator_y(extent.north)), float(mercator_y(extent.south))
            self.bounds = extent.bounds()
            self.height = h = int(height or max(1, round(w * (y_top - y_bottom) / (east - west))))
        self.n_cells = len(lat)
        px_x, px_y = (east - west) / w, (y_top - y_bottom) / h  # Mercator radians per pixel
        pixel = max(px_x, px_y)
        # typical spacing: median great-circle chord to the nearest other cell (on a sample)
        if spacing is None:
            spacing = cell_spacing(lat, lon)
        spacing = spacing or pixel
        self.spacing = float(spacing)
        self.max_chord = max(1.5 * spacing, 1.5 * pixel * _min_cos(lat))
        # seed each cell's pixel, then give every pixel its nearest seed (Euclidean distance
        # transform in Mercator radians) and keep pixels within ~1.5 cell spacings on the ground
        y = mercator_y(lat)
        rows = np.clip(np.floor((y_top - y) / px_y).astype(np.int64), 0, h - 1)
        cols = np.clip(np.floor((np.radians(lon) - west) / px_x).astype(np.int64), 0, w - 1)
        seed = np.full((h, w), -1, np.int32)
        seed[rows, cols] = np.arange(len(lat), dtype=np.int32)
        if len(lat):
            dist, (ri, ci) = ndimage.distance_transform_edt(
                seed < 0, sampling=(px_y, px_x), return_indices=True
            )
            row_lats = mercator_row_lats(h, y_top, y_bottom)
            ground = dist * np.cos(np.radians(row_lats))[:, None]
            lookup = np.where(ground <= self.max_chord, seed[ri, ci], -1)
        else:
            lookup = seed
        self.lookup = lookup.astype(np.int32)
        self.mask = self.lookup >= 0
        self._safe_lookup = np.where(self.mask, self.lookup, 0)
        # the cells the image shows (at most one per pixel: at millions of cells, a small part
        # of them), so an overlay needs values for these rows only
        self.rows = np.unique(self.lookup[self.mask]).astype(np.int64)
        self._safe_lookup_rows = np.searchsorted(self.rows, self._safe_lookup).astype(np.int32)

    def _pixels(self, values: np.ndarray, fill) -> np.ndarray:
        """Per-pixel values [h, w] from per-cell values: `values` holds either every cell
        [n_cells] or only the drawn cells [len(rows)], in `rows` order; `fill` off the cells."""
        if len(values) == self.n_cells:
            lookup = self._safe_lookup
        elif len(values) == len(self.rows):
            lookup = self._safe_lookup_rows
        else:
            raise ValueError(
                f"{len(values)} values for a raster of {self.n_cells} cells ({len(self.rows)} drawn)"
            )
        return np.where(self.mask, values[lookup], fill)

    @classmethod
    def for_cells(
        cls,
        lat: np.ndarray,
        lon: np.ndarray,
        px_per_cell: float = 3.0,
        min_side: int = 512,
        max_side: int = 2048,
        spacing: float | None = None,
    ) -> CellRaster:
        """The rasteriser an index needs: the whole world at 1024 px when its cells span half
        the globe or more (the demo); else only the cells' box (plus half a cell), sized so a
        cell spans at least `px_per_cell` pixels, between `min_side` and `max_side` pixels on
        the longer side."""
        lat = np.asarray(lat, np.float64)
        lon = np.asarray(lon, np.float64)
        if spacing is None:
            spacing = cell_spacing(lat, lon)
        ext = cells_extent(lat, lon, spacing)
        if ext.is_global or not len(lat):
            return cls(lat, lon, spacing=spacing)
        dx = math.radians(ext.east - ext.west)
        dy = float(mercator_y(ext.north) - mercator_y(ext.south))
        # a cell's spacing in Mercator radians, where it is smallest (nearest the equator)
        nearest_equator = 0.0 if lat.min() <= 0 <= lat.max() else float(np.abs(lat).min())
        merc = (spacing or dx / min_side) / math.cos(math.radians(nearest_equator))
        pixel = merc / px_per_cell
        longest = max(dx, dy)
        pixel = min(max(pixel, longest / max_side), longest / min_side)
        width = int(min(max_side, max(1, math.ceil(dx / pixel))))
        height = int(min(max_side, max(1, math.ceil(dy / pixel))))
        return cls(lat, lon, width=width, extent=ext, height=height, spacing=spacing)

    def continuous(
        self,
        values: np.ndarray,
        vmin: float,
        vmax: float,
        colormap: str = "inferno",
        alpha: tuple[int, int] = (40, 230),
        gamma: float = 1.0,
        hide_below: bool = False,
    ) -> bytes:
        """PNG of values [n_cells] (or [len(rows)]) mapped linearly vmin..vmax onto a colour ramp; alpha rises
        from alpha[0] at vmin to alpha[1] at vmax (so high values stand out); with hide_below,
        values under vmin are transparent."""
        values = np.asarray(values, np.float32)
        span = max(float(vmax) - float(vmin), 1e-12)
        t = np.clip((values - np.float32(vmin)) / np.float32(span), 0.0, 1.0)
        if gamma != 1.0:
            t = t**gamma
        level = np.round(t * 253).astype(np.uint8)  # 0..253 colours, 255 = transparent
        keep = np.isfinite(values) & ((values >= np.float32(vmin)) if hide_below else True)
        level = np.where(keep, level, 255).astype(np.uint8)
        img = self._pixels(level, np.uint8(255))
        palette = np.zeros((256, 3), np.uint8)
        palette[:254] = COLORMAPS[colormap]
        a = np.zeros(256, np.uint8)
        a[:254] = np.linspace(alpha[0], alpha[1], 254).round().astype(np.uint8)
        return png_bytes(img, palette, a)

    def classes(self, codes: np.ndarray, colors: np.ndarray, alpha: int = 190) -> bytes:
        """PNG of integer class codes [n_cells] or [len(rows)] (0..len(colors)-1; <0 = no data)."""
        codes = np.asarray(codes, np.int64)
        n = len(colors)
        level = np.where((codes >= 0) & (codes < n), codes, 255).astype(np.uint8)
        img = self._pixels(level, np.uint8(255))
        palette = np.zeros((256, 3), np.uint8)
        palette[:n] = colors[:n]
        a = np.zeros(256, np.uint8)
        a[:n] = alpha
        return png_bytes(img, palette, a)


def _min_cos(lat: np.ndarray) -> float:
    """cos of the latitude nearest the equator (1.0 without cells)."""
    if not len(lat):
        return 1.0
    if lat.min() <= 0 <= lat.max():
        return 1.0
    return float(np.cos(np.radians(np.abs(lat).min())))


# --------------------------------------------------------------------------- basemap tiles


def world_rgb(world) -> np.ndarray:
    """The basemap colours [H, W, 3] uint8: Blue Marble RGB lightly shaded by the relief band
    on land (plate carree, row 0 at 90N)."""
    rs = np.asarray(world.rs)  # uint8 [C, H, W]
    rgb = rs[:3].transpose(1, 2, 0).astype(np.float32)
    if rs.shape[0] >= 4:
        relief = rs[3].astype(np.float32)
        land = np.asarray(getattr(world, "land", np.ones(relief.shape, bool)))
        shade = np.clip(relief / 180.0, 0.55, 1.3) ** 0.6
        rgb[land] *= shade[land, None]
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _sample_bilinear(img: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """img [H, W, 3] at fractional pixel-centre coordinates rows [h], cols [w] -> [h, w, 3];
    columns wrap around the globe, rows clamp."""
    h, w = img.shape[:2]
    r0 = np.floor(rows).astype(np.int64)
    c0 = np.floor(cols).astype(np.int64)
    fr = (rows - r0).astype(np.float32)[:, None, None]
    fc = (cols - c0).astype(np.float32)[None, :, None]
    ra, rb = np.clip(r0, 0, h - 1), np.clip(r0 + 1, 0, h - 1)
    ca, cb = c0 % w, (c0 + 1) % w
    top = img[ra][:, ca].astype(np.float32) * (1 - fc) + img[ra][:, cb].astype(np.float32) * fc
    bot = img[rb][:, ca].astype(np.float32) * (1 - fc) + img[rb][:, cb].astype(np.float32) * fc
    return np.clip(top * (1 - fr) + bot * fr + 0.5, 0, 255).astype(np.uint8)


def tiles_marker(tiles_dir: Path) -> Path:
    return Path(tiles_dir) / "tiles.json"


def tiles_ready(tiles_dir: Path, fingerprint: str, max_zoom: int) -> bool:
    marker = tiles_marker(tiles_dir)
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return (
        meta.get("format") == TILES_FORMAT
        and meta.get("fingerprint") == fingerprint
        and meta.get("max_zoom", -1) >= max_zoom
    )


def build_world_tiles(
    world, tiles_dir: str | Path, max_zoom: int = 5, quality: int = 85, min_zoom: int = 0
) -> dict:
    """Write the world's RS layer as XYZ Web Mercator JPEG tiles `{z}/{x}/{y}.jpg`, zoom
    0..max_zoom (zoom 5 = 8192 px around the equator, finer than the 5400 px raster), then a
    `tiles.json` marker written last (a half-written tile set is never taken as complete)."""
    from gair.atomic import atomic_path  # temp beside the target, mode per umask, swept

    tiles_dir = Path(tiles_dir)
    rgb = world_rgb(world)
    h, w = rgb.shape[:2]
    count = 0
    for z in range(min_zoom, max_zoom + 1):
        n = 2**z
        size = TILE_PX * n
        lons = column_lons(size)
        src_cols = (lons + 180.0) / 360.0 * w - 0.5
        for ty in range(n):
            y_top = math.pi - 2 * math.pi * ty / n
            y_bottom = math.pi - 2 * math.pi * (ty + 1) / n
            lats = mercator_row_lats(TILE_PX, y_top, y_bottom)
            src_rows = (90.0 - lats) / 180.0 * h - 0.5
            strip = _sample_bilinear(rgb, src_rows, src_cols)  # [256, size, 3]
            for tx in range(n):
                out = tiles_dir / str(z) / str(tx) / f"{ty}.jpg"
                tile = Image.fromarray(strip[:, tx * TILE_PX : (tx + 1) * TILE_PX])
                with atomic_path(out, durable=False) as tmp, open(tmp, "wb") as fh:
                    tile.save(fh, format="JPEG", quality=quality)
                count += 1
    meta = {
        "format": TILES_FORMAT,
        "fingerprint": world.fingerprint,
        "max_zoom": max_zoom,
        "tiles": count,
    }
    with atomic_path(tiles_marker(tiles_dir), durable=False) as tmp:
        tmp.write_text(json.dumps(meta))
    return meta
