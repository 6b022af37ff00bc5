"""Areas of interest: a GeoJSON polygon (file or object) read, validated and normalised for
filling with H3 cells (`index.grid`).

Accepted: a Polygon or MultiPolygon geometry, Feature, FeatureCollection or GeometryCollection
in WGS 84 longitude/latitude. Holes are kept. The antimeridian follows RFC 7946 (an AOI that
crosses it is cut into a MultiPolygon at +-180), and longitudes that run on past +-180 are
accepted too and cut here. Every validation error is a ValueError naming the file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gair import geo

MAX_AOI_BYTES = 32 * 1024 * 1024  # a GeoJSON AOI file
MAX_AOI_VERTICES = 1_000_000
AOI_GEOJSON_IN_MANIFEST = 2_000  # an AOI with at most this many vertices is copied into it


@dataclass(frozen=True, eq=False)
class Aoi:
    """A polygonal area of interest in longitude/latitude, cut at the antimeridian.

    geometry: a shapely (Multi)Polygon with longitudes in [-180, 180]; source: where it came
    from (the file); sha256: digest of the normalised geometry (its identity); bbox: (west,
    south, east, north), west > east when it crosses the antimeridian; area_km2 on the sphere.
    """

    geometry: object
    source: str
    sha256: str
    bbox: tuple[float, float, float, float]
    area_km2: float
    vertices: int

    def as_dict(self) -> dict:
        """The manifest's record: source, digest, bbox, area, and the GeoJSON when small."""
        import shapely.geometry

        out = {
            "source": self.source,
            "sha256": self.sha256,
            "bbox": [round(v, 9) for v in self.bbox],
            "area_km2": round(self.area_km2, 6),
            "vertices": self.vertices,
        }
        if self.vertices <= AOI_GEOJSON_IN_MANIFEST:
            out["geojson"] = json.loads(json.dumps(shapely.geometry.mapping(self.geometry)))
        return out

    def contains(self, latlon: np.ndarray) -> np.ndarray:
        """Boolean mask of points [N, 2] (lat, lon) inside the AOI (edges included)."""
        import shapely

        ll = np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
        return shapely.intersects_xy(self.geometry, ll[:, 1], ll[:, 0])


def _bad(where: str, what: str) -> ValueError:
    return ValueError(f"AOI {where}: {what}")


def _check_positions(coords, where: str, depth: int, path: str, counter: list[int]) -> None:
    """Nested GeoJSON coordinate arrays of `depth` levels above the positions: every position
    two finite numbers, latitude within [-90, 90], longitude within [-360, 360]; rings of at
    least 4 positions."""
    if not isinstance(coords, list | tuple):
        raise _bad(where, f"coordinates{path} must be an array, got {coords!r:.80}")
    if depth == 0:  # a position
        if len(coords) < 2 or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in coords
        ):
            raise _bad(where, f"position{path} must be [lon, lat] numbers, got {coords!r:.80}")
        lon, lat = float(coords[0]), float(coords[1])
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise _bad(where, f"position{path} is not finite: {coords!r:.80}")
        if not -90.0 <= lat <= 90.0:
            raise _bad(
                where,
                f"position{path} has latitude {lat:g} outside [-90, 90] (GeoJSON positions are "
                "[longitude, latitude])",
            )
        if not -360.0 <= lon <= 360.0:
            raise _bad(where, f"position{path} has longitude {lon:g} outside [-360, 360]")
        counter[0] += 1
        if counter[0] > MAX_AOI_VERTICES:
            raise _bad(where, f"too large: more than {MAX_AOI_VERTICES:,} vertices")
        return
    if depth == 1 and len(coords) < 4:
        raise _bad(
            where, f"ring{path} has {len(coords)} positions; a polygon ring needs at least 4"
        )
    if depth > 1 and not coords:
        raise _bad(where, f"coordinates{path} are empty")
    for i, item in enumerate(coords):
        _check_positions(item, where, depth - 1, f"{path}[{i}]", counter)


def _polygonal_geometries(obj, where: str) -> list[dict]:
    """The Polygon/MultiPolygon geometries of a GeoJSON object (geometry, Feature or
    FeatureCollection); ValueError for anything else."""
    if not isinstance(obj, dict) or "type" not in obj:
        raise _bad(where, "not a GeoJSON object (a JSON object with a 'type')")
    kind = obj["type"]
    if kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list) or not features:
            raise _bad(where, "a FeatureCollection without features")
        out = []
        for i, feature in enumerate(features):
            if not isinstance(feature, dict) or feature.get("type") != "Feature":
                raise _bad(where, f"features[{i}] is not a Feature")
            out += _polygonal_geometries(feature, f"{where} features[{i}]")
        return out
    if kind == "Feature":
        geometry = obj.get("geometry")
        if geometry is None:
            raise _bad(where, "a Feature without geometry")
        return _polygonal_geometries(geometry, where)
    if kind == "GeometryCollection":
        geometries = obj.get("geometries")
        if not isinstance(geometries, list) or not geometries:
            raise _bad(where, "an empty GeometryCollection")
        return [g for i, x in enumerate(geometries) for g in _polygonal_geometries(x, where)]
    if kind not in ("Polygon", "MultiPolygon"):
        raise _bad(
            where,
            f"a {kind} is not an area: give a Polygon or MultiPolygon (a geometry, a Feature or "
            "a FeatureCollection of them)",
        )
    return [obj]


def _sphere_area_km2(geometry) -> float:
    """Area on the sphere of a (Multi)Polygon whose edges are straight in lon/lat: the ring
    integral of -R^2 sin(lat) d(lon), exact for such edges."""
    import shapely

    def ring(coords: np.ndarray) -> float:
        lam, phi = np.deg2rad(coords[:, 0]), np.deg2rad(coords[:, 1])
        dlam, dphi = np.diff(lam), np.diff(phi)
        flat = np.abs(dphi) < 1e-12
        safe = np.where(flat, 1.0, dphi)
        term = np.where(
            flat, dlam * np.sin(phi[:-1]), dlam * (np.cos(phi[:-1]) - np.cos(phi[1:])) / safe
        )
        return abs(float(term.sum()))

    total = 0.0
    for poly in shapely.get_parts(geometry):
        total += ring(np.asarray(poly.exterior.coords))
        total -= sum(ring(np.asarray(hole.coords)) for hole in poly.interiors)
    return total * geo.EARTH_RADIUS_KM**2


def _cut_at_antimeridian(geometry):
    """Longitudes beyond +-180 moved back by 360 (the parts east of 180 / west of -180)."""
    import shapely
    from shapely.affinity import translate

    parts = [shapely.intersection(geometry, shapely.box(-180.0, -90.0, 180.0, 90.0))]
    for lo, hi, shift in ((180.0, 540.0, -360.0), (-540.0, -180.0, 360.0)):
        piece = shapely.intersection(geometry, shapely.box(lo, -90.0, hi, 90.0))
        if not piece.is_empty and piece.area > 0:
            parts.append(translate(piece, xoff=shift))
    merged = shapely.union_all(parts)
    return shapely.normalize(polygons_only(merged))


def polygons_only(geometry):
    """Drop the lines and points an intersection may leave."""
    import shapely
    from shapely.geometry import MultiPolygon

    polys = [p for p in shapely.get_parts(geometry) if p.geom_type == "Polygon" and p.area > 0]
    if len(polys) == 1:
        return polys[0]
    return MultiPolygon(polys)


def _lon_bbox(geometry) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a geometry within [-180, 180]: the narrowest longitude
    range holding all its parts, across the antimeridian (west > east) when that is narrower."""
    import shapely

    _, south, _, north = (float(v) for v in geometry.bounds)
    spans = sorted((p.bounds[0], p.bounds[2]) for p in shapely.get_parts(geometry))
    merged = [list(spans[0])]
    for lo, hi in spans[1:]:
        if lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    # the largest uncovered gap: between two merged spans, or around the back of the globe
    west, east = merged[0][0], merged[-1][1]
    wrap_gap = merged[0][0] + 360.0 - merged[-1][1]
    for (_, hi), (lo, _) in zip(merged[:-1], merged[1:]):
        if lo - hi > wrap_gap:
            wrap_gap, west, east = lo - hi, lo, hi
    return float(west), south, float(east), north


def aoi_from_geojson(obj, where: str = "<geojson>") -> Aoi:
    """An `Aoi` from a parsed GeoJSON object (Polygon/MultiPolygon geometry, Feature,
    FeatureCollection or GeometryCollection of them). ValueError naming `where` and the problem:
    not polygonal, bad coordinates, an invalid polygon (self-intersection...), empty, too large."""
    import shapely
    import shapely.geometry

    crs = obj.get("crs") if isinstance(obj, dict) else None
    if crs is not None:
        name = str((crs.get("properties") or {}).get("name", "")) if isinstance(crs, dict) else ""
        if not any(key in name for key in ("CRS84", "4326")):
            raise _bad(
                where, f"coordinates must be WGS 84 longitude/latitude, got crs {crs!r:.120}"
            )
    counter = [0]
    shapes = []
    for geometry in _polygonal_geometries(obj, where):
        depth = 2 if geometry["type"] == "Polygon" else 3
        _check_positions(geometry.get("coordinates"), where, depth, "", counter)
        try:
            shape = shapely.geometry.shape(geometry)
        except (ValueError, TypeError, shapely.errors.GEOSException) as err:
            raise _bad(where, f"not a valid {geometry['type']}: {err}") from err
        if not shape.is_valid:
            raise _bad(
                where,
                f"invalid {geometry['type']}: {shapely.is_valid_reason(shape)} (rings must not "
                "cross themselves or each other)",
            )
        shapes.append(shape)
    geometry = _cut_at_antimeridian(shapely.union_all(shapes))
    if geometry.is_empty or geometry.area <= 0:
        raise _bad(where, "the polygons cover no area")
    wkb = shapely.to_wkb(geometry, output_dimension=2, byte_order=1, include_srid=False)
    return Aoi(
        geometry=geometry,
        source=where,
        sha256=hashlib.sha256(wkb).hexdigest(),
        bbox=_lon_bbox(geometry),
        area_km2=_sphere_area_km2(geometry),
        vertices=int(shapely.get_num_coordinates(geometry)),
    )


def load_aoi(path: str | Path) -> Aoi:
    """Read and validate a GeoJSON AOI file (see `aoi_from_geojson`); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"AOI file {path} does not exist (--aoi takes a GeoJSON file or W,S,E,N)"
        )
    stat = path.stat()
    return _load_aoi_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _load_aoi_cached(path: str, mtime_ns: int, size: int) -> Aoi:
    if size > MAX_AOI_BYTES:
        raise _bad(path, f"too large: {size:,} bytes, more than {MAX_AOI_BYTES:,}")
    try:
        obj = json.loads(Path(path).read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _bad(path, f"not valid JSON ({err})") from err
    except OSError as err:
        raise _bad(path, f"cannot be read ({err})") from err
    return aoi_from_geojson(obj, path)


def looks_like_bbox(text: str) -> bool:
    """--aoi W,S,E,N (four comma-separated values) rather than a file name."""
    return str(text).count(",") == 3 and not Path(str(text)).exists()
