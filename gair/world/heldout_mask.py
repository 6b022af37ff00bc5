"""Where training chips may go: a raster of the held-out blocks and the chip windows clear of it.

The held-out blocks (H3 cells, val/test/unseen) are burnt into a bool raster on the world grid
(`all_touched`, so a pixel that merely touches a block counts as held out). A training chip of S
px is then placed only where its whole read window is clear of that raster, so no training chip
ever shows a pixel of a held-out block, while points right next to a block stay usable (the chip
is shifted away from the block). This replaces a buffer ring around each block, which at H3
resolution 1 would have cost a third of the world's land.

Chip geometry follows `World.chips`: a chip whose first pixel-row coordinate is R + 0.5 (R an
integer) reads global rows R .. R + S (S + 1 rows, the last with bilinear weight 0), and likewise
columns C .. C + S (wrapping at the antimeridian). For a point, the candidate windows are the S x S
integer positions (R, C) that keep the point inside the chip; `window_offsets` turns the chosen
ones into the (x, y) offsets in [-1, 1] that `World.chips` takes.
"""

from __future__ import annotations

import numpy as np

from gair.world import grid


def _cell_polygons(cell: str) -> list:
    """Shapely polygon(s) of an H3 cell in lon/lat, split copies across the antimeridian."""
    import h3
    from shapely.affinity import translate
    from shapely.geometry import Polygon

    boundary = np.asarray(h3.cell_to_boundary(cell), np.float64)  # (lat, lng)
    lon, lat = boundary[:, 1].copy(), boundary[:, 0]
    if lon.max() - lon.min() > 180.0:  # crosses the antimeridian: unwrap east of it
        lon[lon < 0] += 360.0
    poly = Polygon(np.stack([lon, lat], 1))
    return [poly, translate(poly, xoff=-360.0)] if lon.max() > 180.0 else [poly]


def contains_pole(cell: str) -> bool:
    """True for the two cells (at any resolution) that hold a pole; their boundary does not
    enclose the pole in lon/lat, so they cannot be rasterised as polygons and are never held out."""
    import h3

    res = h3.get_resolution(cell)
    return cell in (h3.latlng_to_cell(90.0, 0.0, res), h3.latlng_to_cell(-90.0, 0.0, res))


def heldout_raster(cells) -> np.ndarray:
    """Bool [HEIGHT, WIDTH]: True on every world pixel that touches one of the H3 `cells`."""
    from rasterio.features import rasterize
    from rasterio.transform import from_origin

    shapes = [(p, 1) for c in cells for p in _cell_polygons(str(c))]
    if not shapes:
        return np.zeros((grid.HEIGHT, grid.WIDTH), bool)
    out = rasterize(
        shapes,
        out_shape=(grid.HEIGHT, grid.WIDTH),
        transform=from_origin(-180.0, 90.0, grid.DEG_PER_PX, grid.DEG_PER_PX),
        all_touched=True,
        fill=0,
        dtype="uint8",
    )
    return out.astype(bool)


def clear_windows(mask: np.ndarray, size_px: int) -> np.ndarray:
    """Bool [HEIGHT, WIDTH]: True at (R, C) when the read window rows R..R+S, columns C..C+S
    (mod WIDTH) has no masked pixel and lies inside the grid's rows (R + S <= HEIGHT - 1)."""
    s = int(size_px) + 1  # S + 1 rows and columns are read
    h, w = mask.shape
    padded = np.concatenate([mask, mask[:, :s]], axis=1).astype(np.int32)  # wrap east
    sat = np.zeros((h + 1, w + s + 1), np.int32)
    np.cumsum(np.cumsum(padded, axis=0), axis=1, out=sat[1:, 1:])
    ok = np.zeros((h, w), bool)
    n_rows = h - s + 1  # windows that fit inside the rows
    box = (
        sat[s : s + n_rows, s : s + w]
        - sat[:n_rows, s : s + w]
        - sat[s : s + n_rows, :w]
        + sat[:n_rows, :w]
    )
    ok[:n_rows] = box == 0
    return ok


def _candidates(latlon: np.ndarray, size_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate window origins per point: rows [N, S] and unwrapped columns [N, S]."""
    p = grid.DEG_PER_PX
    rp = (90.0 - latlon[:, 0]) / p
    cp = (latlon[:, 1] + 180.0) / p
    k = np.arange(int(size_px))
    rows = np.floor(rp - 0.5).astype(np.int64)[:, None] - k[None, :]
    cols = np.floor(cp - 0.5).astype(np.int64)[:, None] - k[None, :]
    return rows, cols


def window_table(latlon: np.ndarray, ok: np.ndarray, size_px: int, chunk: int = 4096) -> np.ndarray:
    """Bool [N, S, S]: which of each point's S x S candidate windows are clear (`clear_windows`)."""
    latlon = np.asarray(latlon, np.float64).reshape(-1, 2)
    s = int(size_px)
    out = np.zeros((len(latlon), s, s), bool)
    h, w = ok.shape
    for a in range(0, len(latlon), chunk):
        rows, cols = _candidates(latlon[a : a + chunk], s)
        valid_row = (rows >= 0) & (rows < h)
        r = np.clip(rows, 0, h - 1)[:, :, None]
        c = (cols % w)[:, None, :]
        out[a : a + chunk] = ok[r, c] & valid_row[:, :, None]
    return out


def window_offsets(latlon: np.ndarray, size_px: int, pick: np.ndarray) -> np.ndarray:
    """Offsets [N, 2] (x, y in [-1, 1], as `World.chips` takes them) of the chosen candidate
    windows; pick [N, 2] holds (row index, column index) into the S x S candidates."""
    latlon = np.asarray(latlon, np.float64).reshape(-1, 2)
    rows, cols = _candidates(latlon, size_px)
    n = np.arange(len(latlon))
    r = rows[n, pick[:, 0]]
    c = cols[n, pick[:, 1]]
    p = grid.DEG_PER_PX
    ext = int(size_px) * p
    north = 90.0 - (r + 0.5) * p
    west = (c + 0.5) * p - 180.0
    off_y = 2.0 * (north - latlon[:, 0]) / ext - 1.0
    off_x = 2.0 * (latlon[:, 1] - west) / ext - 1.0
    return np.clip(np.stack([off_x, off_y], 1), -1.0, 1.0)
