"""The near ground of the ground views: a perspective texture chosen by the land cover at the
point (striped fields, sand ripples, road and pavements, grass, snow, water), fading into the
nearest terrain layer towards the horizon.
"""

from __future__ import annotations

import numpy as np

from gair.world.render_terrain import CAM_H_M, PALETTE_T, ROCK, _is_cold

T_PLAIN, T_WATER, T_STREET, T_FIELD, T_SAND, T_SNOW = range(6)


def _ground_colour(lc, kg, bm, lat, elev) -> np.ndarray:
    """[3, N] colour of the ground at each point: land-cover palette pulled towards the
    Blue Marble colour of the place."""
    base = np.take(PALETTE_T, lc, axis=1)
    rock = (lc == 16) & (_is_cold(kg, lat) | (elev > 3500))
    base = np.where(rock, ROCK[:, None], base)
    dry = np.isin(lc, (7, 9, 10)) & (kg == 2)
    base = np.where(dry, base * 0.6 + np.array((190, 170, 110), np.float32)[:, None] * 0.4, base)
    tundra = (kg == 5) & (lc != 0) & (lc != 15)
    base = np.where(tundra, base * 0.7 + np.array((140, 140, 120), np.float32)[:, None] * 0.3, base)
    w = np.where((lc == 13) | (lc == 15), 0.15, 0.4).astype(np.float32)
    return base * (1 - w) + np.minimum(bm * 1.35, 255.0) * w


def _near_ground(img, near, lat, lc, kg, bm_pt, elev0, U, horizon_row, table, mottle, g, S):
    """Paints the near ground (pixels of `near`) with the texture of each view's land cover;
    `mottle` is each view's window of the mottling texture, `table` the terrain layer colours."""
    N = len(lat)
    f, rows, cols = g["f"], g["rows"], g["cols"]
    g_col = _ground_colour(lc, kg, bm_pt, lat, elev0)[:, :, None, None]  # [3, N, 1, 1]
    dy = np.maximum(rows[None, :, None] - horizon_row[:, None, None].astype(np.float32), 0.5)
    u = (cols[None, None, :] + 0.5 - S / 2) / dy  # lateral / depth: constant towards the VP
    z = (f * CAM_H_M) / dy  # metres to the ground seen at that row (flat ground)
    ttype = np.full(N, T_PLAIN)
    ttype[(lc == 16) & ~_is_cold(kg, lat) & (elev0 < 3500)] = T_SAND
    ttype[(lc == 12) | (lc == 14)] = T_FIELD
    ttype[lc == 13] = T_STREET
    ttype[lc == 15] = T_SNOW
    ttype[lc == 0] = T_WATER
    ground = g_col * (0.9 + 0.12 * mottle)
    for tt in np.unique(ttype):
        if tt == T_PLAIN:
            continue
        sub = np.flatnonzero(ttype == tt)
        us, zs, ms, gs, Us = u[sub], z[sub], mottle[sub], g_col[:, sub], U[sub]
        if tt == T_WATER:
            tex = 0.9 + 0.1 * np.sin(zs * 2.5 + (Us[:, 9] * 6)[:, None, None]) + 0.0 * us
            tex = np.where((np.abs(us) < 0.3) & (ms > 1.2), 1.4, tex)
            gsub = gs * tex
        elif tt == T_STREET:
            road_w = (1.2 + 1.0 * Us[:, 10])[:, None, None]
            au = np.abs(us)
            grey_v = np.where(au < road_w, np.float32(80.0), np.float32(148.0))
            gsub = np.where(au < road_w * 1.6, grey_v, gs) * (0.95 + 0.05 * ms)
            dash = (au < 0.06) & (np.floor(zs / 2.5) % 2 == 0)
            gsub = np.where(dash, np.float32(215.0), gsub)
        elif tt == T_FIELD:
            width = (0.6 + 1.2 * Us[:, 10])[:, None, None]
            stripe = np.floor(us / width + (Us[:, 11] * 4)[:, None, None]) % 2
            block = (np.floor(np.log(zs + 1.0) * 1.8 + (Us[:, 12] * 3)[:, None, None]) % 3) == 1
            alt = np.where(
                Us[:, 13] > 0.4,
                np.array((176, 150, 92.0))[:, None],
                np.array((96, 140, 58.0))[:, None],
            )
            mix = np.minimum(0.25 * stripe + 0.35 * block, 1.0)
            gsub = gs * (1 - mix) + alt[:, :, None, None].astype(np.float32) * mix
        elif tt == T_SAND:
            gsub = gs * (0.92 + 0.08 * np.sin(zs * 1.7 + us * 0.8 + (Us[:, 9] * 6)[:, None, None]))
        else:  # snow: bright, faintly blue in the shade of the mottling
            gsub = gs * (1.15 + 0.03 * ms)  # (clipped after the light)
        ground[:, sub] = gsub
    gfade = np.minimum(z / 300.0, 1.0)
    # the near ground fades into the colour of the nearest terrain layer towards the horizon
    ground = ground + (table[:, :, 0, None, :] - ground) * (0.5 * gfade)
    img = np.where(near, ground, img)
    return img
