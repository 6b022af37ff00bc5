"""`gair world build`: the embedded demo world, built only from data shipped in PyPI packages.

Layout of a world directory (format version `WORLD_FORMAT_VERSION`), all rasters on the global grid
of `gair.world.grid` (5400 x 2700, 1/15 degree, row 0 at the north):

- `rs.npy`          uint8 [4, H, W]: Blue Marble R, G, B + shaded-relief luminance (band planes)
- `koppen.npy`      uint8 [H, W]: Koppen-Geiger main class 1..5 = A..E, 0 = none (sea)
- `landcover.npy`   uint8 [H, W]: MODIS IGBP class 0..16 (0 = water)
- `elevation.npy`   int16 [H, W]: metres above sea level (sea = 0)
- `population.npy`  uint8 [H, W]: log10(1 + people within 50 km) * 32 (GeoNames cities)
- `country.npy`     uint8 [H, W]: 1-based index into manifest["countries"], 0 = none
- `land.npy`        uint8 [H, ceil(W/8)]: np.packbits of the land mask (GLOBE, majority of 8x8)
- `streetviews.parquet`: id, lat, lon, split, source, block
- `manifest.json`: format version, sources (package versions + sha256), layers (dtype, shape,
  bytes, sha256), split scheme, build parameters, fingerprint. Written last.

The build happens in a temp directory beside the target that is renamed into place at the end
(`gair.atomic.atomic_dir`), so an interrupted build never leaves a half-written world.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from gair.atomic import atomic_dir, write_json
from gair.world import grid
from gair.world.sources import describe, locate_all

log = logging.getLogger("gair.world")

WORLD_FORMAT = "gair-world"
WORLD_FORMAT_VERSION = 1
DEFAULT_WORLD_DIR = Path("data/world")
BANDS = ["red", "green", "blue", "relief"]
POPULATION_SCALE = 32.0  # stored uint8 = round(intensity * 32)
POPULATION_RADIUS_KM = 50.0

DEFAULT_PARAMS: dict = {
    "split_seed": 0,
    "block_h3_res": 0,
    "val_fraction": 0.10,
    "test_fraction": 0.10,
    "split_slack": 1.3,
    "buffer_km": 340.0,
    "land_samples_h3_res": 2,
    "land_samples_min_per_cell": 6,
    "land_samples_seed": 1,
}

LAYER_FILES = {
    "rs": "rs.npy",
    "koppen": "koppen.npy",
    "landcover": "landcover.npy",
    "elevation": "elevation.npy",
    "population": "population.npy",
    "country": "country.npy",
    "land": "land.npy",
}

# Natural Earth low-res leaves ISO-A3 as "-99" for a few; use the usual codes.
ISO_FIXES = {
    "France": "FRA",
    "Norway": "NOR",
    "N. Cyprus": "CYP",
    "Somaliland": "SOM",
    "Kosovo": "XKX",
}


class _Steps:
    """Progress: one log line per layer with its time."""

    def __init__(self, total: int, progress: bool):
        self.total, self.done, self.progress = total, 0, progress
        self.t0 = self.t = time.perf_counter()

    def __call__(self, what: str) -> None:
        now = time.perf_counter()
        self.done += 1
        msg = f"[{self.done}/{self.total}] {what} ({now - self.t:.1f} s)"
        self.t = now
        if self.progress:
            log.info("world build %s", msg)
        else:
            log.debug("world build %s", msg)


# ---------------------------------------------------------------------------------------- layers


def _read_jpeg(path: Path, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(path) as im:
        im.draft("RGB", size)  # JPEG DCT scaling: decodes directly at 1/2, 1/4 ... size
        im = im.convert("RGB")
        if im.size != size:
            im = im.resize(size, Image.Resampling.BOX)
        return np.asarray(im)


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


def population_within(
    lat: np.ndarray, lon: np.ndarray, pop: np.ndarray, radius_km: float = POPULATION_RADIUS_KM
) -> np.ndarray:
    """People within `radius_km` of every grid-pixel centre: the cities' populations summed into
    grid pixels, then convolved with a geodesic disk. The disk's shape depends on latitude, so the
    grid is processed in bands of rows, each with its own kernel, as circular (longitude-wrapping)
    FFT convolutions along rows."""
    rows, cols = grid.nearest_index(lat, lon)
    counts = np.zeros((grid.HEIGHT, grid.WIDTH), np.float64)
    np.add.at(counts, (rows, cols), pop)
    r_px = int(np.ceil(radius_km / (grid.KM_PER_DEG * grid.DEG_PER_PX))) + 1
    fft_counts = np.fft.rfft(counts, axis=1)  # [H, W/2+1], each row's spectrum
    out = np.zeros_like(counts)
    band = 12
    dcol = np.arange(grid.WIDTH)
    dcol = np.where(dcol > grid.WIDTH // 2, dcol - grid.WIDTH, dcol)  # signed column offset
    lon_off = np.deg2rad(dcol * grid.DEG_PER_PX)
    for r0 in range(0, grid.HEIGHT, band):
        r1 = min(r0 + band, grid.HEIGHT)
        lat_c = np.deg2rad(grid.row_lat((r0 + r1 - 1) / 2.0))
        acc = np.zeros((r1 - r0, fft_counts.shape[1]), np.complex128)
        for dr in range(-r_px, r_px + 1):
            src = np.arange(r0, r1) + dr
            ok = (src >= 0) & (src < grid.HEIGHT)
            if not ok.any():
                continue
            lat_s = np.deg2rad(grid.row_lat((r0 + r1 - 1) / 2.0 + dr))
            # haversine distance from the band's centre row to (dr, dcol)
            a = (
                np.sin((lat_s - lat_c) / 2) ** 2
                + np.cos(lat_c) * np.cos(lat_s) * np.sin(lon_off / 2) ** 2
            )
            dist = 2 * grid.EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
            kernel = (dist <= radius_km).astype(np.float64)
            if not kernel.any():
                continue
            kf = np.fft.rfft(kernel)
            acc[ok] += fft_counts[src[ok]] * kf[None, :]
        out[r0:r1] = np.fft.irfft(acc, n=grid.WIDTH, axis=1)
    return np.clip(out, 0.0, None)


def build_population(paths: dict[str, Path]) -> tuple[np.ndarray, dict]:
    with open(paths["cities"], encoding="utf-8") as fh:
        cities = json.load(fh)
    lat = np.fromiter((c["latitude"] for c in cities.values()), np.float64, len(cities))
    lon = np.fromiter((c["longitude"] for c in cities.values()), np.float64, len(cities))
    pop = np.fromiter((c.get("population") or 0 for c in cities.values()), np.float64, len(cities))
    del cities
    people = population_within(lat, lon, pop)
    intensity = np.log10(1.0 + people)
    stored = np.clip(np.rint(intensity * POPULATION_SCALE), 0, 255).astype(np.uint8)
    return stored, {"cities": int(len(lat)), "people": float(pop.sum())}


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
    return country, table


# -------------------------------------------------------------------------------- street views


def build_streetviews(paths: dict[str, Path], land: np.ndarray, params: dict):
    """GeoCLIP's real photo locations on land, plus uniform random land samples in H3 cells where
    fewer than `land_samples_min_per_cell` photos fall (thin coverage)."""
    import h3
    import pandas as pd

    gc = pd.read_csv(paths["streetview_locations"])
    lat = gc["LAT"].to_numpy(np.float64)
    lon = gc["LON"].to_numpy(np.float64)
    ok = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90)
    ids = np.arange(len(gc))
    lat, lon, ids = lat[ok], ((lon[ok] + 180) % 360) - 180, ids[ok]
    r, c = grid.nearest_index(lat, lon)
    on_land = land[r, c]
    lat, lon, ids = lat[on_land], lon[on_land], ids[on_land]
    gc_df = pd.DataFrame(
        {
            "id": [f"gc{i:06d}" for i in ids],
            "lat": lat,
            "lon": lon,
            "source": "geoclip",
        }
    )
    res = params["land_samples_h3_res"]
    need = params["land_samples_min_per_cell"]
    have = pd.Series([h3.latlng_to_cell(a, b, res) for a, b in zip(lat, lon)]).value_counts()
    rng = np.random.default_rng(params["land_samples_seed"])
    n_cand = 400_000
    c_lat = np.rad2deg(np.arcsin(rng.uniform(-1.0, 1.0, n_cand)))  # uniform on the sphere
    c_lon = rng.uniform(-180.0, 180.0, n_cand)
    r, c = grid.nearest_index(c_lat, c_lon)
    keep = land[r, c]
    c_lat, c_lon = c_lat[keep], c_lon[keep]
    cells = pd.Series([h3.latlng_to_cell(a, b, res) for a, b in zip(c_lat, c_lon)])
    rank = cells.groupby(cells).cumcount().to_numpy()
    deficit = (need - cells.map(have).fillna(0).to_numpy()).clip(0)
    take = rank < deficit
    ls_df = pd.DataFrame(
        {
            "id": [f"ls{i:06d}" for i in range(int(take.sum()))],
            "lat": c_lat[take],
            "lon": c_lon[take],
            "source": "land_sample",
        }
    )
    return pd.concat([gc_df, ls_df], ignore_index=True)


# ------------------------------------------------------------------------------------- the build


def _save_npy(out: Path, name: str, arr: np.ndarray, extra: dict | None = None) -> dict:
    path = out / LAYER_FILES[name]
    arr = np.ascontiguousarray(arr)
    np.save(path, arr, allow_pickle=False)
    entry = {
        "file": path.name,
        "dtype": str(arr.dtype),
        "shape": list(arr.shape),
        "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(memoryview(arr).cast("B")).hexdigest(),
    }
    entry.update(extra or {})
    return entry


def _fingerprint(manifest: dict) -> str:
    h = hashlib.sha256()
    h.update(f"{WORLD_FORMAT}:{WORLD_FORMAT_VERSION}".encode())
    h.update(json.dumps(manifest["build_params"], sort_keys=True).encode())
    for name in sorted(manifest["layers"]):
        h.update(manifest["layers"][name]["sha256"].encode())
    h.update(manifest["streetviews"]["sha256"].encode())
    return h.hexdigest()[:16]


def read_manifest(path: Path) -> dict | None:
    try:
        with open(Path(path) / "manifest.json", encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def check_complete(path: str | Path) -> tuple[dict | None, str]:
    """(manifest, "") when `path` holds a complete world of this format, else (None, why)."""
    path = Path(path)
    if not path.is_dir():
        return None, f"{path} does not exist"
    manifest = read_manifest(path)
    if manifest is None:
        return None, f"{path} has no readable manifest.json"
    if manifest.get("format") != WORLD_FORMAT:
        return None, f"{path}/manifest.json is not a demo-world manifest"
    if manifest.get("format_version") != WORLD_FORMAT_VERSION:
        return None, (
            f"{path} holds world format version {manifest.get('format_version')}, this code "
            f"reads version {WORLD_FORMAT_VERSION}"
        )
    entries = list(manifest.get("layers", {}).values()) + [manifest.get("streetviews", {})]
    for name in LAYER_FILES:
        if name not in manifest.get("layers", {}):
            return None, f"{path}/manifest.json lacks layer {name!r}"
    for entry in entries:
        f = path / str(entry.get("file", ""))
        if not f.is_file():
            return None, f"{f} is missing"
        if f.stat().st_size != entry.get("bytes"):
            return None, f"{f} has {f.stat().st_size} bytes, the manifest says {entry.get('bytes')}"
    return manifest, ""


def build_world(
    out: str | Path = DEFAULT_WORLD_DIR,
    force: bool = False,
    params: dict | None = None,
    progress: bool = True,
) -> dict:
    """Build the demo world into `out` (atomically). Returns the manifest.

    A complete world with the same build parameters already at `out` is kept as is (a no-op that
    logs so) unless `force`. A directory that is not a demo world is never replaced.
    """
    from gair import __version__
    from gair.world.splits import assign_splits

    out = Path(out)
    params = {**DEFAULT_PARAMS, **(params or {})}
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise ValueError(f"unknown world build parameter(s) {sorted(unknown)}")
    existing, why = check_complete(out)
    if existing is not None and not force:
        if existing.get("build_params") == params:
            log.info(
                "world already built at %s (fingerprint %s); nothing to do (use --force to rebuild)",
                out,
                existing.get("fingerprint"),
            )
            return existing
        log.info("world at %s was built with other parameters: rebuilding", out)
    if out.exists() and existing is None:
        manifest = read_manifest(out) if out.is_dir() else None
        is_world = manifest is not None and manifest.get("format") == WORLD_FORMAT
        if out.is_file() or (any(out.iterdir()) and not is_world):
            raise ValueError(
                f"{out} exists and is not a demo world ({why}); choose another --out or remove it"
            )
        log.info("replacing incomplete world at %s (%s)", out, why)

    t0 = time.perf_counter()
    step = _Steps(9, progress)
    paths = locate_all()
    sources = describe(paths)
    step("located and hashed the source files")

    with atomic_dir(out) as tmp:
        tmp.chmod(0o755)  # mkdtemp makes it private; a world is readable data
        layers = {}
        land = build_land(paths)
        layers["land"] = _save_npy(
            tmp, "land", np.packbits(land, axis=1), {"packed": "np.packbits(axis=1)"}
        )
        step(f"land mask (GLOBE): {land.mean():.1%} of pixels are land")

        rs = build_rs(paths)
        layers["rs"] = _save_npy(tmp, "rs", rs, {"bands": BANDS, "layout": "CHW", "scale": 255})
        del rs
        step("RS imagery: Blue Marble RGB + shaded relief")

        koppen = _read_decimated(paths["koppen"])
        layers["koppen"] = _save_npy(
            tmp,
            "koppen",
            koppen,
            {"classes": {"0": "none", "1": "A", "2": "B", "3": "C", "4": "D", "5": "E"}},
        )
        step("Koppen-Geiger climate (decimated read)")

        landcover = _read_decimated(paths["landcover"], nodata_to=0)
        # MODIS has no land cover on the ice caps poleward of its coverage (class 0 there):
        # land cells poleward of 60 degrees reading "water" are snow and ice
        polar = np.abs(grid.row_lat(np.arange(grid.HEIGHT)))[:, None] > 60.0
        landcover[(landcover == 0) & land & polar] = 15
        layers["landcover"] = _save_npy(
            tmp,
            "landcover",
            landcover,
            {"classes": "IGBP 0..16", "note": "polar land cells without MODIS data set to 15"},
        )
        step("MODIS IGBP land cover")

        elevation = build_elevation(paths, land, landcover)
        layers["elevation"] = _save_npy(
            tmp,
            "elevation",
            elevation,
            {"units": "m", "note": "sea = 0; Greenland ice-sheet surface modelled (DATA.md)"},
        )
        step("elevation")

        population, pop_info = build_population(paths)
        layers["population"] = _save_npy(
            tmp,
            "population",
            population,
            {
                "scale": POPULATION_SCALE,
                "units": f"log10(1 + people within {POPULATION_RADIUS_KM:g} km)",
                **pop_info,
            },
        )
        step(f"population intensity from {pop_info['cities']} GeoNames places")

        country, countries = build_countries(paths, land)
        layers["country"] = _save_npy(tmp, "country", country, {"index": "1-based, 0 = none"})
        step(f"countries and continents ({len(countries)} Natural Earth polygons)")

        sv = build_streetviews(paths, land, params)
        splits_info, sv["split"], sv["block"] = assign_splits(sv, params)
        sv = sv[["id", "lat", "lon", "split", "source", "block"]]
        sv_path = tmp / "streetviews.parquet"
        sv.to_parquet(sv_path, index=False)
        counts = sv.groupby("split").size().to_dict()
        step(
            f"{len(sv)} street-view locations ({(sv.source == 'geoclip').sum()} GeoCLIP, "
            f"{(sv.source == 'land_sample').sum()} land samples); splits {counts}"
        )

        manifest = {
            "format": WORLD_FORMAT,
            "format_version": WORLD_FORMAT_VERSION,
            "gair_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "grid": {
                "width": grid.WIDTH,
                "height": grid.HEIGHT,
                "deg_per_px": grid.DEG_PER_PX,
                "west": -180.0,
                "north": 90.0,
                "row0": "north",
                "crs": "EPSG:4326",
            },
            "bands": BANDS,
            "layers": layers,
            "countries": countries,
            "streetviews": {
                "file": sv_path.name,
                "bytes": sv_path.stat().st_size,
                "sha256": hashlib.sha256(sv_path.read_bytes()).hexdigest(),
                "count": int(len(sv)),
                "by_source": {k: int(v) for k, v in sv.groupby("source").size().items()},
                "by_split": {k: int(v) for k, v in counts.items()},
            },
            "splits": splits_info,
            "build_params": params,
            "sources": sources,
        }
        manifest["fingerprint"] = _fingerprint(manifest)
        manifest["build_seconds"] = round(time.perf_counter() - t0, 2)
        manifest["size_bytes"] = int(
            sum(e["bytes"] for e in layers.values()) + manifest["streetviews"]["bytes"]
        )
        write_json(tmp / "manifest.json", manifest)
        (tmp / "manifest.json").chmod(0o644)
    log.info(
        "world built at %s in %.1f s (%.0f MB, fingerprint %s)",
        out,
        time.perf_counter() - t0,
        manifest["size_bytes"] / 1e6,
        manifest["fingerprint"],
    )
    return manifest
