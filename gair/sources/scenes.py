"""Finding the imagery of a raster source: which file holds which band of which acquisition.

A *scene* is one acquisition that holds every band the model reads, from one multi-band file
(a GeoTIFF/COG/VRT) or from one file per band (as Sentinel-2 products and STAC items ship them).
Inputs are files, folders (searched recursively) or STAC JSON (an Item or an ItemCollection,
read with pystac, asset hrefs relative to the JSON file).

Bands are found by name: a multi-band file by its band descriptions (or, without them, by
count: 12 bands = Sentinel-2 L2A B1..B12 without B10, 10 bands = GAIR's order); a single-band
file by the band token in its name (`..._B04_10m.tif`, `B8A.tif`) or its description; a STAC
asset by its key, `eo:bands` name or common name (red, nir08, ...).

Digital numbers are harmonised to the pre-2022 L2A scale the official normalisation was computed
on: processing baseline 04.00 adds `BOA_ADD_OFFSET` (-1000) to every L2A band, so the offset is
added back when a file (GDAL band offset/scale, or a `BOA_ADD_OFFSET[_Bn]` tag) or a STAC asset
(`raster:bands` offset/scale) records it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from gair.data.rasters import band_indexes, normalise_band

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2")
# STAC common names (eo extension) -> Sentinel-2 band
COMMON_NAMES = {
    "coastal": "B1", "blue": "B2", "green": "B3", "red": "B4", "rededge1": "B5",
    "rededge2": "B6", "rededge3": "B7", "nir": "B8", "nir08": "B8A", "nir09": "B9",
    "cirrus": "B10", "swir16": "B11", "swir22": "B12",
}  # fmt: skip
_BAND_TOKEN = re.compile(r"(?i)(?<![a-z0-9])b(\d{1,2}a?)(?![a-z0-9])")
_RES_TOKEN = re.compile(r"(?i)(?<![a-z0-9])\d{1,3}m(?![a-z0-9])")


@dataclass(frozen=True)
class BandRef:
    """Where one band of a scene lives: a file and its 1-based band index, with the additive
    offset (digital numbers) that harmonises it."""

    path: str
    index: int
    dn_offset: float = 0.0


@dataclass
class Scene:
    name: str
    bands: dict[str, BandRef] = field(default_factory=dict)  # band name -> where it is

    def files(self) -> list[str]:
        return sorted({ref.path for ref in self.bands.values()})


def band_of_name(name: str) -> str | None:
    """The Sentinel-2 band a file or asset name denotes ('T31_B04_10m' -> 'B4'), or None."""
    key = str(name).strip().lower()
    if key in COMMON_NAMES:
        return COMMON_NAMES[key]
    found = {normalise_band("B" + m) for m in _BAND_TOKEN.findall(Path(key).stem)}
    return found.pop() if len(found) == 1 else None


def _dn_offset(ds, index: int) -> float:
    """The additive offset in digital numbers that undoes BOA_ADD_OFFSET for one band (-1000
    for processing baseline 04.00+: reflectance x 10000 = DN + BOA_ADD_OFFSET)."""
    offset = float((ds.offsets or [0.0] * ds.count)[index - 1] or 0.0)
    scale = float((ds.scales or [1.0] * ds.count)[index - 1] or 1.0)
    if offset:  # physical = DN * scale + offset -> harmonised DN = DN + offset / scale
        return offset / scale if scale not in (0.0, 1.0) else offset
    tags = {k.upper(): v for k, v in {**ds.tags(), **ds.tags(index)}.items()}
    name = normalise_band(ds.descriptions[index - 1] or "") if ds.descriptions else ""
    for key in (f"BOA_ADD_OFFSET_{name}", "BOA_ADD_OFFSET"):
        if key in tags:
            try:
                return float(tags[key])  # reflectance * 10000 = DN + BOA_ADD_OFFSET
            except ValueError:
                break
    return 0.0


def _raster_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES)
        else:
            files.append(path)
    return files


def scan_files(paths: list[Path], bands: list[str]) -> tuple[list[Scene], dict[str, str]]:
    """Scenes holding every band in `bands` among raster files/folders; (scenes, skipped files
    -> why). Multi-band files are scenes of their own; single-band files are grouped into a
    scene by their folder and their name without its band and resolution tokens."""
    import rasterio

    scenes, skipped, groups = [], {}, {}
    for path in _raster_files(paths):
        try:
            with rasterio.open(path) as ds:
                if ds.crs is None:
                    skipped[str(path)] = "no CRS (georeferencing) in the file"
                    continue
                if ds.count == 1:
                    band = band_of_name(ds.descriptions[0] or "") or band_of_name(path.name)
                    if band is None:
                        skipped[str(path)] = "a single-band file whose name names no band (B04)"
                        continue
                    stem = _RES_TOKEN.sub("", _BAND_TOKEN.sub("", path.stem))
                    group = groups.setdefault((str(path.parent), stem), Scene(str(path)))
                    group.bands[band] = BandRef(str(path), 1, _dn_offset(ds, 1))
                    continue
                idx, why = band_indexes(ds.descriptions, ds.count, bands)
                if idx is None:
                    skipped[str(path)] = why
                    continue
                refs = {b: BandRef(str(path), i, _dn_offset(ds, i)) for b, i in zip(bands, idx)}
                scenes.append(Scene(str(path), refs))
        except rasterio.errors.RasterioIOError as err:
            skipped[str(path)] = f"unreadable: {err}"
    for (_, stem), scene in groups.items():
        missing = [b for b in bands if b not in scene.bands]
        if missing:
            for ref in {r.path for r in scene.bands.values()}:
                skipped[ref] = f"its scene {stem!r} lacks bands {missing}"
            continue
        scene.name = f"{Path(next(iter(scene.bands.values())).path).parent}/{stem}"
        scenes.append(scene)
    return scenes, skipped


def is_stac(path: Path) -> bool:
    if path.suffix.lower() not in (".json", ".geojson") or not path.is_file():
        return False
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(obj, dict) and (
        "stac_version" in obj or obj.get("type") == "FeatureCollection" and "features" in obj
    )


def _asset_band(key: str, asset) -> str | None:
    for entry in asset.extra_fields.get("eo:bands") or []:
        for name in (entry.get("name"), entry.get("common_name")):
            band = band_of_name(name) if name else None
            if band:
                return band
    return band_of_name(key)


def _asset_offset(asset) -> float:
    bands = asset.extra_fields.get("raster:bands") or []
    if len(bands) == 1:
        offset, scale = float(bands[0].get("offset", 0.0)), float(bands[0].get("scale", 1.0))
        if offset:
            return offset / scale if scale not in (0.0, 1.0) else offset
    return 0.0


def scan_stac(path: Path, bands: list[str]) -> tuple[list[Scene], dict[str, str]]:
    """Scenes of a local STAC Item or ItemCollection JSON (one scene per item)."""
    import pystac

    obj = json.loads(path.read_text())
    if obj.get("type") == "FeatureCollection":
        items = list(pystac.ItemCollection.from_dict(obj))
    else:
        items = [pystac.Item.from_dict(obj)]
    scenes, skipped = [], {}
    for item in items:
        scene = Scene(f"{path.name}#{item.id}")
        for key, asset in item.assets.items():
            band = _asset_band(key, asset)
            if band in bands and band not in scene.bands:
                href = asset.href
                if "://" not in href and not Path(href).is_absolute():
                    href = str((path.parent / href).resolve())
                scene.bands[band] = BandRef(href, 1, _asset_offset(asset))
        missing = [b for b in bands if b not in scene.bands]
        if missing:
            skipped[scene.name] = f"STAC item lacks assets for bands {missing}"
            continue
        scenes.append(scene)
    return scenes, skipped
