"""Randomness of the ground-view renderer: fixed noise textures (ridges, clouds, ground
mottling, sensor noise) and counter-based hashing.

Every random number of a view comes from a hash of (location, seed[, heading, size]) and a
counter: fully vectorised over views, deterministic, independent of batch composition.
"""

from __future__ import annotations

import numpy as np


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
