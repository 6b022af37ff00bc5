"""The raster side of `gair data prepare`: scanning the GeoTIFFs (CRS, footprint in EPSG:4326,
band selection by name or count), laying out a chip around a point and reading it (windowed
read, reprojection onto the chip's lat/lon grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gair.config import S2_GAIR_BANDS

L2A_12_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]
KM_PER_DEG = 111.19492664455873
RASTER_SUFFIXES = (".tif", ".tiff")


def normalise_band(name: str) -> str:
    """'b08' -> 'B8', 'B8A' -> 'B8A', 'B02 (blue)' -> 'B2'."""
    s = str(name).strip().upper().split()[0] if str(name).strip() else ""
    if s.startswith("B") and len(s) > 1:
        digits = s[1:]
        suffix = "A" if digits.endswith("A") else ""
        digits = digits.rstrip("A")
        if digits.isdigit():
            return f"B{int(digits)}{suffix}"
    return s


@dataclass
class RasterInfo:
    path: Path
    crs: object = None
    count: int = 0
    nodata: float | None = None
    band_index: list[int] | None = None  # 1-based indexes of the wanted bands, None = bad
    band_problem: str = ""
    bounds4326: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    inner4326: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    used: int = 0


def band_indexes(descriptions, count: int, bands: list[str]) -> tuple[list[int] | None, str]:
    """1-based band indexes of `bands` in a raster, or (None, why)."""
    names = [normalise_band(d) if d else "" for d in descriptions]
    if all(names) and len(set(names)) == len(names):
        missing = [b for b in bands if b not in names]
        if not missing:
            return [names.index(b) + 1 for b in bands], ""
        return None, f"band descriptions {names} lack {missing}"
    for order in (L2A_12_BANDS, S2_GAIR_BANDS):
        if count == len(order):
            missing = [b for b in bands if b not in order]
            if missing:
                return None, f"a {count}-band raster (assumed {order}) lacks {missing}"
            return [order.index(b) + 1 for b in bands], ""
    return None, (
        f"{count} bands without band descriptions: expected 12 (Sentinel-2 L2A B1..B12 without "
        f"B10) or 10 (GAIR order)"
    )


def _inner_bounds(ds) -> tuple[tuple, tuple]:
    """EPSG:4326 bounds of a raster and a rectangle inside its footprint (edges densified)."""
    from rasterio.warp import transform as warp_transform

    left, bottom, right, top = ds.bounds
    n = 21
    t = np.linspace(0.0, 1.0, n)
    xs_l, ys_l = np.full(n, left), bottom + (top - bottom) * t
    xs_r, ys_r = np.full(n, right), ys_l
    xs_b, ys_b = left + (right - left) * t, np.full(n, bottom)
    xs_t, ys_t = xs_b, np.full(n, top)
    xs = np.concatenate([xs_l, xs_r, xs_b, xs_t])
    ys = np.concatenate([ys_l, ys_r, ys_b, ys_t])
    lon, lat = warp_transform(ds.crs, "EPSG:4326", xs.tolist(), ys.tolist())
    lon, lat = np.asarray(lon), np.asarray(lat)
    outer = (lon.min(), lat.min(), lon.max(), lat.max())
    inner = (
        lon[:n].max(),  # left edge: the easternmost of its points
        lat[2 * n : 3 * n].max(),
        lon[n : 2 * n].min(),
        lat[3 * n :].min(),
    )
    return outer, inner


def scan_rasters(folder: Path, bands: list[str]) -> tuple[list[RasterInfo], dict[str, str]]:
    import rasterio

    infos, skipped = [], {}
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES)
    for path in files:
        try:
            with rasterio.open(path) as ds:
                if ds.crs is None:
                    skipped[str(path)] = "no CRS"
                    continue
                info = RasterInfo(path=path, crs=ds.crs, count=ds.count, nodata=ds.nodata)
                info.band_index, info.band_problem = band_indexes(ds.descriptions, ds.count, bands)
                info.bounds4326, info.inner4326 = _inner_bounds(ds)
        except Exception as err:  # noqa: BLE001 - any unreadable raster is skipped, not fatal
            skipped[str(path)] = f"unreadable: {err}"
            continue
        infos.append(info)
    return infos, skipped


def chip_bbox(lat: float, lon: float, chip_km: float, inner: tuple) -> tuple[float, ...]:
    """(west, south, east, north) of a chip_km square around the point, shifted inside
    `inner` as far as possible while keeping the point inside the chip."""
    half_lat = chip_km / 2.0 / KM_PER_DEG
    half_lon = half_lat / max(math.cos(math.radians(lat)), 1e-6)

    def place(p: float, half: float, lo: float, hi: float) -> float:
        start = p - half  # centred
        if 2 * half <= hi - lo:
            start = min(max(start, lo), hi - 2 * half)  # inside the raster
        else:
            start = (lo + hi) / 2.0 - half  # raster smaller than the chip: centre on it
        return min(max(start, p - 2 * half), p)  # but the point stays inside

    west = place(lon, half_lon, inner[0], inner[2])
    south = place(lat, half_lat, inner[1], inner[3])
    return west, south, west + 2 * half_lon, south + 2 * half_lat


def read_chip(info: RasterInfo, bbox: tuple, chip_px: int) -> tuple[np.ndarray, float]:
    """Windowed read + reprojection onto the chip's EPSG:4326 grid.
    -> (float32 [C, chip_px, chip_px] with 0 where there is no data, covered fraction)."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.transform import from_bounds
    from rasterio.warp import reproject, transform_bounds
    from rasterio.windows import Window
    from rasterio.windows import from_bounds as window_from_bounds

    with rasterio.open(info.path) as ds:
        left, bottom, right, top = transform_bounds("EPSG:4326", ds.crs, *bbox, densify_pts=21)
        win = window_from_bounds(left, bottom, right, top, transform=ds.transform)
        pad = 2
        col0 = max(0, int(math.floor(win.col_off)) - pad)
        row0 = max(0, int(math.floor(win.row_off)) - pad)
        col1 = min(ds.width, int(math.ceil(win.col_off + win.width)) + pad)
        row1 = min(ds.height, int(math.ceil(win.row_off + win.height)) + pad)
        if col1 <= col0 or row1 <= row0:
            return np.zeros((len(info.band_index), chip_px, chip_px), np.float32), 0.0
        window = Window(col0, row0, col1 - col0, row1 - row0)
        src = ds.read(indexes=info.band_index, window=window).astype(np.float32)
        src_transform = ds.window_transform(window)
        nodata = ds.nodata if ds.nodata is not None else 0.0
        dst = np.full((len(info.band_index), chip_px, chip_px), np.nan, np.float32)
        reproject(
            source=src,
            destination=dst,
            src_transform=src_transform,
            src_crs=ds.crs,
            src_nodata=nodata,
            dst_transform=from_bounds(*bbox, chip_px, chip_px),
            dst_crs="EPSG:4326",
            dst_nodata=np.nan,
            resampling=Resampling.bilinear,
        )
    valid = np.isfinite(dst).all(axis=0)
    return np.nan_to_num(dst, nan=0.0), float(valid.mean())


def _depth(c: RasterInfo, lat: float, lon: float) -> float:
    """How deep a point lies inside a raster's footprint (0 at an edge, 0.5 at the centre)."""
    w, s, e, n = c.inner4326
    dx, dy = max(e - w, 1e-12), max(n - s, 1e-12)
    return min((lon - w) / dx, (e - lon) / dx, (lat - s) / dy, (n - lat) / dy)
