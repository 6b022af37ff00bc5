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

The layers are made in `gair.world.layers` (RS, land, climate, land cover, elevation,
countries), `gair.world.population` and `gair.world.streetviews`; the directory format
(layer files, manifest checks, fingerprint) is `gair.world.manifest`. This module runs the steps
in order and writes the manifest.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np

from gair.atomic import atomic_dir, write_json
from gair.world import grid
from gair.world.layers import (
    _read_decimated,
    build_countries,
    build_elevation,
    build_land,
    build_rs,
)
from gair.world.manifest import (
    DEFAULT_WORLD_DIR,
    LAYER_FILES,
    WORLD_FORMAT,
    WORLD_FORMAT_VERSION,
    _fingerprint,
    _save_npy,
    check_complete,
    read_manifest,
)
from gair.world.population import (
    POPULATION_RADIUS_KM,
    POPULATION_SCALE,
    build_population,
    population_within,
)
from gair.world.sources import describe, locate_all
from gair.world.streetviews import build_streetviews

__all__ = [  # this module's names, including those now defined in the modules above
    "BANDS",
    "DEFAULT_PARAMS",
    "DEFAULT_WORLD_DIR",
    "LAYER_FILES",
    "POPULATION_RADIUS_KM",
    "POPULATION_SCALE",
    "WORLD_FORMAT",
    "WORLD_FORMAT_VERSION",
    "build_countries",
    "build_elevation",
    "build_land",
    "build_population",
    "build_rs",
    "build_streetviews",
    "build_world",
    "check_complete",
    "population_within",
    "read_manifest",
]

log = logging.getLogger("gair.world")

BANDS = ["red", "green", "blue", "relief"]

DEFAULT_PARAMS: dict = {
    "split_seed": 0,
    "block_h3_res": 2,  # res 1 (~780 km) gives < 100 test blocks under the caps (docs/WORLD.md)
    "val_fraction": 0.10,
    "test_fraction": 0.10,
    "max_block_share": 0.03,
    "max_parent_share": 0.10,
    "max_country_share": 0.12,
    "max_country_heldout": 0.5,
    "unseen_block": "8019fffffffffff",  # H3 res 0: Great Britain, Ireland, northern France
    "train_chip_px": 32,
    "land_samples_h3_res": 2,
    "land_samples_min_per_cell": 6,
    "land_samples_seed": 1,
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
        iso = np.array([""] + [c["iso_a3"] for c in countries], dtype=object)

        def country_of(lat, lon):
            r, c = grid.nearest_index(lat, lon)
            return iso[country[r, c].astype(np.int64)].astype(str)

        splits_info, sv["split"], sv["block"] = assign_splits(sv, params, land, country_of)
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
    log.info(
        "world built at %s in %.1f s (%.0f MB, fingerprint %s)",
        out,
        time.perf_counter() - t0,
        manifest["size_bytes"] / 1e6,
        manifest["fingerprint"],
    )
    return manifest
