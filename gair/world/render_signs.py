"""Roadside signs of the ground views: the regional cue.

Real street-view photos are taken from roads, and what pins them to a place is mostly made by
people: road signs, markings, bollards. The demo world's views had no such cue (only biome,
relief and sky), so a view could at best be placed in "a temperate plain at mid latitude"
anywhere on Earth. Here every view on land (not on ice) shows up to `MAX_SIGNS` sign posts
standing 3-8 m away beside the road, each a plate of two colour bands on a post.

The style is regional, as real sign conventions are (the Vienna convention's red-rimmed
triangles across Europe, yellow diamonds across the Americas, SADC signs in southern Africa):
the top band's colour is the continent's (8 colours, one per Natural Earth continent), the bottom
band's is the country's region (its continent's countries clustered by centroid into up to 7
regions of neighbours), and the post's colour (3) is a hash of the country's ISO-A3 code. So
neighbours may share a style and two continents never do. (World format 2 hashed the ISO code
into all three: 38 styles were shared across continents, Nigeria's with Canada's, by countries
that held 62% of the street views; no view could be placed on its continent by its sign.)
`regional_styles` computes the styles when the world is built; they are stored in the world's
manifest (`countries[i]["sign"]`).

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
# The top band's colour per Natural Earth continent (indices into SIGN_COLOURS).
CONTINENT_TOP = {
    "Europe": 0,  # red
    "North America": 1,  # yellow
    "Asia": 2,  # blue
    "Africa": 3,  # green
    "Oceania": 4,  # white
    "Antarctica": 5,  # black
    "South America": 6,  # orange
    "Seven seas (open ocean)": 7,  # brown
}
MAX_REGIONS = len(SIGN_COLOURS) - 1  # bottom colours: any but the top's


def _iso_hash(iso: str) -> int:
    return int.from_bytes(hashlib.blake2b(iso.encode(), digest_size=8).digest(), "little")


def regional_styles(iso: list[str], continent: list[str], centroid: np.ndarray) -> np.ndarray:
    """Sign style per country: int64 [n, 3] (top colour, bottom colour, post colour).

    iso, continent: per country; centroid: [n, 3] unit vectors of each country's land (NaN where
    it has none). Top: the continent's colour (`CONTINENT_TOP`; an unknown continent gets one by
    hash); bottom: the country's region, its continent's countries clustered by centroid into
    up to `MAX_REGIONS` (deterministic k-means, regions numbered west to east); post: a hash of
    the ISO code. Countries without an ISO code or land get -1 (no signs)."""
    n = len(iso)
    centroid = np.asarray(centroid, np.float64).reshape(n, 3)
    styles = np.full((n, 3), -1, np.int64)
    ok = np.array([bool(c) and c != "-99" for c in iso]) & np.isfinite(centroid).all(1)
    for cont in sorted({continent[i] for i in np.flatnonzero(ok)}):
        members = np.flatnonzero(ok & (np.asarray(continent, dtype=object) == cont))
        top = CONTINENT_TOP.get(cont, _iso_hash(cont) % len(SIGN_COLOURS))
        region = _regions(centroid[members], min(MAX_REGIONS, len(members)))
        bottoms = [c for c in range(len(SIGN_COLOURS)) if c != top]
        for i, r in zip(members, region, strict=True):
            styles[i] = (top, bottoms[r], _iso_hash(iso[i]) % len(POST_COLOURS))
    return styles


def _regions(xyz: np.ndarray, k: int, iters: int = 50) -> np.ndarray:
    """Deterministic k-means of unit vectors [m, 3] -> region per row in [0, k), numbered by
    the longitude of the region's mean (west to east). Seeds: farthest-point from the row
    nearest the mean."""
    mean = xyz.mean(0)
    seeds = [int(np.argmax(xyz @ mean))]
    for _ in range(1, k):
        d = np.min(np.stack([np.linalg.norm(xyz - xyz[s], axis=1) for s in seeds]), axis=0)
        seeds.append(int(np.argmax(d)))
    centres = xyz[seeds]
    for _ in range(iters):
        label = np.argmin(np.linalg.norm(xyz[:, None] - centres[None], axis=2), axis=1)
        new = np.stack(
            [xyz[label == j].mean(0) if (label == j).any() else centres[j] for j in range(k)]
        )
        if np.allclose(new, centres):
            break
        centres = new
    order = np.argsort(np.arctan2(centres[:, 1], centres[:, 0]), kind="stable")
    return np.argsort(order)[label]


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
