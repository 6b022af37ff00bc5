"""Heatmaps at the map's own zoom: zoomed in on an index finer than the global overlay image,
the overlay is redrawn for the cells in view only, one image pixel per screen pixel or so.

The global overlay (`CellRaster`, 1024 px for the world: ~39 km per pixel at the equator) shows
one cell per pixel; an h3:4 index (~45 km) is fully drawn by it, an h3:6 one (~6 km) is not.
When the map shows an area where the cells are finer than the global image's pixels, `in_view`
draws the same layer (its `draw` function: values and colours fixed at the click) over the
cells inside the view, with a rasteriser for that box. Views holding more than
`MAX_VIEW_CELLS` cells keep the global image (they are zoomed out: it is as fine as the screen).
"""

from __future__ import annotations

import math

import numpy as np

from app.extent import MERCATOR_MAX_LAT, Extent

MAX_VIEW_CELLS = 250_000
VIEW_PAD = 0.15  # the image covers the view plus this fraction on each side (small pans)
VIEW_MAX_PX = 1400  # longer side of the view's image


def view_extent(view: dict | None) -> tuple[Extent, int] | None:
    """(padded box, zoom) of a streamlit-folium view {"bounds": {"_southWest": {lat, lng},
    "_northEast": {...}}, "zoom": z}; None when missing, malformed, or wider than half the
    world (the global image serves those)."""
    try:
        sw, ne = view["bounds"]["_southWest"], view["bounds"]["_northEast"]
        south, west, north, east = (float(v) for v in (sw["lat"], sw["lng"], ne["lat"], ne["lng"]))
        zoom = int(view["zoom"])
    except (KeyError, TypeError, ValueError):
        return None
    if not all(map(math.isfinite, (south, west, north, east))) or east - west >= 180.0:
        return None
    if west < -180.0 or east > 180.0:  # a view across the antimeridian: keep the global image
        return None
    pad_x, pad_y = (east - west) * VIEW_PAD, (north - south) * VIEW_PAD
    box = Extent(
        max(-180.0, west - pad_x),
        max(-MERCATOR_MAX_LAT, south - pad_y),
        min(180.0, east + pad_x),
        min(MERCATOR_MAX_LAT, north + pad_y),
    )
    if box.east <= box.west or box.north <= box.south:
        return None
    return box, zoom


def needs_detail(res, box: Extent) -> bool:
    """Whether the global image is coarser than the cells in this box: its pixel (on the
    ground, at the box's middle latitude) wider than the cells' spacing."""
    glob = res.raster
    if glob.extent is not None:  # a regional index: its raster is already at cell resolution
        return False
    pixel = 2 * math.pi / glob.width * math.cos(math.radians(box.center[0]))  # radians
    return glob.spacing < pixel


def cells_in(res, box: Extent) -> np.ndarray:
    """Row positions [n] int64 of the cells inside the box."""
    lat, lon = res.cell_latlon[:, 0], res.cell_latlon[:, 1]
    inside = (lat >= box.south) & (lat <= box.north) & (lon >= box.west) & (lon <= box.east)
    return np.flatnonzero(inside)


def in_view(res, overlay: dict | None, view: dict | None) -> dict | None:
    """The overlay redrawn for the view when that shows more detail, else the overlay itself.
    Cached per process by layer and box (a pan back and forth redraws nothing)."""
    if overlay is None or overlay.get("draw") is None:
        return overlay
    parsed = view_extent(view)
    if parsed is None:
        return overlay
    box, _ = parsed
    if not needs_detail(res, box):
        return overlay
    key = (overlay["key"], *(round(v, 3) for v in (box.west, box.south, box.east, box.north)))

    def build():
        from app.raster import CellRaster, mercator_y

        rows = cells_in(res, box)
        if not len(rows) or len(rows) > MAX_VIEW_CELLS:
            return None
        dx = math.radians(box.east - box.west)
        dy = float(mercator_y(box.north) - mercator_y(box.south))
        width = int(VIEW_MAX_PX * min(1.0, dx / max(dx, dy)))
        height = int(VIEW_MAX_PX * min(1.0, dy / max(dx, dy)))
        lat, lon = res.cell_latlon[rows, 0], res.cell_latlon[rows, 1]
        raster = CellRaster(
            lat, lon, width=max(width, 8), extent=box, height=max(height, 8),
            spacing=res.raster.spacing,
        )  # fmt: skip
        return {**overlay, "png": overlay["draw"](raster, rows), "bounds": raster.bounds}

    detailed = res.cached_view(key, build)
    return overlay if detailed is None else detailed
