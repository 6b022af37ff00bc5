"""Objects standing on the ground of the ground views, nearest in front: broadleaf trees and
conifers by forest type and climate, bushes in shrubland and savanna, buildings whose number
and height grow with the population intensity (and urban land cover), with windows.
"""

from __future__ import annotations

import math

import numpy as np

from gair.world.render_terrain import CAM_H_M

MAX_OBJECTS = 24

BROADLEAF, CONIFER, BUSH, BUILDING = 0, 1, 2, 3
# land-cover class -> (broadleaf trees, conifers, bushes) before randomisation
VEGETATION = {
    1: (0, 18, 2),
    2: (20, 0, 3),
    3: (2, 12, 2),
    4: (14, 2, 3),
    5: (7, 8, 3),
    6: (1, 0, 12),
    7: (0, 0, 7),
    8: (5, 0, 6),
    9: (3, 0, 5),
    10: (0, 0, 3),
    11: (2, 0, 7),
    12: (1, 0, 1),
    13: (2, 0, 1),
    14: (4, 0, 3),
    16: (0, 0, 1),
}
FACADES = np.array(
    [
        (172, 166, 156),
        (140, 140, 146),
        (184, 160, 130),
        (150, 92, 72),
        (204, 204, 208),
        (108, 114, 126),
    ],
    np.float32,
)
VEG_TABLE = np.array([VEGETATION.get(i, (0, 0, 0)) for i in range(17)], np.float64)
N_VIEW_U = 10  # per-view uniforms before the object block
N_OBJ_U = 6  # uniforms per object


def _draw_objects(img, lc, kg, pop, on_land, U, V, S, f, horizon_row, ground_mid):
    """Trees, bushes and buildings on the near ground. Each object covers one vertical interval
    per column; objects are painted far to near so the nearest covering one wins."""
    N = len(lc)
    M = MAX_OBJECTS
    veg = VEG_TABLE[lc]  # [N, 3]
    veg[:, :2] = np.where((kg == 5)[:, None], veg[:, :2] // 3, veg[:, :2])
    jitter = 0.6 + 0.7 * V[:, 7]
    veg = np.floor(veg * jitter[:, None])
    density = np.clip((pop - 4.3) / 3.2, 0.0, 1.0)
    urban = lc == 13
    n_build = np.where(urban, 6 + 12 * density, np.floor(4.0 * density**2 * (0.5 + V[:, 8])))
    none = ~on_land | (lc == 15) | (lc == 0)
    n_build = np.where(none, 0, n_build)
    veg = np.where(none[:, None], 0, veg)
    c1 = n_build
    c2 = c1 + veg[:, 0]
    c3 = c2 + veg[:, 1]
    c4 = c3 + veg[:, 2]
    slot = np.arange(M)[None, :]
    kind = np.select(
        [slot < c1[:, None], slot < c2[:, None], slot < c3[:, None], slot < c4[:, None]],
        [BUILDING, BROADLEAF, CONIFER, BUSH],
        default=-1,
    )
    valid = kind >= 0
    if not valid.any():
        return img
    ou = V[:, N_VIEW_U:].reshape(N, M, N_OBJ_U)  # per-object uniforms
    is_b = kind == BUILDING
    log_d = np.where(
        is_b,
        math.log(25.0) + ou[..., 0] * math.log(320.0 / 25.0),
        math.log(12.0) + ou[..., 0] * math.log(260.0 / 12.0),
    )
    dist = np.exp(log_d)
    rural_house = is_b & ~urban[:, None]
    dist = np.where(rural_house, dist * 2.0, dist)
    side = np.where(ou[..., 1] < 0.5, -1.0, 1.0)
    road_half = 1.8 * CAM_H_M * f / dist
    x = np.where(
        is_b,
        S / 2 + side * (road_half + ou[..., 2] * 0.45 * S),
        (ou[..., 1] - 0.5) * 1.1 * S + S / 2,
    )
    tall = 6.0 + 10.0 * ou[..., 3]
    scale = np.where(urban, 6.0 + 12.0 * np.maximum(pop - 5.0, 0.0) ** 1.6, 3.0)[:, None]
    b_h = np.minimum(6.0 + (-np.log1p(-ou[..., 3] * 0.999)) ** 1.3 * scale, 320.0)
    broad_h = tall * np.where(lc == 2, 1.3, 1.0)[:, None]
    height = np.select(
        [kind == BROADLEAF, kind == CONIFER, kind == BUSH],
        [broad_h, tall * 1.4, 0.8 + 1.2 * ou[..., 4]],
        default=b_h,
    )
    width = np.select(
        [kind == BROADLEAF, kind == CONIFER, kind == BUSH],
        [height * 0.7, height * 0.38, height * 1.3],
        default=10.0 + 25.0 * ou[..., 4],
    )
    facade = np.minimum((ou[..., 5] * len(FACADES)).astype(np.int64), len(FACADES) - 1)
    base_ground = np.maximum(ground_mid, horizon_row)[:, None]
    base = base_ground + f * CAM_H_M / dist
    top = base - f * height / dist
    hw = np.maximum(0.5 * f * width / dist, 0.6)
    h = np.maximum(base - top, 1.0)
    dist = np.where(valid, dist, np.inf)
    order = np.argsort(dist, axis=1)  # nearest first

    def srt(a):
        return np.take_along_axis(a, order, axis=1)

    kind, base, top, hw, x, dist, h, facade, valid = map(
        srt, (kind, base, top, hw, x, dist, h, facade, valid)
    )
    # per-column intervals [lo, hi]: [N, M, S]
    dx = (col_idx_f(S)[None, None, :] - x[..., None]) / hw[..., None]
    adx = np.abs(dx)
    k = kind[..., None]
    half = np.sqrt(np.maximum(1.0 - dx**2, 0.0))
    c_mid = np.where(k == BUSH, 0.55, 0.38)
    c_half = np.where(k == BUSH, 0.45, 0.40) * half
    t3, h3, b3 = top[..., None], h[..., None], base[..., None]
    canopy_hi = t3 + h3 * (c_mid + c_half)
    lo = np.where(k == CONIFER, t3 + h3 * adx / 1.05, t3 + h3 * (c_mid - c_half))
    lo = np.where(k == BUILDING, t3, lo)
    hi = np.where(
        (k == BUILDING) | (k == CONIFER) | ((k == BROADLEAF) & (adx < 0.16)), b3, canopy_hi
    )
    lo = np.where((adx <= 1.0) & valid[..., None], lo, np.inf).astype(np.float32)
    hi = hi.astype(np.float32)
    # Rasterise all intervals at once: object m adds bit 2^m on its rows [start, end) of a
    # column (a difference array, summed down the rows); the lowest set bit of a pixel is the
    # nearest object covering it.
    start = np.clip(np.ceil(lo), 0, S)
    end = np.clip(np.floor(hi) + 1, 0, S)
    end = np.where(np.isfinite(lo), np.maximum(end, start), start)
    bit = (2.0 ** np.arange(M))[None, :, None] * np.ones_like(start)
    n_i = np.arange(N)[:, None, None]
    c_i = np.arange(S)[None, None, :]
    pos = np.concatenate(
        [((n_i * (S + 1) + start) * S + c_i).ravel(), ((n_i * (S + 1) + end) * S + c_i).ravel()]
    )
    weights = np.concatenate([bit.ravel(), -bit.ravel()])
    diff = np.bincount(pos.astype(np.int64), weights=weights, minlength=N * (S + 1) * S)
    mask = np.cumsum(diff.reshape(N, S + 1, S), axis=1)[:, :S].astype(np.int64)  # exact ints
    hit = mask > 0
    if not hit.any():
        return img
    lsb = mask & -mask
    idx = np.bitwise_count(np.maximum(lsb - 1, 0)).astype(np.int64)  # index of the lowest set bit
    obj = np.arange(N)[:, None, None] * M + np.maximum(idx, 0)  # [N, S, S]
    colflat = obj * S + np.arange(S)[None, None, :]  # (object, column) tables
    rowflat = obj * S + np.arange(S)[None, :, None]  # (object, row) tables
    # colours per object [3, N, M]
    green = np.where(kg == 1, 1, np.where(kg == 2, 2, 0))
    greens = np.array([(40, 92, 36), (30, 104, 34), (92, 106, 52)], np.float32).T  # [3, 3]
    gcol = np.take(greens, green, axis=1)  # [3, N]
    autumn = ((kg == 3) | (kg == 4)) & ((lc == 4) | (lc == 5)) & (U[:, 0] < 0.25)
    gcol = np.where(autumn, np.array((150, 100, 40), np.float32)[:, None], gcol)
    bush = gcol * 0.6 + np.array((120, 110, 70), np.float32)[:, None] * 0.4
    conifer = np.array((24, 58, 32), np.float32)[:, None, None]
    fac = np.take(FACADES.T, facade, axis=1)  # [3, N, M]
    kk = kind[None]
    colours = np.where(
        kk == BROADLEAF,
        gcol[:, :, None],
        np.where(kk == CONIFER, conifer, np.where(kk == BUSH, bush[:, :, None], fac)),
    )
    hz = np.minimum(np.where(np.isfinite(dist), dist, 0.0) / 2500.0, 0.5).astype(np.float32)
    colours = (colours * (1 - hz) + 200.0 * hz).astype(np.float32)
    px = np.take(colours.reshape(3, -1), obj, axis=1)  # [3, N, S, S]
    p_dx = np.take(dx.reshape(-1), colflat).astype(np.float32)
    p_kind = np.take(kind.reshape(-1), obj)
    # per (object, row) facts of buildings: window rows (every third, not at the top or the
    # base, on buildings taller than 4 px) and the darker roof line
    rows_i = np.arange(S)[None, None, :]
    rel_rows = (rows_i - top[..., None]) / h[..., None]
    is_b3 = (kind == BUILDING)[..., None]
    win_rows = is_b3 & ((rows_i - np.floor(top)[..., None].astype(np.int64)) % 3 == 1)
    win_rows &= (rel_rows > 0.08) & (rel_rows < 0.95) & (h[..., None] > 4)
    roof_rows = is_b3 & (rel_rows < 0.05)
    bld = p_kind == BUILDING
    dark = (np.take(roof_rows.reshape(-1), rowflat) | (np.abs(p_dx) > 0.85)) & bld
    sun = sun_sign(U)[:, None, None]
    factor = (1.0 + 0.18 * np.clip(p_dx, -1.0, 1.0) * sun) * np.where(dark, 0.75, 1.0)
    px = px * factor.astype(np.float32)
    rr = np.arange(S, dtype=np.float32)[None, :, None]
    trunk = (p_kind == BROADLEAF) & (rr > np.take(canopy_hi.reshape(-1), colflat))
    px = np.where(trunk, np.array((82, 62, 42), np.float32)[:, None, None, None], px)
    win = np.take(win_rows.reshape(-1), rowflat) & (np.arange(S) % 3 == 1) & bld
    if win.any():
        day = U[:, 1] > 0.2
        win_col = np.where(
            day, np.array((60, 74, 92.0))[:, None], np.array((240, 210, 120.0))[:, None]
        )
        px = np.where(win, win_col.astype(np.float32)[:, :, None, None], px)
    return np.where(hit, px, img)


def sun_sign(U: np.ndarray) -> np.ndarray:
    return np.where(U[:, 7] > 0.5, 1.0, -1.0).astype(np.float32)


def col_idx_f(S: int) -> np.ndarray:
    return np.arange(S, dtype=np.float64) + 0.5
