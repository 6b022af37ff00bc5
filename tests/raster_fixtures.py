"""Sentinel-2-like test imagery written with rasterio: a 12-band L2A mosaic across the UTM
31/32 boundary (6 E), with a gap, and an official-layout random checkpoint to read it with.

The reflectance is one smooth function of (lat, lon), so overlapping files agree and a chip
cut by hand can be compared with one the source mosaics. File B stores processing-baseline 04.00
digital numbers (+1000) and says so with a BOA_ADD_OFFSET tag, which the source must undo.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gair.preprocess_presets import S2_L2A_BANDS

LAT0, LAT1 = 44.995, 45.05
# file A (zone 31) and B (zone 32) overlap at 6.0 E; nothing east of GAP_WEST
A_LON, B_LON = (5.935, 6.004), (5.996, 6.032)
GAP_WEST, AOI_EAST = 6.032, 6.058
GSD_M = 20.0


def reflectance(lat: np.ndarray, lon: np.ndarray, band: int) -> np.ndarray:
    """Smooth fields in L2A digital numbers (500..4000), different per band."""
    f = 2 * np.pi / 0.02  # ~1.6 km wavelength in longitude
    v = 2000 + 900 * np.sin(f * lon + band) * np.cos(0.7 * f * lat - band / 3)
    return v + 250 * band + 300 * np.cos(0.3 * f * (lon + lat))


def write_utm_raster(
    path: Path,
    epsg: int,
    lon_range,
    dn_add: float = 0.0,
    tag=None,
    lat_range=(LAT0, LAT1),
    gsd_m: float = GSD_M,
) -> None:
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.warp import transform, transform_bounds

    lat0, lat1 = lat_range
    w, s, e, n = transform_bounds(
        "EPSG:4326", f"EPSG:{epsg}", lon_range[0], lat0, lon_range[1], lat1
    )
    width, height = int((e - w) // gsd_m), int((n - s) // gsd_m)
    tr = from_origin(w, n, gsd_m, gsd_m)
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    xs, ys = tr * (cols.ravel(), rows.ravel())
    lon, lat = transform(f"EPSG:{epsg}", "EPSG:4326", xs, ys)
    lon, lat = np.asarray(lon).reshape(height, width), np.asarray(lat).reshape(height, width)
    inside = (lon >= lon_range[0]) & (lon <= lon_range[1]) & (lat >= lat0) & (lat <= lat1)
    data = np.stack([reflectance(lat, lon, b) + dn_add for b in range(12)])
    data = np.where(inside[None], data, 0).round().astype(np.uint16)
    profile = dict(driver="GTiff", width=width, height=height, count=12, dtype="uint16")
    profile.update(crs=f"EPSG:{epsg}", transform=tr, nodata=0, tiled=True)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = tuple(S2_L2A_BANDS)
        if tag:
            dst.update_tags(**tag)


def write_mosaic(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_utm_raster(folder / "zone31_a.tif", 32631, A_LON)
    write_utm_raster(folder / "zone32_b.tif", 32632, B_LON, 1000.0, {"BOA_ADD_OFFSET": "-1000"})
    return folder


def write_aoi(path: Path) -> Path:
    """A polygon from file A across the zone boundary into the gap."""
    ring = [[5.975, 45.012], [AOI_EAST, 45.012], [AOI_EAST, 45.034], [5.975, 45.034]]
    geometry = {"type": "Polygon", "coordinates": [ring + [ring[0]]]}
    path.write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": geometry}))
    return path


def import_random_release(tmp: Path, **sizes) -> Path:
    """A random-weight checkpoint in the release's exact layout, imported with no flags
    (`sizes`: make_release_state's widths/depths; default: a small model)."""
    from gair.official import import_official
    from tests.official_reference import (
        add_gair_model_extras,
        make_release_state,
        save_release_checkpoint,
    )

    state = add_gair_model_extras(make_release_state(sigmas=(1.0, 2.0, 4.0), seed=5, **sizes))
    save_release_checkpoint(state, tmp / "gair_release.pth")
    import_official(tmp / "gair_release.pth", tmp / "run")
    return tmp / "run"
