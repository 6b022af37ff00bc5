"""The world's raster layers on the global grid, made from the source files of
`gair.world.sources`: RS imagery, the land mask, Koppen-Geiger climate and land cover
(decimated reads), elevation (with the repairs stated in DATA.md) and countries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gair.world import grid
from gair.world.render_signs import regional_styles

# Natural Earth low-res leaves ISO-A3 as "-99" for a few; use the usual codes.
ISO_FIXES = {
    "France": "FRA",
    "Norway": "NOR",
    "N. Cyprus": "CYP",
    "Somaliland": "SOM",
    "Kosovo": "XKX",
}

# Natural Earth gives each country one continent. Where a country's land lies on two, these
# longitude ranges [lon_min, lon_max) give the part that is not on its listed continent, so a
# point's continent label is geographic: Siberia is Asia, French Guiana South America. Russia's
# Europe/Asia line is the Ural meridian (60 deg E; the Urals run 57-66 deg E, the Ural River
# south of them ~51 deg E), plus Chukotka over the antimeridian. Smaller transcontinental parts
# (Turkish Thrace, Sinai, west Kazakhstan) keep their country's continent.
CONTINENT_PARTS: dict[str, list[tuple[float, float, str]]] = {
    "RUS": [(60.0, 180.0, "Asia"), (-180.0, -160.0, "Asia")],
    "FRA": [(-60.0, -45.0, "South America")],
}


def _read_jpeg(path: Path, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    # the packaged Blue Marble is a trusted, known-size file over Pillow's bomb guard: lift the
    # guard for this read only (a global change would disable it for user images too)
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as im:
            im.draft("RGB", size)  # JPEG DCT scaling: decodes directly at 1/2, 1/4 ... size
            im = im.convert("RGB")
            if im.size != size:
                im = im.resize(size, Image.Resampling.BOX)
            return np.asarray(im)
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def build_rs(paths: dict[str, Path]) -> np.ndarray:
    rgb = _read_jpeg(paths["bluemarble"], (grid.WIDTH, grid.HEIGHT))
    relief = _read_jpeg(paths["shadedrelief"], (grid.WIDTH, grid.HEIGHT)).astype(np.float32)
    lum = relief @ np.array([0.299, 0.587, 0.114], np.float32)
    out = np.empty((4, grid.HEIGHT, grid.WIDTH), np.uint8)
    for b in range(3):
        out[b] = rgb[..., b]
    out[3] = np.clip(np.rint(lum), 0, 255).astype(np.uint8)
    return out


def build_land(paths: dict[str, Path]) -> np.ndarray:
    """GLOBE 30" mask (True = ocean) -> land where >= half of the 8x8 block is land."""
    with np.load(paths["landmask"]) as z:
        ocean = z["mask"]
    if ocean.shape != (grid.HEIGHT * 8, grid.WIDTH * 8):
        raise ValueError(f"unexpected GLOBE mask shape {ocean.shape}")
    # 8 consecutive bools = one uint64 whose popcount counts the ocean cells among them
    per8 = np.bitwise_count(np.ascontiguousarray(ocean).view(np.uint64))
    del ocean
    n_ocean = per8.reshape(grid.HEIGHT, 8, grid.WIDTH).sum(axis=1, dtype=np.uint8)
    return n_ocean < 32


def _read_decimated(path: Path, nodata_to: int | None = None) -> np.ndarray:
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(path) as ds:
        w, s, e, n = ds.bounds
        if abs(w + 180) > 1e-6 or abs(e - 180) > 1e-6 or abs(n - 90) > 1e-6 or abs(s + 90) > 1e-6:
            raise ValueError(f"{path.name}: expected a global grid, got bounds {ds.bounds}")
        # nearest-neighbour decimation: GDAL decodes only the rows it needs (row blocks)
        arr = ds.read(1, out_shape=(grid.HEIGHT, grid.WIDTH), resampling=Resampling.nearest)
    if nodata_to is not None:
        arr = np.where(arr == 255, np.uint8(nodata_to), arr)
    return arr.astype(np.uint8)


def _fill_nearest(values: np.ndarray, missing: np.ndarray, source: np.ndarray, edt) -> None:
    """values[missing] = value of the nearest `source` cell, working on bands of rows around
    the missing cells only (they are mostly the polar caps)."""
    rows = np.flatnonzero(missing.any(axis=1))
    if len(rows) == 0:
        return
    pad = 60
    starts = [rows[0]]
    ends = []
    for a, b in zip(rows[:-1], rows[1:]):
        if b - a > 2 * pad:
            ends.append(a)
            starts.append(b)
    ends.append(rows[-1])
    for a, b in zip(starts, ends):
        r0, r1 = max(0, a - pad), min(values.shape[0], b + pad + 1)
        src = source[r0:r1]
        if not src.any():
            continue
        _, (ri, ci) = edt(~src, return_indices=True)
        miss = missing[r0:r1]
        block = values[r0:r1]
        block[miss] = block[ri[miss], ci[miss]]


GREENLAND = {"lat": (59.0, 84.0), "lon": (-75.0, -10.0)}
ICE_SHEET_MAX_M = 3200.0
ICE_SHEET_SCALE_KM = 500.0


def build_elevation(paths: dict[str, Path], land: np.ndarray, landcover: np.ndarray) -> np.ndarray:
    """pvlib's 5' elevation resampled bilinearly to the grid, with two repairs on land:

    - cells without data (north of 83.75 N, south of 84.9 S, small gaps) take the value of the
      nearest land cell with data;
    - the Greenland ice sheet, which the source gives as bedrock (the ~3,200 m Summit reads
      ~300 m), gets a modelled surface: 3,200 m * sqrt(min(1, d / 500 km)), d = distance to the
      ice margin (IGBP snow/ice), the square-root profile of an ice sheet. Stated in DATA.md.
    """
    import h5py
    from scipy.ndimage import distance_transform_edt
    from scipy.spatial import cKDTree

    with h5py.File(paths["altitude"], "r") as f:
        raw = f["Altitude"][()]
    src_h, src_w = raw.shape
    valid = raw != 255
    metres = np.where(valid, raw.astype(np.float32) * 28.0 - 450.0, 0.0).astype(np.float32)

    def axis_weights(n_out: int, n_in: int, wrap: bool):
        pos = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5  # pixel centres aligned
        i0 = np.floor(pos).astype(np.int64)
        w = (pos - i0).astype(np.float32)
        i1 = i0 + 1
        if wrap:
            return i0 % n_in, i1 % n_in, w
        return np.clip(i0, 0, n_in - 1), np.clip(i1, 0, n_in - 1), w

    r0, r1, wr = axis_weights(grid.HEIGHT, src_h, wrap=False)
    c0, c1, wc = axis_weights(grid.WIDTH, src_w, wrap=True)

    def resample(a: np.ndarray) -> np.ndarray:  # separable bilinear; longitudes wrap
        rows = np.take(a, r0, axis=0) * (1 - wr)[:, None] + np.take(a, r1, axis=0) * wr[:, None]
        return np.take(rows, c0, axis=1) * (1 - wc) + np.take(rows, c1, axis=1) * wc

    weight = resample(valid.astype(np.float32))
    out = resample(metres) / np.maximum(weight, 1e-6)  # average of the valid neighbours only
    good = weight > 0.25
    out[~good] = 0.0
    _fill_nearest(out, land & ~good, good & land, distance_transform_edt)
    # Greenland ice-sheet surface
    r0, r1 = int((90 - GREENLAND["lat"][1]) * 15), int((90 - GREENLAND["lat"][0]) * 15)
    c0, c1 = int((GREENLAND["lon"][0] + 180) * 15), int((GREENLAND["lon"][1] + 180) * 15)
    ice = (landcover[r0:r1, c0:c1] == 15) & land[r0:r1, c0:c1]
    if ice.sum() > 1000:
        not_ice = ~ice
        edge = not_ice & (distance_transform_edt(not_ice) <= 1.0)  # cells just outside the ice
        er, ec = np.nonzero(edge)
        ir, ic = np.nonzero(ice)
        tree = cKDTree(grid.unit_vectors(grid.row_lat(er + r0), grid.col_lon(ec + c0)))
        dist, _ = tree.query(grid.unit_vectors(grid.row_lat(ir + r0), grid.col_lon(ic + c0)))
        d_km = grid.chord_to_km(dist)
        surface = ICE_SHEET_MAX_M * np.sqrt(np.minimum(1.0, d_km / ICE_SHEET_SCALE_KM))
        block = out[r0:r1, c0:c1]
        block[ir, ic] = np.maximum(block[ir, ic], surface)
    out[~land] = 0.0
    return np.rint(out).astype(np.int16)


def build_countries(paths: dict[str, Path], land: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    import pyogrio
    from rasterio.features import rasterize
    from rasterio.transform import from_origin
    from scipy.ndimage import distance_transform_edt

    df = pyogrio.read_dataframe(paths["countries"])
    table = []
    shapes = []
    for i, row in enumerate(df.itertuples(index=False), start=1):
        iso = str(row.iso_a3)
        if len(iso) != 3 or not iso.isalpha():
            iso = ISO_FIXES.get(str(row.name), "")
        table.append({"iso_a3": iso, "name": str(row.name), "continent": str(row.continent)})
        shapes.append((row.geometry, i))
    if len(table) > 255:
        raise ValueError(f"too many countries for uint8: {len(table)}")
    transform = from_origin(-180.0, 90.0, grid.DEG_PER_PX, grid.DEG_PER_PX)
    country = rasterize(
        shapes, out_shape=(grid.HEIGHT, grid.WIDTH), transform=transform, fill=0, dtype="uint8"
    )
    # coastlines differ between sources: give land pixels just outside a polygon (<= 5 px, ~37 km)
    # their nearest country
    missing = land & (country == 0)
    if missing.any():
        dist, (ri, ci) = distance_transform_edt(country == 0, return_indices=True)
        fill = missing & (dist <= 5)
        country[fill] = country[ri[fill], ci[fill]]
    country[~land] = 0  # countries are labels of land
    styles = regional_styles(
        [c["iso_a3"] for c in table],
        [c["continent"] for c in table],
        _centroids(country, len(table)),
    )
    for entry, style in zip(table, styles.tolist(), strict=True):
        entry["sign"] = style  # per country: a country keeps one sign convention across continents
        entry["continent_parts"] = [list(part) for part in CONTINENT_PARTS.get(entry["iso_a3"], [])]
    return country, table


def _centroids(country: np.ndarray, n: int) -> np.ndarray:
    """[n, 3] unit vectors: the area-weighted mean direction of each country's pixels (1-based
    index in `country` [H, W]; NaN for a country without pixels)."""
    rows, cols = np.nonzero(country)
    idx = country[rows, cols].astype(np.int64)
    lat = grid.row_lat(rows)
    xyz = grid.unit_vectors(lat, grid.col_lon(cols)) * np.cos(np.deg2rad(lat))[:, None]
    sums = np.stack([np.bincount(idx, xyz[:, k], minlength=n + 1) for k in range(3)], 1)[1:]
    norm = np.linalg.norm(sums, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, sums / norm, np.nan)
