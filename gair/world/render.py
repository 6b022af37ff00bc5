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
   population intensity (and urban land cover), with windows; then roadside signs in the colours
   of the country's continent and region (`render_signs`: the made-by-people cue that places
   real photos).
4. Sky and light: a gradient and clouds whose colour, cloud cover and brightness depend on
   latitude, climate and the seed (season, time of day, weather); haze; sensor noise.

What the views share with the RS chip (Blue Marble colours, land cover, relief) is the real
cross-view signal; the signs (and |latitude|, through the sky) are what ties a view to where it
is on Earth; seeds, headings and randomly placed objects are the real ambiguity.

Modules: `render_terrain` (palette, camera geometry, world lookups, terrain layers),
`render_ground` (near ground), `render_objects` (objects), `render_sky` (sky and light),
`render_noise` (noise textures and counter-based hashing); this module puts them together.

Implementation notes: images are built as colour planes [3, S, S] (numpy is slow at
broadcasting over a trailing axis of 3) and all gathers use `np.take` on flat arrays.
"""

from __future__ import annotations

import numpy as np

from gair.world import grid
from gair.world.render_ground import _near_ground
from gair.world.render_noise import _crop_index, _keys, _tables, _uniforms
from gair.world.render_objects import MAX_OBJECTS, N_OBJ_U, N_VIEW_U, _draw_objects
from gair.world.render_signs import MAX_SIGNS, N_SIGN_U, _draw_signs
from gair.world.render_sky import _paint_sky, _sky_and_light
from gair.world.render_terrain import (
    CAM_H_M,
    DISTANCES_KM,
    _bilinear_elevation,
    _geometry,
    _terrain_layers,
)


def render_view(world, lat: float, lon: float, heading: float, seed: int, size: int = 64):
    """One view: uint8 [size, size, 3]. Same pixels as the matching row of `render_views`."""
    return render_views(world, [lat], [lon], [heading], [seed], size)[0]


CHUNK_PIXELS = 32 * 64 * 64  # views per vectorised chunk: working set stays in the CPU cache


def render_views(world, lat, lon, heading, seed, size: int = 64, signs: bool = True) -> np.ndarray:
    """uint8 [N, size, size, 3] ground-level views, vectorised over views (see module docs).
    Inputs are trusted here (World.render_view(s) validates them). `signs=False` leaves the
    roadside signs out (the planted country cue), all else equal: the ablation of `gair eval`."""
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
        return _render_chunk(world, lat, lon, heading, seed, S, signs)
    out = np.empty((N, S, S, 3), np.uint8)
    for i in range(0, N, chunk):
        j = slice(i, i + chunk)
        out[j] = _render_chunk(world, lat[j], lon[j], heading[j], seed[j], S, signs)
    return out


def _render_chunk(world, lat, lon, heading, seed, S: int, signs: bool = True) -> np.ndarray:
    N = len(lat)
    t = _tables()
    nt = t["n"]
    g = _geometry(S)
    f = g["f"]
    lat_q = np.rint(lat * 1e6).astype(np.int64)
    lon_q = np.rint(lon * 1e6).astype(np.int64)
    head_q = np.rint((heading % 360.0) * 1e4).astype(np.int64)
    scene_key = _keys(lat_q, lon_q, seed)
    U = _uniforms(scene_key, 16)  # scene: season, time, weather (shared by all headings)
    V = _uniforms(_keys(scene_key, head_q, np.full(N, S)), N_VIEW_U + N_OBJ_U * MAX_OBJECTS)
    W = _uniforms(_keys(scene_key, head_q, np.full(N, S + 0x516E)), MAX_SIGNS * N_SIGN_U)

    # ------------------------------------------------------------------- local conditions
    r_pt, c_pt = grid.nearest_index(lat, lon)
    i_pt = r_pt * grid.WIDTH + c_pt
    on_land = np.take(world._land_flat, i_pt)
    lc = np.where(on_land, np.take(world._lc_flat, i_pt), 0).astype(np.int64)
    kg = np.take(world._kg_flat, i_pt).astype(np.int64)
    pop = np.take(world._pop_flat, i_pt).astype(np.float64) / world.population_scale
    style = np.take(world.sign_style, np.take(world._country_flat, i_pt), axis=0)
    bm_pt = np.take(world._rs_flat[:3], i_pt, axis=1).astype(np.float32)  # [3, N]
    elev0 = np.where(on_land, np.maximum(_bilinear_elevation(world, lat, lon), 0.0), 0.0)
    cam_h = (elev0 + CAM_H_M).astype(np.float32)

    # ------------------------------------------------------------------- sky and light
    scene = _sky_and_light(lat, kg, U, V, S)
    horizon_row = scene["horizon_row"]

    # ------------------------------------------------------------------- terrain layers
    img, layer, table, run_min = _terrain_layers(
        world, lat, lon, heading, kg, elev0, cam_h, V, t["ridge"], g, scene, S
    )

    # ------------------------------------------------------------------- sky
    # one random window per view into each fixed texture (clouds, ground mottling, sensor noise)
    tex_idx = _crop_index(nt, (U[:, 8] * nt).astype(np.int64), (V[:, 2] * nt).astype(np.int64), S)
    img = _paint_sky(
        img, layer == len(DISTANCES_KM), scene, np.take(t["cloud"], tex_idx), g["rows"]
    )

    # ------------------------------------------------------------------- near ground
    mottle = np.take(t["mottle"], tex_idx)
    img = _near_ground(
        img, layer == 0, lat, lc, kg, bm_pt, elev0, U, horizon_row, table, mottle, g, S
    )

    # ------------------------------------------------------------------- objects
    img = _draw_objects(img, lc, kg, pop, on_land, U, V, S, f, horizon_row, run_min[:, 0, S // 2])
    if signs:
        img = _draw_signs(img, style, on_land, lc, pop, W, horizon_row, f, CAM_H_M, S)

    # ------------------------------------------------------------------- light, noise, out
    pn = np.take(t["pixel"], tex_idx) * np.float32(3.5) + np.float32(0.5)  # sensor noise
    img = img * scene["light"].astype(np.float32)[None, :, None, None] + pn
    img = np.clip(img, 0.0, 255.0).astype(np.uint8)
    out = np.empty((N, S, S, 3), np.uint8)
    out[..., 0], out[..., 1], out[..., 2] = img[0], img[1], img[2]
    return out
