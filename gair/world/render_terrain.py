"""Terrain of the ground views: the land-cover palette, the camera geometry, lookups in the
world's layers and the distant terrain layers (elevation sampled along a fan of rays, coloured
by land cover, Blue Marble, rock and snow, shaded and hazed; a voxel-column pass picks the
layer each pixel shows).
"""

from __future__ import annotations

import math

import numpy as np

from gair.world import grid

# IGBP land-cover palette (RGB 0..255), index = class
PALETTE = np.array(
    [
        (46, 86, 122),  # 0 water
        (38, 72, 42),  # 1 evergreen needleleaf
        (34, 92, 38),  # 2 evergreen broadleaf
        (62, 86, 48),  # 3 deciduous needleleaf
        (66, 108, 48),  # 4 deciduous broadleaf
        (52, 92, 46),  # 5 mixed forest
        (112, 110, 72),  # 6 closed shrubland
        (166, 146, 100),  # 7 open shrubland
        (112, 122, 62),  # 8 woody savanna
        (156, 148, 84),  # 9 savanna
        (122, 152, 72),  # 10 grassland
        (72, 102, 82),  # 11 wetland
        (142, 152, 78),  # 12 cropland
        (124, 122, 118),  # 13 urban
        (112, 136, 72),  # 14 cropland / natural mosaic
        (236, 241, 248),  # 15 snow and ice
        (214, 178, 124),  # 16 barren (sand; cold barren is made rocky)
    ],
    np.float32,
)
PALETTE_T = np.ascontiguousarray(PALETTE.T)  # [3, 17]
ROCK = np.array((128, 122, 116), np.float32)
SNOW = PALETTE[15]

FOV_DEG = 90.0
N_AZ = 17
DISTANCES_KM = 0.4 * (150.0 / 0.4) ** (np.arange(16) / 15.0)
EXAGGERATION = 3.0  # vertical exaggeration of terrain (the 7.4 km elevation grid is smooth)
R_EFF_KM = grid.EARTH_RADIUS_KM / (1.0 - 0.13)  # earth curvature with standard refraction
CAM_H_M = 2.5


def _bilinear_elevation(world, lat, lon) -> np.ndarray:
    u = np.minimum(np.maximum(grid.lat_to_row(lat) - 0.5, 0.0), grid.HEIGHT - 1.001)
    v = grid.lon_to_col(lon) - 0.5
    r0 = u.astype(np.int64)
    c0 = np.floor(v).astype(np.int64)
    fr = (u - r0).astype(np.float32)
    fc = (v - c0).astype(np.float32)
    c0w = c0 % grid.WIDTH
    c1w = (c0 + 1) % grid.WIDTH
    base0 = r0 * grid.WIDTH
    base1 = np.minimum(r0 + 1, grid.HEIGHT - 1) * grid.WIDTH
    e = world._elev_flat
    a = np.take(e, base0 + c0w).astype(np.float32)
    b = np.take(e, base0 + c1w).astype(np.float32)
    c = np.take(e, base1 + c0w).astype(np.float32)
    d = np.take(e, base1 + c1w).astype(np.float32)
    return (a + (b - a) * fc) * (1 - fr) + (c + (d - c) * fc) * fr


def _snowline_m(lat: np.ndarray) -> np.ndarray:
    """Rough permanent snow line: ~5,200 m in the tropics, sea level near the poles."""
    return np.clip(5200.0 - np.maximum(np.abs(lat) - 20.0, 0.0) * 75.0, 0.0, 5200.0)


def _is_cold(kg: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return (kg == 4) | (kg == 5) | (np.abs(lat) > 55)


_GEOMETRY: dict[int, dict] = {}


def _geometry(S: int) -> dict:
    """Per-size constants: focal length, azimuth offsets of the ray fan, column interpolation."""
    g = _GEOMETRY.get(S)
    if g is None:
        f = S / (2.0 * math.tan(math.radians(FOV_DEG / 2)))
        az_cols = np.linspace(0.0, S - 1.0, N_AZ)
        w = np.interp(np.arange(S), az_cols, np.arange(N_AZ))
        a0 = np.minimum(w.astype(np.int64), N_AZ - 2)
        g = {
            "f": f,
            "az_off": np.arctan((az_cols + 0.5 - S / 2) / f),
            "a0": a0,
            "fa": (w - a0).astype(np.float32),
            "rows": np.arange(S, dtype=np.float32),
            "cols": np.arange(S, dtype=np.float32),
            "col_idx": np.arange(S),
        }
        _GEOMETRY[S] = g
    return g


def _terrain_layers(world, lat, lon, heading, kg, elev0, cam_h, V, ridge, g, scene, S: int):
    """The distant terrain of each view, one layer per distance (K = len(DISTANCES_KM)).
    `scene` is `render_sky._sky_and_light`'s dict, `ridge` the ridge noise texture.

    Returns (img [3, N, S, S] terrain colours, layer [N, S, S] the layer each pixel shows
    (0 = nearest, K = sky), table [3, N, K + 1, S] layer colours per column, run_min [N, K, S]
    the top row of the layers up to each distance: the running minimum of the layer tops)."""
    N = len(lat)
    f, col_idx = g["f"], g["col_idx"]
    horizon_row, horizon_col = scene["horizon_row"], scene["horizon_col"]
    visibility, sun_side = scene["visibility"], scene["sun_side"]
    d = DISTANCES_KM
    K = len(d)
    az = np.radians(heading)[:, None] + g["az_off"][None, :]  # [N, A]
    coslat = np.maximum(np.cos(np.radians(lat)), 0.02)
    s_lat = lat[:, None, None] + d[None, :, None] * np.cos(az)[:, None, :] / grid.KM_PER_DEG
    s_lat = np.minimum(np.maximum(s_lat, -89.99), 89.99)
    s_lon = lon[:, None, None] + d[None, :, None] * np.sin(az)[:, None, :] / (
        grid.KM_PER_DEG * coslat[:, None, None]
    )
    elev = _bilinear_elevation(world, s_lat, s_lon)  # [N, K, A]
    rr, cc = grid.nearest_index(s_lat, s_lon)
    s_idx = rr * grid.WIDTH + cc
    s_land = np.take(world._land_flat, s_idx)
    s_lc = np.where(s_land, np.take(world._lc_flat, s_idx), 0)
    s_bm = np.take(world._rs_flat[:3], s_idx, axis=1).astype(np.float32)  # [3, N, K, A]
    elev = np.where(s_land, np.maximum(elev, 0.0), 0.0).astype(np.float32)
    relief = elev.max(axis=(1, 2)) - elev.min(axis=(1, 2))
    a0, fa = g["a0"], g["fa"]
    elev_c = np.take(elev, a0, axis=2) * (1 - fa) + np.take(elev, a0 + 1, axis=2) * fa  # [N,K,S]
    L = len(ridge)
    step = 1 + np.arange(K)[:, None] // 4
    offs = (
        (V[:, 1] * L).astype(np.int64)[:, None, None]
        + (np.arange(K) * 977)[None, :, None]
        + (col_idx[None, :] * step)[None]
    ) % L
    amp = (0.05 + 0.12 * np.minimum(relief / 2500.0, 1.0))[:, None, None] * np.maximum(
        elev_c - 0.5 * elev0[:, None, None].astype(np.float32), 0.0
    )
    amp = amp * np.minimum(1.0, d / 3.0)[None, :, None].astype(np.float32)
    elev_c = elev_c + np.take(ridge, offs) * amp
    drop_m = (d**2 / (2 * R_EFF_KM) * 1000.0).astype(np.float32)[None, :, None]
    dz = (elev_c - cam_h[:, None, None]) * EXAGGERATION - drop_m
    tops = horizon_row[:, None, None] - f * dz / (d[None, :, None] * 1000.0)  # [N, K, S]
    run_min = np.minimum.accumulate(tops, axis=1)  # what nearer layers already cover
    # pixel (r, c) shows layer #{k : run_min[k, c] > r}: 0 = nearest, K = sky
    edge = np.minimum(np.maximum(np.ceil(run_min), 0), S).astype(np.int64)
    vidx = np.arange(N)[:, None, None]
    hist = np.bincount(
        ((vidx * (S + 1) + edge) * S + col_idx[None, None, :]).ravel(), minlength=N * (S + 1) * S
    ).reshape(N, S + 1, S)
    layer = np.cumsum(hist[:, ::-1], axis=1, dtype=np.int32)[:, ::-1][:, 1:]  # [N, S, S]

    # layer colours [3, N, K, A] -> [3, N, K, S]
    pal = np.take(PALETTE_T, s_lc, axis=1)
    rocky = (s_lc == 16) & _is_cold(kg, lat)[:, None, None]
    pal = np.where(rocky, ROCK[:, None, None, None], pal)
    col = pal * 0.55 + np.minimum(s_bm * 1.35, 255.0) * 0.45
    snowline = _snowline_m(lat)[:, None, None]
    rock = np.clip((elev - (snowline - 1100.0)) / 700.0, 0.0, 0.8).astype(np.float32)
    col = col * (1 - rock) + ROCK[:, None, None, None] * rock  # bare rock above the tree line
    snow = np.clip((elev - snowline) / 400.0, 0.0, 1.0).astype(np.float32)
    col = col * (1 - snow) + SNOW[:, None, None, None] * snow
    col = np.where(s_land, col, PALETTE_T[:, 0][:, None, None, None] * 0.7 + s_bm * 0.5)
    col_c = np.take(col, a0, axis=3) * (1 - fa) + np.take(col, a0 + 1, axis=3) * fa
    dd = np.diff(d, prepend=0.0).astype(np.float32)[None, :, None] * 1e3
    rise = np.diff(elev_c, axis=1, prepend=elev_c[:, :1]) / dd
    side = np.empty_like(elev_c)
    side[:, :, 1:-1] = elev_c[:, :, 2:] - elev_c[:, :, :-2]
    side[:, :, 0] = side[:, :, 1]
    side[:, :, -1] = side[:, :, -2]
    side *= (sun_side / 800.0).astype(np.float32)[:, None, None]
    shade = np.clip(1.0 + 4.0 * rise + side, 0.65, 1.3)
    haze = (1.0 - np.exp(-d[None, :] / visibility[:, None])).astype(np.float32)[None, :, :, None]
    col_c = (col_c * shade) * (1 - haze) + horizon_col[:, :, None, None] * haze
    table = np.zeros((3, N, K + 1, S), np.float32)
    table[:, :, :K] = col_c
    flat_idx = layer * np.int32(S) + ((vidx * (K + 1)) * S + col_idx[None, None, :]).astype(
        np.int32
    )
    img = np.take(table.reshape(3, -1), flat_idx, axis=1)  # [3, N, S, S]
    return img, layer, table, run_min
