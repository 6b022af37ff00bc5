"""Evaluation points: uniform random land points of each split, with their spatial blocks.

Probes are scored on random land points, not on photo locations, so that a number speaks for the
world's land (photos crowd into Europe and North America). Points are uniform on the sphere,
kept when the world says land, and split by the world's own rule (`World.split_of`): "train",
"val", "test", "buffer" (never used) and "unseen" (the stress-test region, sampled apart since it
is small). Every point carries its block: the held-out H3 block for val/test/unseen (what the
bootstrap resamples) and, for training points, the H3 resolution-1 cell that holds it (the groups
of the spatially blocked cross-validation: coarser than the held-out blocks, so that a fold's
validation points are far from most of its training points).
"""

from __future__ import annotations

import numpy as np

from gair.world.splits import cells_of

CV_GROUP_RES = 1


def random_land(world, n: int, seed: int, bbox=None) -> np.ndarray:
    """n uniform random land points [n, 2] (lat, lon degrees), optionally in a (W, S, E, N) box."""
    rng = np.random.default_rng(seed)
    out, have = [], 0
    s_lo, s_hi = (-1.0, 1.0) if bbox is None else np.sin(np.deg2rad([bbox[1], bbox[3]]))
    w, e = (-180.0, 180.0) if bbox is None else (bbox[0], bbox[2])
    for _ in range(1000):
        lat = np.rad2deg(np.arcsin(rng.uniform(s_lo, s_hi, 65536)))
        lon = rng.uniform(w, e, 65536)
        ll = np.stack([lat, lon], 1)
        ll = ll[world.labels(ll)["is_land"]]
        out.append(ll)
        have += len(ll)
        if have >= n:
            return np.concatenate(out)[:n]
    raise ValueError(f"could not draw {n} land points in {bbox}")


def eval_points(
    world, n_land: int = 16000, n_train: int = 6000, n_unseen: int = 800, seed: int = 0
) -> dict[str, dict]:
    """{split: {"latlon": [N, 2], "block": [N] str}} for train (at most n_train), val, test and
    unseen. Deterministic in the seed."""
    ll = random_land(world, n_land, seed)
    split = world.split_of(ll)
    res = int(world.manifest["splits"]["block_h3_res"])
    out = {}
    for name in ("train", "val", "test"):
        pts = ll[split == name]
        if name == "train" and len(pts) > n_train:
            pick = np.random.default_rng(seed + 1).choice(len(pts), n_train, replace=False)
            pts = pts[np.sort(pick)]
        block_res = CV_GROUP_RES if name == "train" else res
        out[name] = {"latlon": pts, "block": cells_of(pts[:, 0], pts[:, 1], block_res)}
    unseen_ll = _unseen_points(world, n_unseen, seed + 2)
    if len(unseen_ll):
        out["unseen"] = {
            "latlon": unseen_ll,
            "block": cells_of(unseen_ll[:, 0], unseen_ll[:, 1], res),
        }
    return out


def _unseen_points(world, n: int, seed: int) -> np.ndarray:
    """Random land points of the 'unseen' stress-test region (empty when the world has none)."""
    import h3

    region = world.manifest["splits"].get("unseen_block")
    if not region or n <= 0:
        return np.zeros((0, 2))
    boundary = np.asarray(h3.cell_to_boundary(region))
    bbox = (boundary[:, 1].min(), boundary[:, 0].min(), boundary[:, 1].max(), boundary[:, 0].max())
    if bbox[2] - bbox[0] > 180:  # crosses the antimeridian: not the case for the default region
        return np.zeros((0, 2))
    pts = random_land(world, 4 * n, seed, bbox)
    return pts[world.split_of(pts) == "unseen"][:n]
