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

import math

import h3
import numpy as np
import pandas as pd

from gair import geo
from index.aoi import (  # noqa: F401  (re-exported: `index.grid` is where callers find grids)
    MAX_AOI_BYTES,
    MAX_AOI_VERTICES,
    Aoi,
    aoi_from_geojson,
    load_aoi,
    looks_like_bbox,
    polygons_only,
)

MAX_H3_RES = 10
# Cells one grid may list (the whole globe or an area): h3:6 over the globe (14.1 M, ~4 M of
# them on land) still fits in memory; h3:7 (98 M) does not.
MAX_GRID_CELLS = 15_000_000
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
    return polygons_only(piece) if not piece.is_empty else piece


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


def coastal_anchors(cells: pd.DataFrame, land: np.ndarray, is_land) -> pd.DataFrame:
    """The cells of `cells` (cell_id, lat, lon) whose centre is at sea (`land` False) but that
    touch land, each with an anchor: the land point inside the cell nearest its centre.

    Looked for among the sea-centred neighbours of land-centred cells (a coastline's ring),
    at 13 points inside each: its 6 vertices pulled a quarter of the way in, and its 7 children's
    centres. `is_land(latlon [N, 2]) -> bool [N]`. Returns cell_id, lat, lon (the anchor),
    sorted by cell id; a coastal city (Sydney, Amsterdam) whose hexagon's centre lies in the
    sea keeps its cell this way. Islands smaller than a cell with no land-centred neighbour
    are not looked for."""
    land = np.asarray(land, bool)
    if not len(cells) or land.all():
        return cells.iloc[:0][["cell_id", "lat", "lon"]]
    listed = set(cells["cell_id"])
    ring = {n for c in cells["cell_id"][land] for n in h3.grid_disk(c, 1)}
    sea = sorted((ring & listed) - set(cells["cell_id"][land]))
    if not sea:
        return cells.iloc[:0][["cell_id", "lat", "lon"]]
    ids, pts, centres = [], [], []
    for c in sea:
        centre = np.array(h3.cell_to_latlng(c))
        verts = np.array(h3.cell_to_boundary(c))
        verts[:, 1] = centre[1] + geo.wrap_lon(verts[:, 1] - centre[1])  # across the antimeridian
        kids = [h3.cell_to_latlng(k) for k in h3.cell_to_children(c, h3.get_resolution(c) + 1)]
        inside = np.concatenate([centre + 0.75 * (verts - centre), np.array(kids)])
        ids += [c] * len(inside)
        pts.append(inside)
        centres.append(np.broadcast_to(centre, inside.shape))
    pts, centres = np.concatenate(pts), np.concatenate(centres)
    pts[:, 1] = geo.wrap_lon(pts[:, 1])  # one call for all points: it is the slow part at h3:6
    on_land = np.asarray(is_land(pts), bool)
    km = np.asarray(geo.haversine_km(pts, centres))
    frame = pd.DataFrame({"cell_id": ids, "lat": pts[:, 0], "lon": pts[:, 1], "km": km})
    frame = frame[on_land].sort_values(["cell_id", "km"]).drop_duplicates("cell_id")
    return frame[["cell_id", "lat", "lon"]].reset_index(drop=True)


def cell_boundaries(cell_ids) -> list[list[tuple[float, float]]]:
    """Each cell's polygon as (lat, lon) vertices."""
    return [list(h3.cell_to_boundary(c)) for c in cell_ids]
