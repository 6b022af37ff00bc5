"""Spatially blocked train/val/test splits with a buffer.

Blocks are H3 cells (resolution 0 by default: 122 regions ~2,000 km across, roughly equal area,
no trouble at the poles or the antimeridian). Blocks are visited in the order of a seeded hash of
their id and given to val, then test, until each holds its target share of the street-view
locations (a block that would take a split past `split_slack` x its target is left in train).
All other blocks are train.

Buffer: a point in a train block that lies within `buffer_km` of any val/test block is "buffer"
(used by nobody for training). The distance is to the held-out block itself (its boundary,
sampled every few km, plus a margin for the sampling), so it is at least the distance to any
held-out location, and it works for arbitrary points (`Splits.split_of`).

Why 340 km: a training chip of the demo world is 32 px x 1/15 deg = 2.13 deg square; the training
point may sit anywhere in it (random offset), so the chip reaches up to one full chip diagonal
from its point: 335 km at the equator, less elsewhere. A buffer >= that diagonal guarantees that
no training chip (32 px or smaller, any offset) contains a held-out location.
"""

from __future__ import annotations

import hashlib

import numpy as np

from gair.world import grid

SPLITS = ("train", "val", "test", "buffer")
_SAMPLE_KM = 5.0  # spacing of the boundary samples


def _hash01(seed: int, cell: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{cell}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def cells_of(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    import h3

    lat = np.asarray(lat, np.float64).ravel()
    lon = np.asarray(lon, np.float64).ravel()
    return np.array([h3.latlng_to_cell(a, b, res) for a, b in zip(lat.tolist(), lon.tolist())])


def max_chip_px_for_buffer(buffer_km: float) -> int:
    """Largest square chip (px on the world grid) whose full diagonal stays within the buffer."""
    px_km = grid.KM_PER_DEG * grid.DEG_PER_PX
    return int(np.floor(buffer_km / (np.sqrt(2.0) * px_km)))


class Splits:
    """Split lookup for arbitrary points, from the held-out blocks."""

    def __init__(self, heldout: dict[str, str], res: int, buffer_km: float):
        import h3
        from scipy.spatial import cKDTree

        self.heldout = dict(heldout)
        self.res = int(res)
        self.buffer_km = float(buffer_km)
        samples = []
        for cell in self.heldout:
            boundary = np.asarray(h3.cell_to_boundary(cell), np.float64)  # (lat, lng) vertices
            v = grid.unit_vectors(boundary[:, 0], boundary[:, 1])
            w = np.roll(v, -1, axis=0)
            for a, b in zip(v, w):
                length_km = grid.chord_to_km(np.linalg.norm(a - b))
                n = max(2, int(np.ceil(length_km / _SAMPLE_KM)))
                t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
                p = a * (1 - t) + b * t  # great-circle arc after normalising
                samples.append(p / np.linalg.norm(p, axis=1, keepdims=True))
        self._tree = cKDTree(np.concatenate(samples)) if samples else None

    def distance_to_heldout_km(self, lat, lon) -> np.ndarray:
        """Great-circle km from each point to the nearest held-out block boundary (0 inside)."""
        lat = np.asarray(lat, np.float64)
        if self._tree is None:
            return np.full(lat.shape, np.inf)
        d, _ = self._tree.query(grid.unit_vectors(lat, np.asarray(lon, np.float64)))
        return grid.chord_to_km(d)

    def block_split(self, cells: np.ndarray) -> np.ndarray:
        return np.array([self.heldout.get(c, "train") for c in cells.tolist()], dtype=object)

    def split_of(self, lat, lon) -> np.ndarray:
        """ "train", "val", "test" or "buffer" for each point (shape of lat)."""
        lat = np.asarray(lat, np.float64)
        shape = lat.shape
        cells = cells_of(lat, lon, self.res)
        split = self.block_split(cells)
        train = split == "train"
        if train.any():
            # margin: the boundary is sampled every _SAMPLE_KM, so the true distance may be up to
            # half a spacing (plus the chord's sag) shorter than the sampled one
            d = self.distance_to_heldout_km(lat.ravel()[train], np.asarray(lon).ravel()[train])
            near = d < self.buffer_km + _SAMPLE_KM
            idx = np.flatnonzero(train)[near]
            split[idx] = "buffer"
        return split.astype(str).reshape(shape)


def choose_heldout(cells: np.ndarray, params: dict) -> dict[str, str]:
    """Seeded-hash order over the occupied blocks; fill val then test up to their targets."""
    uniq, counts = np.unique(cells, return_counts=True)
    n = len(cells)
    order = sorted(range(len(uniq)), key=lambda i: _hash01(params["split_seed"], str(uniq[i])))
    targets = {"val": params["val_fraction"] * n, "test": params["test_fraction"] * n}
    totals = {"val": 0, "test": 0}
    heldout = {}
    for i in order:
        for split in ("val", "test"):
            limit = targets[split] * params["split_slack"]
            if totals[split] < targets[split] and totals[split] + counts[i] <= limit:
                heldout[str(uniq[i])] = split
                totals[split] += int(counts[i])
                break
    return heldout


def assign_splits(sv, params: dict):
    """-> (manifest entry, split per location, block per location)."""
    lat, lon = sv["lat"].to_numpy(), sv["lon"].to_numpy()
    res = params["block_h3_res"]
    cells = cells_of(lat, lon, res)
    heldout = choose_heldout(cells, params)
    splits = Splits(heldout, res, params["buffer_km"])
    split = splits.split_of(lat, lon)
    info = {
        "scheme": f"H3 resolution {res} blocks, seeded-hash greedy fill of val then test",
        "block_h3_res": res,
        "seed": params["split_seed"],
        "targets": {"val": params["val_fraction"], "test": params["test_fraction"]},
        "buffer_km": params["buffer_km"],
        "buffer_rule": "train-block points within buffer_km of any val/test block are 'buffer'",
        "max_chip_px_any_offset": max_chip_px_for_buffer(params["buffer_km"]),
        "heldout_blocks": heldout,
    }
    return info, split, cells
