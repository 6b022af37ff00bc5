"""Global grids of locations to embed: H3 cells at a resolution, optionally clipped to a bbox.

A grid spec is a string: "h3:RES" (RES 0..8; resolution 2 = 5,882 cells, 4 = 288,122 cells).
"""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd

from gair import geo

MAX_H3_RES = 8


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


def h3_cells(res: int, bbox: np.ndarray | None = None) -> pd.DataFrame:
    """All H3 cells at `res` (centre inside bbox when given): columns cell_id, lat, lon."""
    cells = []
    for base in h3.get_res0_cells():
        cells.extend(h3.cell_to_children(base, res) if res > 0 else [base])
    cells.sort()
    latlon = np.array([h3.cell_to_latlng(c) for c in cells], dtype=np.float64)
    frame = pd.DataFrame({"cell_id": cells, "lat": latlon[:, 0], "lon": geo.wrap_lon(latlon[:, 1])})
    if bbox is not None:
        frame = frame[in_bbox(frame[["lat", "lon"]].to_numpy(), bbox)].reset_index(drop=True)
    return frame


def grid_cells(spec: str, bbox: np.ndarray | None = None) -> pd.DataFrame:
    """Cells of a grid spec; see `parse_grid_spec`."""
    _, res = parse_grid_spec(spec)
    return h3_cells(res, bbox)


def cell_boundaries(cell_ids) -> list[list[tuple[float, float]]]:
    """Each cell's polygon as (lat, lon) vertices."""
    return [list(h3.cell_to_boundary(c)) for c in cell_ids]
