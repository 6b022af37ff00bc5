"""Ground-level views rendered from the world's layers, standing in for street-view photos.

One view per (location, heading, seed), deterministic, vectorised numpy (~1 ms at 64 px):

1. Terrain: the elevation layer is sampled along rays fanning out over the 90 degree field of
   view (17 azimuths x 16 distances from 0.4 to 150 km), with earth curvature and a vertical
   exaggeration; ridge detail (noise scaled by the local relief) is added per column. Each
   distance is a layer drawn with the land cover / Blue Marble colour found there, slope
   shading, snow above a latitude-dependent snow line and distance haze; a voxel-column pass
   (running minimum of the layer tops) gives every pixel its nearest visible layer, so mountains
   rise above the horizon and flat plains leave a low, flat horizon.
2. Near ground: a perspective texture chosen by the land cover at the point (striped fields,
   sand ripples, road and pavements, grass, snow, water).
3. Objects standing on the ground, nearest in front: broadleaf trees and conifers by forest type
   and climate, bushes in shrubland and savanna, buildings whose number and height grow with the
   population intensity (and urban land cover), with windows.
4. Sky and light: a gradient and clouds whose colour, cloud cover and brightness depend on
   latitude, climate and the seed (season, time of day, weather); haze; sensor noise.

What the views share with the RS chip (Blue Marble colours, land cover, relief) is the real
cross-view signal; seeds, headings and randomly placed objects are the real ambiguity.

Implementation notes: images are built as colour planes [3, S, S] (numpy is slow at
broadcasting over a trailing axis of 3) and all gathers use `np.take` on flat arrays.
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


def _fractal(rng, shape, octaves):
    out = np.zeros(shape, np.float32)
    amp = total = 1.0
    total = 0.0
    for o in range(octaves):
        cells = [max(2, s >> (6 - o)) for s in shape]
        coarse = rng.standard_normal(cells).astype(np.float32)
        pos = [np.arange(s) * c / s for s, c in zip(shape, cells)]
        i0 = [np.floor(p).astype(int) for p in pos]
        fr = [(p - i).astype(np.float32) for p, i in zip(pos, i0)]
        if len(shape) == 1:
            up = coarse[i0[0] % cells[0]] * (1 - fr[0]) + coarse[(i0[0] + 1) % cells[0]] * fr[0]
        else:
            a0, a1 = i0[0] % cells[0], (i0[0] + 1) % cells[0]
            b0, b1 = i0[1] % cells[1], (i0[1] + 1) % cells[1]
            fi, fj = fr[0][:, None], fr[1][None, :]
            top = coarse[a0][:, b0] * (1 - fj) + coarse[a0][:, b1] * fj
            bot = coarse[a1][:, b0] * (1 - fj) + coarse[a1][:, b1] * fj
            up = top * (1 - fi) + bot * fi
        out += amp * up
        total += amp
        amp *= 0.55
    out /= total
    return ((out - out.mean()) / (out.std() + 1e-6)).astype(np.float32)


_TABLES: dict | None = None


def _tables() -> dict:
    """Fixed noise textures, built once per process (deterministic)."""
    global _TABLES
    if _TABLES is None:
        rng = np.random.default_rng(20240917)
        n = 512
        _TABLES = {
            "n": n,
            "ridge": _fractal(rng, (4096,), 6),
            "cloud": _fractal(rng, (n, n), 5),
            "mottle": _fractal(rng, (n, n), 6),
            "pixel": rng.standard_normal((n, n)).astype(np.float32),
        }
    return _TABLES


# ------------------------------------------------------------------------ counter-based hashing
# Every random number of a view comes from a hash of (location, seed[, heading, size]) and a
# counter: fully vectorised over views, deterministic, independent of batch composition.

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * _C1
    x = (x ^ (x >> np.uint64(27))) * _C2
    return x ^ (x >> np.uint64(31))


def _keys(*parts) -> np.ndarray:
    h = np.full(np.shape(parts[0]), 0x5EED, dtype=np.uint64)
    for p in parts:
        h = _mix(h ^ np.asarray(p, np.int64).view(np.uint64))
    return h


def _uniforms(keys: np.ndarray, n: int) -> np.ndarray:
    """[N, n] uniforms in [0, 1) from [N] keys."""
    z = _mix(keys[:, None] + (np.arange(1, n + 1, dtype=np.uint64) * _C1)[None, :])
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0**53)


def _crop_index(n: int, r0: np.ndarray, c0: np.ndarray, S: int) -> np.ndarray:
    """Flat indices of per-view S x S windows of a periodic n x n texture: [N, S, S]."""
    ar = np.arange(S)
    ri = (r0[:, None] + ar[None, :]) % n
    ci = (c0[:, None] + ar[None, :]) % n
    return ri[:, :, None] * n + ci[:, None, :]


# ------------------------------------------------------------------------------ world lookups


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


HUMIDITY = np.array([0.35, 0.6, 0.08, 0.45, 0.45, 0.5])  # by Koppen class (0 = none)
VEG_TABLE = np.array([VEGETATION.get(i, (0, 0, 0)) for i in range(17)], np.float64)
T_PLAIN, T_WATER, T_STREET, T_FIELD, T_SAND, T_SNOW = range(6)
N_VIEW_U = 10  # per-view uniforms before the object block
N_OBJ_U = 6  # uniforms per object


def render_view(world, lat: float, lon: float, heading: float, seed: int, size: int = 64):
    """One view: uint8 [size, size, 3]. Same pixels as the matching row of `render_views`."""
    return render_views(world, [lat], [lon], [heading], [seed], size)[0]


CHUNK_PIXELS = 32 * 64 * 64  # views per vectorised chunk: working set stays in the CPU cache


def render_views(world, lat, lon, heading, seed, size: int = 64) -> np.ndarray:
    """uint8 [N, size, size, 3] ground-level views, vectorised over views (see module docs).
    Inputs are trusted here (World.render_view(s) validates them)."""
    S = int(size)
    if S < 8:
        raise ValueError(f"view size must be >= 8 px, got {size}")
    lat = np.asarray(lat, np.float64).reshape(-1)
    lon = np.asarray(lon, np.float64).reshape(-1)
    N = len(lat)
    heading = np.broadcast_to(np.asarray(heading, np.float64), (N,))
    seed = np.broadcast_to(np.asarray(seed, np.int64), (N,))
    chunk = max(1, CHUNK_PIXELS // (S * S))
    if chunk >= N:
        return _render_chunk(world, lat, lon, heading, seed, S)
    out = np.empty((N, S, S, 3), np.uint8)
    for i in range(0, N, chunk):
        j = slice(i, i + chunk)
        out[j] = _render_chunk(world, lat[j], lon[j], heading[j], seed[j], S)
    return out


def _render_chunk(world, lat, lon, heading, seed, S: int) -> np.ndarray:
    N = len(lat)
    t = _tables()
    nt = t["n"]
    g = _geometry(S)
    f, rows, cols, col_idx = g["f"], g["rows"], g["cols"], g["col_idx"]
    lat_q = np.rint(lat * 1e6).astype(np.int64)
    lon_q = np.rint(lon * 1e6).astype(np.int64)
    head_q = np.rint((heading % 360.0) * 1e4).astype(np.int64)
    scene_key = _keys(lat_q, lon_q, seed)
    U = _uniforms(scene_key, 16)  # scene: season, time, weather (shared by all headings)
    V = _uniforms(_keys(scene_key, head_q, np.full(N, S)), N_VIEW_U + N_OBJ_U * MAX_OBJECTS)

    # ------------------------------------------------------------------- local conditions
    r_pt, c_pt = grid.nearest_index(lat, lon)
    i_pt = r_pt * grid.WIDTH + c_pt
    on_land = np.take(world._land_flat, i_pt)
    lc = np.where(on_land, np.take(world._lc_flat, i_pt), 0).astype(np.int64)
    kg = np.take(world._kg_flat, i_pt).astype(np.int64)
    pop = np.take(world._pop_flat, i_pt).astype(np.float64) / world.population_scale
    bm_pt = np.take(world._rs_flat[:3], i_pt, axis=1).astype(np.float32)  # [3, N]
    elev0 = np.where(on_land, np.maximum(_bilinear_elevation(world, lat, lon), 0.0), 0.0)
    cam_h = (elev0 + CAM_H_M).astype(np.float32)

    # ------------------------------------------------------------------- sky and light
    decl = 23.4 * np.sin(2 * np.pi * U[:, 0])  # season
    sun_noon = 90.0 - np.abs(lat - decl)
    sun_elev = np.maximum(3.0, sun_noon * (0.35 + 0.65 * U[:, 1]))  # time of day
    light = 0.85 + 0.2 * np.sin(np.radians(np.minimum(sun_elev, 90.0)))  # ~auto exposure
    cover = np.clip(HUMIDITY[kg] * 1.25 * U[:, 2] + 0.12 * U[:, 3], 0.0, 0.95)
    overcast = cover > 0.72
    low_sun = sun_elev < 10.0
    zenith = (
        np.array((58, 112, 200), np.float64)[:, None]
        + (np.abs(lat) / 90.0) * np.array((30, 28, 12), np.float64)[:, None]
    )
    horizon_col = np.where(
        kg == 2, np.array((216, 208, 192.0))[:, None], np.array((188, 208, 228.0))[:, None]
    )
    horizon_col = np.where(
        low_sun, horizon_col * 0.5 + np.array((240, 168, 118.0))[:, None] * 0.5, horizon_col
    )
    zenith = np.where(low_sun, zenith * 0.8, zenith)
    grey = 150.0 + 50.0 * U[:, 4]
    zenith = np.where(overcast, np.stack([grey, grey + 3, grey + 8]), zenith)
    horizon_col = np.where(overcast, zenith + 18.0, horizon_col)
    light = np.where(overcast, light * 0.85, light)
    visibility = 25.0 + 120.0 * U[:, 5] * np.where(overcast, 0.5, 1.0) * np.where(kg == 1, 0.6, 1.0)
    horizon_row = S * (0.5 + 0.08 * (U[:, 6] - 0.5) + 0.04 * (V[:, 0] - 0.5))
    sun_side = np.where(U[:, 7] > 0.5, 1.0, -1.0)
    zenith = zenith.astype(np.float32)
    horizon_col = horizon_col.astype(np.float32)

    # ------------------------------------------------------------------- terrain layers
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
    ridge = t["ridge"]
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

    # ------------------------------------------------------------------- sky
    is_sky = layer == K
    tsky = np.clip(
        (horizon_row[:, None] - rows[None, :]) / np.maximum(horizon_row, 1.0)[:, None], 0, 1
    )
    tsky = (tsky**0.6).astype(np.float32)
    sky = horizon_col[:, :, None] * (1 - tsky) + zenith[:, :, None] * tsky  # [3, N, S]
    # one random window per view into each fixed texture (clouds, ground mottling, sensor noise)
    tex_idx = _crop_index(nt, (U[:, 8] * nt).astype(np.int64), (V[:, 2] * nt).astype(np.int64), S)
    cloud = np.take(t["cloud"], tex_idx)
    cl = np.clip((cloud - (1.6 - 3.0 * cover).astype(np.float32)[:, None, None]) * 0.7, 0.0, 1.0)
    cloud_col = np.where(overcast, 196.0, 245.0)[None, :] * np.ones((3, 1))
    cloud_col = np.where(low_sun, np.array((250, 200, 170.0))[:, None], cloud_col).astype(
        np.float32
    )
    sky_img = sky[:, :, :, None] + (cloud_col[:, :, None, None] - sky[:, :, :, None]) * cl
    img = np.where(is_sky, sky_img, img)

    # ------------------------------------------------------------------- near ground
    near = layer == 0
    g_col = _ground_colour(lc, kg, bm_pt, lat, elev0)[:, :, None, None]  # [3, N, 1, 1]
    dy = np.maximum(rows[None, :, None] - horizon_row[:, None, None].astype(np.float32), 0.5)
    u = (cols[None, None, :] + 0.5 - S / 2) / dy  # lateral / depth: constant towards the VP
    z = (f * CAM_H_M) / dy  # metres to the ground seen at that row (flat ground)
    mottle = np.take(t["mottle"], tex_idx)
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

    # ------------------------------------------------------------------- objects
    img = _draw_objects(img, lc, kg, pop, on_land, U, V, S, f, horizon_row, run_min[:, 0, S // 2])

    # ------------------------------------------------------------------- light, noise, out
    pn = np.take(t["pixel"], tex_idx) * np.float32(3.5) + np.float32(0.5)  # sensor noise
    img = img * light.astype(np.float32)[None, :, None, None] + pn
    img = np.clip(img, 0.0, 255.0).astype(np.uint8)
    out = np.empty((N, S, S, 3), np.uint8)
    out[..., 0], out[..., 1], out[..., 2] = img[0], img[1], img[2]
    return out


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
