"""Roadside signs of the ground views: the country cue.

Real street-view photos are taken from roads, and what pins them to a country is mostly made
by people: road signs, markings, bollards. The demo world's views had no such cue (only biome,
relief and sky), so a view could at best be placed in "a temperate plain at mid latitude"
anywhere on Earth. Here every view on land (not on ice) shows up to `MAX_SIGNS` sign posts
standing 3-8 m away beside the road, each a plate of two colour bands on a post; the plate's
colours and the post's colour are the style of the country the view is in (a hash of its
ISO-A3 code: 8 colours x 7 second colours x 3 posts = 168 styles, so a few countries share one,
as neighbours often do in reality). Every such view has one sign; a second one is likelier the
more people live around.

The plate is 2 m wide and 1.4 m tall, 1.5-2.9 m above the ground: 8-21 px wide at 64 px, big
enough for a small ViT's 8 px patches to see its colours.
"""

from __future__ import annotations

import hashlib

import numpy as np

MAX_SIGNS = 2
N_SIGN_U = 4  # uniforms per sign: presence, depth, side, lateral offset

SIGN_COLOURS = np.array(
    [
        (200, 30, 30),  # red
        (235, 200, 20),  # yellow
        (30, 70, 190),  # blue
        (20, 130, 60),  # green
        (235, 235, 235),  # white
        (25, 25, 25),  # black
        (240, 120, 20),  # orange
        (120, 70, 30),  # brown
    ],
    np.float32,
)
POST_COLOURS = np.array([(120, 120, 125), (225, 225, 225), (30, 30, 30)], np.float32)
PLATE_W_M, PLATE_H_M, PLATE_BOTTOM_M, POST_W_M = 2.0, 1.4, 1.5, 0.15
_STYLES: dict[tuple, np.ndarray] = {}


def country_styles(country_iso) -> np.ndarray:
    """Sign style per country index: int64 [n, 3] (top colour, bottom colour, post colour);
    row 0 (no country) and unnamed countries are -1 (no signs)."""
    key = tuple(str(c) for c in country_iso)
    styles = _STYLES.get(key)
    if styles is None:
        styles = np.full((len(key), 3), -1, np.int64)
        for i, iso in enumerate(key):
            if not iso or iso == "-99":
                continue
            h = int.from_bytes(hashlib.blake2b(iso.encode(), digest_size=8).digest(), "little")
            top = h % 8
            bottom = (top + 1 + (h // 8) % 7) % 8
            styles[i] = (top, bottom, (h // 56) % 3)
        _STYLES[key] = styles
    return styles


def sign_presence(pop: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Whether each sign stands: [N, MAX_SIGNS] bool from population (log10 people within
    50 km) and a uniform per sign: the first sign always, the second with probability 0.2
    (empty land) to 0.8 (>= 10^5 people)."""
    p1 = np.ones_like(pop, dtype=np.float64)
    p2 = np.clip(0.2 + 0.6 * (pop - 2.0) / 3.0, 0.2, 0.8)
    return u < np.stack([p1, p2], 1)[:, : u.shape[1]]


def _draw_signs(img, style, on_land, lc, pop, W, horizon_row, f: float, cam_h: float, S: int):
    """Paints the sign posts over `img` [3, N, S, S]; `style` [N, 3] per view (-1: none),
    `W` [N, MAX_SIGNS * N_SIGN_U] uniforms. Farther signs first, so nearer ones cover them."""
    N = img.shape[1]
    u = W.reshape(N, MAX_SIGNS, N_SIGN_U)
    has = sign_presence(pop, u[:, :, 0]) & (on_land & (lc != 15) & (style[:, 0] >= 0))[:, None]
    if not has.any():
        return img
    depth = 3.0 + 5.0 * u[:, :, 1]  # metres ahead
    side = np.where(u[:, :, 2] < 0.5, -1.0, 1.0)
    lateral = side * (2.0 + 2.0 * u[:, :, 3])  # metres to the side of the camera axis
    rows = np.arange(S, dtype=np.float32)[None, :, None]
    cols = np.arange(S, dtype=np.float32)[None, None, :] + 0.5
    top_rgb = SIGN_COLOURS[np.maximum(style[:, 0], 0)].T[:, :, None, None]  # [3, N, 1, 1]
    bottom_rgb = SIGN_COLOURS[np.maximum(style[:, 1], 0)].T[:, :, None, None]
    post_rgb = POST_COLOURS[np.maximum(style[:, 2], 0)].T[:, :, None, None]
    for k in np.argsort(-depth, axis=1).T:  # per draw slot, the farther sign of each view
        pick = np.arange(N)
        z, x, on = depth[pick, k], lateral[pick, k], has[pick, k]
        px_per_m = (f / z).astype(np.float32)[:, None, None]
        ground = (horizon_row + f * cam_h / z).astype(np.float32)[:, None, None]
        centre = (S / 2 + x * f / z).astype(np.float32)[:, None, None]
        dx = np.abs(cols - centre)
        plate_lo = ground - PLATE_BOTTOM_M * px_per_m  # bottom edge row of the plate
        plate_hi = plate_lo - PLATE_H_M * px_per_m
        in_plate = (dx < 0.5 * PLATE_W_M * px_per_m) & (rows >= plate_hi) & (rows < plate_lo)
        post_w = np.maximum(0.5 * POST_W_M * px_per_m, 0.5)
        in_post = (dx < post_w) & (rows >= plate_lo) & (rows < ground)
        on = on[:, None, None]
        upper = rows < 0.5 * (plate_hi + plate_lo)
        colour = np.where(upper, top_rgb, bottom_rgb)
        img = np.where(in_plate & on, colour, img)
        img = np.where(in_post & on, post_rgb, img)
    return img
