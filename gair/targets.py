"""Target transforms of the regression heads: what a head is fitted on, and the way back.

A head may be fitted on a transform of its target instead of the target itself, when that does
better on the val split (`gair.evaluation.heads_select`): "asinh:S" fits t = asinh(y / S), a
heavy-tailed target such as elevation made near-linear around 0 and logarithmic beyond +-S
(S in the target's units; the head's errors then scale with the value, so low plains are not
given the error of the Himalaya). "identity" fits y. The head stores the name; `inverse` maps its
outputs back to the target's units.
"""

from __future__ import annotations

import math

import numpy as np

IDENTITY = "identity"


def parse(name: str) -> tuple[str, float]:
    """ "identity" -> ("identity", 1.0); "asinh:S" -> ("asinh", S). ValueError otherwise."""
    if name == IDENTITY:
        return IDENTITY, 1.0
    kind, _, scale = str(name).partition(":")
    try:
        s = float(scale)
    except ValueError:
        s = float("nan")
    if kind != "asinh" or not (math.isfinite(s) and s > 0):
        raise ValueError(f"target transform must be 'identity' or 'asinh:S' (S > 0), got {name!r}")
    return kind, s


def asinh_for(y: np.ndarray) -> str:
    """The asinh transform scaled to a target's typical size: S = its median |value| (> 0)."""
    s = float(np.median(np.abs(np.asarray(y, np.float64))))
    return f"asinh:{max(s, 1e-6):.6g}"


def forward(name: str, y: np.ndarray) -> np.ndarray:
    kind, s = parse(name)
    y = np.asarray(y)  # identity: unchanged (class indices stay integers)
    return y if kind == IDENTITY else np.arcsinh(y.astype(np.float64) / s)


def inverse(name: str, t: np.ndarray) -> np.ndarray:
    kind, s = parse(name)
    t = np.asarray(t)
    return t if kind == IDENTITY else (s * np.sinh(t.astype(np.float64))).astype(t.dtype)
