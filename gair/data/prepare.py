"""`gair data prepare`: real (RS chip, street view, location) triples from a Global
Streetscapes-style CSV, its images and Sentinel-2 GeoTIFFs in any CRS.

For each CSV row (id, lat, lon, image path relative to --images):
- the street-view image is decoded, centre-cropped to a square and resized to sv_px (uint8 RGB);
- the raster that holds the point deepest inside it is chosen among --rasters; a chip of
  chip_km x chip_km on the ground is laid out on a lat/lon (EPSG:4326) grid of chip_px x chip_px
  pixels, centred on the point, or shifted (the point still inside) so that it lies within the
  raster where the raster allows; the window around it is read with rasterio (windowed read) and
  reprojected with `rasterio.warp.reproject` (bilinear) onto that grid. The chip's bbox
  (west, south, east, north) is exactly the area its pixels cover.
- bands are selected by name from the band descriptions when present; otherwise a 12-band raster
  is taken as Sentinel-2 L2A B1..B12 without B10 and a 10-band raster as GAIR's order
  (B2 B3 B4 B5 B6 B7 B8 B8A B11 B12); any other band count makes the row a bad row.

Bad rows are skipped, counted and exemplified in report.json, never fatal: bad coordinates,
missing or corrupt image, point outside every raster, wrong band count, unreadable raster data,
too little raster coverage. Output (written into a temp dir beside --out and renamed at the end;
each shard is written to a temp name and renamed):
- shard-00000.safetensors ...: rs float32 [N, C, H, W] raw raster values, rs_bbox float64 [N, 4],
  latlon float64 [N, 2] (lat, lon), sv uint8 [N, H, W, 3], coverage float32 [N]; ids in the
  metadata (JSON list);
- manifest.json (format, parameters, bands, inputs, shards, counts) and report.json.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gair.atomic import atomic_dir, atomic_path, write_json
from gair.config import S2_GAIR_BANDS

log = logging.getLogger("gair.data")

PREPARED_FORMAT = "gair-prepared-triples"
PREPARED_FORMAT_VERSION = 1
L2A_12_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]
IMAGE_COLUMNS = ("image", "image_path", "path", "file", "filename", "sv_image", "img")
KM_PER_DEG = 111.19492664455873
RASTER_SUFFIXES = (".tif", ".tiff")
N_EXAMPLES = 5

# skip reasons (report keys)
BAD_COORDS = "bad_coordinates"
MISSING_IMAGE = "missing_image"
CORRUPT_IMAGE = "corrupt_image"
OUTSIDE = "outside_rasters"
BAND_COUNT = "wrong_band_count"
RASTER_ERROR = "raster_read_error"
LOW_COVERAGE = "insufficient_raster_coverage"
DUPLICATE_ID = "duplicate_id"


class NothingUsableError(ValueError):
    """No row of the CSV gave a usable triple (exit code 2); `.report` says why."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


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


def read_image(path: Path, size: int) -> np.ndarray:
    """Decode, centre-crop to a square, resize to size x size: uint8 [size, size, 3]."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        if s < 2:
            raise ValueError(f"image of {w}x{h} px")
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s)).resize(
            (size, size), Image.Resampling.BICUBIC, reducing_gap=3.0
        )
        return np.asarray(im, dtype=np.uint8)


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


@dataclass
class _Report:
    rows: int = 0
    kept: int = 0
    skipped: dict = field(default_factory=dict)
    examples: dict = field(default_factory=dict)

    def skip(self, reason: str, row: int, ident, detail: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < N_EXAMPLES:
            ex.append({"row": row, "id": None if ident is None else str(ident), "detail": detail})


class _ShardWriter:
    def __init__(self, out: Path, shard_size: int):
        self.out, self.size = out, shard_size
        self.buf: dict[str, list] = {
            k: [] for k in ("rs", "rs_bbox", "latlon", "sv", "coverage", "id")
        }
        self.shards: list[dict] = []

    def add(self, **sample) -> None:
        for k, v in sample.items():
            self.buf[k].append(v)
        if len(self.buf["id"]) >= self.size:
            self.flush()

    def flush(self) -> None:
        from safetensors.numpy import save_file

        n = len(self.buf["id"])
        if n == 0:
            return
        name = f"shard-{len(self.shards):05d}.safetensors"
        tensors = {
            "rs": np.stack(self.buf["rs"]).astype(np.float32),
            "rs_bbox": np.asarray(self.buf["rs_bbox"], np.float64),
            "latlon": np.asarray(self.buf["latlon"], np.float64),
            "sv": np.stack(self.buf["sv"]).astype(np.uint8),
            "coverage": np.asarray(self.buf["coverage"], np.float32),
        }
        meta = {"format": PREPARED_FORMAT, "ids": json.dumps(self.buf["id"])}
        with atomic_path(self.out / name) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        digest = hashlib.sha256((self.out / name).read_bytes()).hexdigest()
        self.shards.append({"file": name, "count": n, "sha256": digest})
        self.buf = {k: [] for k in self.buf}


def _looks_prepared(path: Path) -> bool:
    try:
        return json.loads((path / "manifest.json").read_text())["format"] == PREPARED_FORMAT
    except (OSError, ValueError, KeyError, TypeError):
        return False


def prepare(
    csv: str | Path,
    images: str | Path,
    rasters: str | Path,
    out: str | Path,
    bands: list[str] | None = None,
    chip_km: float = 2.0,
    chip_px: int = 96,
    sv_px: int = 224,
    shard_size: int = 256,
    min_coverage: float = 0.75,
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Build prepared triples into `out` (atomically). Returns the report dict.

    Raises ValueError/FileNotFoundError for bad arguments and `NothingUsableError` (a ValueError,
    with `.report`) when no row is usable; nothing is written then.
    """
    import pandas as pd

    t0 = time.perf_counter()
    csv, images, rasters, out = Path(csv), Path(images), Path(rasters), Path(out)
    bands = [normalise_band(b) for b in (bands or S2_GAIR_BANDS)]
    if not bands or len(set(bands)) != len(bands):
        raise ValueError(f"--bands must be distinct band names, got {bands}")
    if not chip_km > 0 or not math.isfinite(chip_km):
        raise ValueError(f"--chip-km must be a positive number, got {chip_km!r}")
    for name, value in (("--chip-px", chip_px), ("--sv-px", sv_px), ("--shard-size", shard_size)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0.0 <= min_coverage <= 1.0:
        raise ValueError(f"--min-coverage must be in [0, 1], got {min_coverage!r}")
    if not csv.is_file():
        raise FileNotFoundError(f"CSV not found: {csv}")
    if not images.is_dir():
        raise FileNotFoundError(f"images folder not found: {images}")
    if not rasters.is_dir():
        raise FileNotFoundError(f"rasters folder not found: {rasters}")
    if out.exists() and (out.is_file() or any(out.iterdir())):
        if not force:
            raise ValueError(f"{out} exists and is not empty; use --force to replace it")
        if not _looks_prepared(out):
            raise ValueError(f"{out} exists and is not a prepared-triples folder; not replacing it")
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"cannot read CSV {csv}: {err}") from err
    cols = {c.strip().lower(): c for c in table.columns}
    image_col = next((cols[c] for c in IMAGE_COLUMNS if c in cols), None)
    missing = [c for c in ("id", "lat", "lon") if c not in cols]
    if missing or image_col is None:
        raise ValueError(
            f"CSV {csv} needs columns id, lat, lon and an image path column (one of "
            f"{', '.join(IMAGE_COLUMNS)}); it has {list(table.columns)}"
        )
    infos, raster_skips = scan_rasters(rasters, bands)
    if not infos:
        raise ValueError(
            f"no readable GeoTIFF (*.tif, *.tiff) under {rasters}"
            + (f"; skipped: {raster_skips}" if raster_skips else "")
        )
    good = [i for i in infos if i.band_index is not None]
    outer = np.array([i.bounds4326 for i in infos]) if infos else np.zeros((0, 4))

    report = _Report(rows=len(table))
    seen: set[str] = set()
    with atomic_dir(out) as tmp:
        tmp.chmod(0o755)  # mkdtemp makes it private
        writer = _ShardWriter(tmp, shard_size)
        for row_no, raw in enumerate(table.to_dict("records")):
            rec = {str(k).strip().lower(): v for k, v in raw.items()}
            ident = str(rec["id"]).strip()
            try:
                lat, lon = float(rec["lat"]), float(rec["lon"])
                ok = (
                    math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180
                )
            except (TypeError, ValueError):
                ok = False
            if not ok or not ident:
                why = "empty id" if ok else f"lat={rec['lat']!r}, lon={rec['lon']!r}"
                report.skip(BAD_COORDS, row_no, ident, why)
                continue
            if ident in seen:
                report.skip(DUPLICATE_ID, row_no, ident, "id seen in an earlier row")
                continue
            rel = str(rec[image_col.strip().lower()]).strip()
            img_path = images / rel
            if not rel or not img_path.is_file():
                report.skip(MISSING_IMAGE, row_no, ident, f"{img_path} not found")
                continue
            try:
                sv = read_image(img_path, sv_px)
            except Exception as err:  # noqa: BLE001 - any undecodable image is a bad row
                report.skip(CORRUPT_IMAGE, row_no, ident, f"{img_path}: {err}")
                continue
            inside = (
                (outer[:, 0] <= lon)
                & (lon <= outer[:, 2])
                & (outer[:, 1] <= lat)
                & (lat <= outer[:, 3])
            )
            cands = [infos[i] for i in np.flatnonzero(inside)]
            usable = [c for c in cands if c.band_index is not None]
            if not usable:
                if cands:
                    report.skip(
                        BAND_COUNT, row_no, ident, f"{cands[0].path.name}: {cands[0].band_problem}"
                    )
                else:
                    report.skip(
                        OUTSIDE, row_no, ident, f"({lat}, {lon}) is in none of {len(infos)} rasters"
                    )
                continue

            info = max(usable, key=lambda c, lat=lat, lon=lon: _depth(c, lat, lon))
            bbox = chip_bbox(lat, lon, chip_km, info.inner4326)
            try:
                rs, coverage = read_chip(info, bbox, chip_px)
            except Exception as err:  # noqa: BLE001 - corrupt raster data is a bad row
                report.skip(RASTER_ERROR, row_no, ident, f"{info.path.name}: {err}")
                continue
            if coverage < min_coverage:
                report.skip(
                    LOW_COVERAGE,
                    row_no,
                    ident,
                    f"{info.path.name} covers {coverage:.0%} of the chip (< {min_coverage:.0%})",
                )
                continue
            seen.add(ident)
            info.used += 1
            writer.add(rs=rs, rs_bbox=bbox, latlon=(lat, lon), sv=sv, coverage=coverage, id=ident)
            report.kept += 1
            if progress and report.kept % 500 == 0:
                log.info("data prepare: %d triples kept of %d rows", report.kept, row_no + 1)
        writer.flush()
        report_dict = {
            "rows": report.rows,
            "kept": report.kept,
            "skipped": dict(sorted(report.skipped.items())),
            "skipped_total": int(sum(report.skipped.values())),
            "examples": report.examples,
            "rasters": {
                "found": len(infos) + len(raster_skips),
                "usable": len(good),
                "used": {str(i.path.relative_to(rasters)): i.used for i in infos if i.used},
                "wrong_bands": {
                    str(i.path.relative_to(rasters)): i.band_problem
                    for i in infos
                    if i.band_index is None
                },
                "unreadable": raster_skips,
            },
            "seconds": round(time.perf_counter() - t0, 2),
        }
        if report.kept == 0:
            raise NothingUsableError(
                f"no usable triple in {csv} ({report.rows} rows; skipped: "
                f"{report_dict['skipped'] or 'none'})",
                report_dict,
            )
        manifest = {
            "format": PREPARED_FORMAT,
            "format_version": PREPARED_FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "count": report.kept,
            "bands": bands,
            "rs": {
                "dtype": "float32",
                "units": "raw values of the source rasters (e.g. Sentinel-2 L2A digital numbers)",
                "crs": "EPSG:4326",
                "bbox": "(west, south, east, north) degrees, exactly the area the pixels cover",
                "resampling": "bilinear",
                "nodata_fill": 0.0,
            },
            "params": {
                "chip_km": chip_km,
                "chip_px": chip_px,
                "sv_px": sv_px,
                "shard_size": shard_size,
                "min_coverage": min_coverage,
                "sv_crop": "centre square, bicubic resize",
            },
            "inputs": {
                "csv": str(csv),
                "csv_sha256": hashlib.sha256(csv.read_bytes()).hexdigest(),
                "images": str(images),
                "rasters": str(rasters),
            },
            "shards": writer.shards,
        }
        write_json(tmp / "manifest.json", manifest)
        write_json(tmp / "report.json", report_dict)
        for f in tmp.iterdir():
            f.chmod(0o644)
    if report.skipped:
        log.warning(
            "data prepare: kept %d of %d rows; skipped %s (see %s)",
            report.kept,
            report.rows,
            report_dict["skipped"],
            out / "report.json",
        )
    else:
        log.info("data prepare: kept all %d rows", report.kept)
    return report_dict
