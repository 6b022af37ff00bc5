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

Modules: `gair.data.rows` (the CSV, images, skip reasons), `gair.data.rasters` (raster scan,
chip layout and reads), `gair.data.shards` (output format and shard writer); this module runs
the rows through them.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from pathlib import Path

import numpy as np

from gair.atomic import atomic_dir, write_json
from gair.config import S2_GAIR_BANDS
from gair.data.rasters import (
    KM_PER_DEG,
    L2A_12_BANDS,
    RASTER_SUFFIXES,
    RasterInfo,
    _depth,
    band_indexes,
    chip_bbox,
    normalise_band,
    read_chip,
    scan_rasters,
)
from gair.data.rows import (
    BAD_COORDS,
    BAND_COUNT,
    CORRUPT_IMAGE,
    DUPLICATE_ID,
    IMAGE_COLUMNS,
    LOW_COVERAGE,
    MISSING_IMAGE,
    N_EXAMPLES,
    OUTSIDE,
    RASTER_ERROR,
    _Report,
    read_image,
    read_table,
)
from gair.data.shards import (
    PREPARED_FORMAT,
    PREPARED_FORMAT_VERSION,
    _looks_prepared,
    _ShardWriter,
)

__all__ = [  # this module's names, including those now defined in the modules above
    "BAD_COORDS",
    "BAND_COUNT",
    "CORRUPT_IMAGE",
    "DUPLICATE_ID",
    "IMAGE_COLUMNS",
    "KM_PER_DEG",
    "L2A_12_BANDS",
    "LOW_COVERAGE",
    "MISSING_IMAGE",
    "N_EXAMPLES",
    "NothingUsableError",
    "OUTSIDE",
    "PREPARED_FORMAT",
    "PREPARED_FORMAT_VERSION",
    "RASTER_ERROR",
    "RASTER_SUFFIXES",
    "RasterInfo",
    "band_indexes",
    "chip_bbox",
    "normalise_band",
    "prepare",
    "read_chip",
    "read_image",
    "scan_rasters",
]

log = logging.getLogger("gair.data")


class NothingUsableError(ValueError):
    """No row of the CSV gave a usable triple (exit code 2); `.report` says why."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


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
    table, image_col = read_table(csv)
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
