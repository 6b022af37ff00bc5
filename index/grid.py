"""Grids of locations to embed: H3 cells at a resolution over the whole globe, a bbox or an
area of interest (AOI: a GeoJSON polygon).

A grid spec is a string: "h3:RES" (RES 0..10; resolution 2 = 5,882 cells over the globe,
4 = 288,122, 5 = 2,016,842; a res-9 cell covers ~0.1 km^2, a res-10 cell ~0.015 km^2).

Without an area the grid lists every cell on Earth, which is refused beyond MAX_GRID_CELLS
(resolutions above 6). A bbox or an AOI is filled with `h3.h3shape_to_cells` (cells whose centre
lies inside; polygon edges are straight lines in longitude/latitude, as in GeoJSON), never by
listing the globe, and may hold up to MAX_GRID_CELLS cells. A bbox keeps its meaning exactly:
the cells whose centre is inside it (`in_bbox`, edges included).

The antimeridian: a bbox with west > east crosses it. A GeoJSON AOI follows RFC 7946 (one that
crosses it is cut into a MultiPolygon at +-180), and longitudes that run on past +-180 (e.g. a
ring from 170 to 190) are accepted too: such an AOI is cut at the antimeridian here. Holes are
kept. Internally every shape is filled in strips at most 90 degrees of longitude wide (H3 reads
a polygon edge spanning more than 180 degrees as crossing the antimeridian), and a piece that
H3 cannot fill (large polygons near a pole) is split in four and filled again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import h3
import numpy as np
import pandas as pd

from gair import geo

MAX_H3_RES = 10
# Cells one grid may list (the whole globe or an area): h3:6 over the globe (14.1 M, ~4 M of
# them on land) still fits in memory; h3:7 (98 M) does not.
MAX_GRID_CELLS = 15_000_000
MAX_AOI_BYTES = 32 * 1024 * 1024  # a GeoJSON AOI file
MAX_AOI_VERTICES = 1_000_000
AOI_GEOJSON_IN_MANIFEST = 2_000  # an AOI with at most this many vertices is copied into it
_EPS_DEG = 1e-7  # overlap of the fill pieces (~1 cm), so no centre falls between two
_STRIP_DEG = 90.0
_MAX_SPLITS = 12


def h3_cell_count(res: int) -> int:
    """Cells of the whole globe at an H3 resolution (2 + 120 * 7^res)."""
    return 2 + 120 * 7**res


GLOBE_MAX_RES = max(r for r in range(MAX_H3_RES + 1) if h3_cell_count(r) <= MAX_GRID_CELLS)


def parse_grid_spec(spec: str) -> tuple[str, int]:
    """ "h3:4" -> ("h3", 4); a clear ValueError for anything else."""
    kind, _, res = str(spec).partition(":")
    if kind != "h3" or not res.isdigit():
        raise ValueError(f"grid spec must look like 'h3:RES' (e.g. h3:4), got {spec!r}")
    res_i = int(res)
    if not 0 <= res_i <= MAX_H3_RES:
        raise ValueError(f"H3 resolution must be 0..{MAX_H3_RES}, got {res_i} in {spec!r}")
    return kind, res_i


def parse_bbox(text: str | None) -> np.ndarray | None:
    """ "W,S,E,N" -> array (west, south, east, north), validated; west > east crosses 180."""
    if text is None:
        return None
    parts = str(text).split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError as err:
        raise ValueError(f"bbox must be 'W,S,E,N' numbers, got {text!r}") from err
    if len(values) != 4:
        raise ValueError(f"bbox must have 4 numbers W,S,E,N, got {text!r}")
    bbox = np.array(values)
    if np.any(np.abs(bbox[[0, 2]]) > 180):
        raise ValueError(f"bbox longitudes must be within [-180, 180], got {text!r}")
    return geo.validate_bbox(bbox, name="bbox")


def in_bbox(latlon: np.ndarray, bbox: np.ndarray) -> np.ndarray:
    """Boolean mask of points inside bbox (antimeridian-aware)."""
    xy = geo.to_chip_coords(latlon, bbox)
    return np.all(np.abs(xy) <= 1.0, axis=-1)


# -- areas of interest ----------------------------------------------------------------------
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
    return shapely.normalize(_polygons_only(merged))


def _polygons_only(geometry):
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


# -- filling shapes with cells --------------------------------------------------------------
def _fill_piece(poly, res: int, depth: int = 0) -> set[str]:
    """Cells whose centre lies inside one polygon piece (lon/lat, within one 90-degree strip).
    H3 cannot fill some large pieces near the poles: those are split in four, with overlap."""
    import shapely

    outer = [(lat, lon) for lon, lat in poly.exterior.coords[:-1]]
    holes = [[(lat, lon) for lon, lat in ring.coords[:-1]] for ring in poly.interiors]
    try:
        return set(h3.h3shape_to_cells(h3.LatLngPoly(outer, *holes), res))
    except h3.H3BaseException:
        if depth >= _MAX_SPLITS:
            raise
    west, south, east, north = poly.bounds
    mid_x, mid_y = (west + east) / 2, (south + north) / 2
    cells: set[str] = set()
    for x0, x1 in ((west, mid_x), (mid_x, east)):
        for y0, y1 in ((south, mid_y), (mid_y, north)):
            quarter = shapely.box(x0 - _EPS_DEG, y0 - _EPS_DEG, x1 + _EPS_DEG, y1 + _EPS_DEG)
            for part in shapely.get_parts(_clip(poly, quarter)):
                cells |= _fill_piece(part, res, depth + 1)
    return cells


def _clip(geometry, box):
    import shapely

    piece = shapely.intersection(geometry, box)
    return _polygons_only(piece) if not piece.is_empty else piece


def _strip_boxes():
    """Longitude strips of at most 90 degrees covering [-180, 180], overlapping a little."""
    import shapely

    edges = np.arange(-180.0, 180.0 + 1e-9, _STRIP_DEG)
    return [
        shapely.box(max(a - _EPS_DEG, -180.0), -90.0, min(b + _EPS_DEG, 180.0), 90.0)
        for a, b in zip(edges[:-1], edges[1:])
    ]


def fill_geometry(geometry, res: int) -> set[str]:
    """Cells (ids) whose centre lies inside a lon/lat (Multi)Polygon within [-180, 180]."""
    import shapely

    cells: set[str] = set()
    for strip in _strip_boxes():
        piece = _clip(geometry, strip)
        if piece.is_empty:
            continue
        for part in shapely.get_parts(piece):
            cells |= _fill_piece(part, res)
    return cells


def bbox_geometry(bbox: np.ndarray):
    """A bbox as lon/lat rectangles within [-180, 180] (two across the antimeridian), grown by
    a hair so that no centre on an edge is lost (the exact test is `in_bbox`)."""
    import shapely

    west, south, east, north = (float(v) for v in geo.validate_bbox(bbox, "bbox"))
    width = float(geo.bbox_width_deg(np.array([west, south, east, north])))
    west = float(geo.wrap_lon(west)) if west != 180.0 else -180.0
    lo, hi = max(south - _EPS_DEG, -90.0), min(north + _EPS_DEG, 90.0)
    start, end = west - _EPS_DEG, west + width + _EPS_DEG
    boxes = []
    if start < -180.0:  # the hair west of -180 is the far east
        boxes.append(shapely.box(start + 360.0, lo, 180.0, hi))
    boxes.append(shapely.box(max(start, -180.0), lo, min(end, 180.0), hi))
    if end > 180.0:
        boxes.append(shapely.box(-180.0, lo, min(end - 360.0, 180.0), hi))
    return shapely.union_all(boxes)


def bbox_area_km2(bbox: np.ndarray) -> float:
    west, south, east, north = (float(v) for v in bbox)
    width = math.radians(float(geo.bbox_width_deg(np.array([west, south, east, north]))))
    band = math.sin(math.radians(north)) - math.sin(math.radians(south))
    return geo.EARTH_RADIUS_KM**2 * width * band


def estimate_cells(res: int, bbox: np.ndarray | None = None, aoi: Aoi | None = None) -> int:
    """About how many cells the grid lists: exact for the globe, area / mean cell area else."""
    if aoi is None and bbox is None:
        return h3_cell_count(res)
    area = aoi.area_km2 if aoi is not None else bbox_area_km2(bbox)
    return int(round(area / h3.average_hexagon_area(res, "km^2")))


def check_grid_size(res: int, bbox: np.ndarray | None = None, aoi: Aoi | None = None) -> int:
    """The estimated cell count; ValueError when the grid would list more than MAX_GRID_CELLS
    (before any cell is listed)."""
    n = estimate_cells(res, bbox, aoi)
    if n <= MAX_GRID_CELLS:
        return n
    if aoi is None and bbox is None:
        raise ValueError(
            f"h3:{res} over the whole globe lists {n:,} cells, more than {MAX_GRID_CELLS:,}: "
            f"give an area of interest with --aoi (a GeoJSON file, or W,S,E,N) or --bbox, or "
            f"use a grid of resolution <= {GLOBE_MAX_RES} for the whole globe"
        )
    what = f"the AOI {aoi.source}" if aoi is not None else f"the bbox {list(map(float, bbox))}"
    area = aoi.area_km2 if aoi is not None else bbox_area_km2(bbox)
    raise ValueError(
        f"{what} ({area:,.0f} km^2) holds about {n:,} cells at H3 resolution {res}, more than "
        f"{MAX_GRID_CELLS:,}: use a coarser --grid or a smaller area"
    )


def _frame(cells) -> pd.DataFrame:
    cells = sorted(cells)
    latlon = np.array([h3.cell_to_latlng(c) for c in cells], dtype=np.float64).reshape(-1, 2)
    return pd.DataFrame({"cell_id": cells, "lat": latlon[:, 0], "lon": geo.wrap_lon(latlon[:, 1])})


def h3_cells(res: int, bbox: np.ndarray | None = None, aoi: Aoi | None = None) -> pd.DataFrame:
    """H3 cells at `res`: all of them, those whose centre is inside `bbox`, or inside `aoi`
    (and `bbox` when both are given). Columns cell_id, lat, lon; sorted by cell id."""
    check_grid_size(res, bbox, aoi)
    if aoi is None and bbox is None:
        cells = []
        for base in h3.get_res0_cells():
            cells.extend(h3.cell_to_children(base, res) if res > 0 else [base])
        return _frame(cells)
    if aoi is not None:
        geometry = aoi.geometry
        if bbox is not None:
            geometry = _clip(geometry, bbox_geometry(bbox))
        frame = _frame(fill_geometry(geometry, res) if not geometry.is_empty else ())
    else:
        frame = _frame(fill_geometry(bbox_geometry(bbox), res))
    if bbox is not None and len(frame):
        frame = frame[in_bbox(frame[["lat", "lon"]].to_numpy(), bbox)].reset_index(drop=True)
    if len(frame) > MAX_GRID_CELLS:
        raise ValueError(
            f"the grid h3:{res} lists {len(frame):,} cells in that area, more than "
            f"{MAX_GRID_CELLS:,}: use a coarser --grid or a smaller area"
        )
    return frame


def grid_cells(spec: str, bbox: np.ndarray | None = None, aoi: Aoi | None = None) -> pd.DataFrame:
    """Cells of a grid spec over the globe, a bbox or an AOI; see `parse_grid_spec`."""
    _, res = parse_grid_spec(spec)
    return h3_cells(res, bbox, aoi)


def cell_boundaries(cell_ids) -> list[list[tuple[float, float]]]:
    """Each cell's polygon as (lat, lon) vertices."""
    return [list(h3.cell_to_boundary(c)) for c in cell_ids]
