"""Prediction intervals of a regression head, by split conformal prediction on the val split.

The head's errors are not the same everywhere (a lowland's elevation is off by metres, a
mountain's by hundreds), so the val points are cut into bins by their predicted value (quantile
edges) and each bin keeps its own residual quantiles (Mondrian conformal): a new prediction
`v` in bin b gets [v + lo[b], v + hi[b]], which holds the truth for `level` of the points like
it (exchangeability with val). Values and bounds are kept inside the range the training targets
spanned (`limits`: a population of log10(1 + people) is never below 0). numpy only, stored as
plain numbers in the run's config.json, so the app's answer before the model loads can show it
too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEVEL = 0.8
BINS = 4
MIN_PER_BIN = 50  # fewer val points per bin: fewer bins


@dataclass(frozen=True)
class Interval:
    level: float
    edges: tuple[float, ...]  # bin edges over the predicted value, ascending; len = bins - 1
    lo: tuple[float, ...]  # residual (truth - prediction) quantile at (1 - level) / 2, per bin
    hi: tuple[float, ...]  # ... and at (1 + level) / 2
    limits: tuple[float, float] | None = None  # the training targets' (min, max)

    def clip(self, values) -> np.ndarray:
        """Values [N] kept inside `limits` (unchanged without limits)."""
        v = np.asarray(values, np.float64)
        return v if self.limits is None else np.clip(v, *self.limits)

    def bounds(self, values) -> tuple[np.ndarray, np.ndarray]:
        """Predicted values [N] -> (low [N], high [N]) of the interval, inside `limits`."""
        v = np.asarray(values, np.float64)
        b = np.searchsorted(np.asarray(self.edges), v, side="right")
        return self.clip(v + np.asarray(self.lo)[b]), self.clip(v + np.asarray(self.hi)[b])

    def to_dict(self) -> dict:
        return {
            "method": "split conformal (Mondrian bins by predicted value), on the val split",
            "level": self.level,
            "edges": list(self.edges),
            "lo": list(self.lo),
            "hi": list(self.hi),
        } | ({"limits": list(self.limits)} if self.limits is not None else {})

    @classmethod
    def from_dict(cls, d, where: str = "interval") -> Interval:
        """ValueError naming `where` unless d holds a valid interval."""
        if not isinstance(d, dict):
            raise ValueError(f"{where} must be an object, got {d!r:.100}")
        level = d.get("level")
        if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
            raise ValueError(f"{where}: level must be in (0, 1), got {level!r}")
        parts = {key: _numbers(d.get(key), f"{where}: {key}") for key in ("edges", "lo", "hi")}
        n = len(parts["edges"]) + 1
        if len(parts["lo"]) != n or len(parts["hi"]) != n:
            raise ValueError(f"{where}: lo and hi need {n} values (one per bin of the edges)")
        if list(parts["edges"]) != sorted(parts["edges"]):
            raise ValueError(f"{where}: edges must be ascending")
        if any(a > b for a, b in zip(parts["lo"], parts["hi"])):
            raise ValueError(f"{where}: lo must not exceed hi in any bin")
        limits = d.get("limits")
        if limits is not None:
            limits = _numbers(limits, f"{where}: limits")
            if len(limits) != 2 or limits[0] > limits[1]:
                raise ValueError(f"{where}: limits must be [min, max], got {list(limits)!r}")
        return cls(float(level), parts["edges"], parts["lo"], parts["hi"], limits)


def _numbers(v, what: str) -> tuple[float, ...]:
    """A JSON list of finite numbers as floats; ValueError naming `what` otherwise."""
    if not isinstance(v, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v
    ):
        raise ValueError(f"{what} must be a list of finite numbers, got {v!r:.100}")
    return tuple(float(x) for x in v)


def fit(pred, truth, level: float = LEVEL, bins: int = BINS, limits=None) -> Interval:
    """The interval from val predictions [N] and their truths [N] (finite; N >= 10); `limits`
    (min, max): the range of the training targets, or None."""
    pred, truth = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    if pred.shape != truth.shape or pred.ndim != 1 or len(pred) < 10:
        raise ValueError(f"need >= 10 paired val predictions and truths, got {pred.shape}")
    bins = max(1, min(bins, len(pred) // MIN_PER_BIN))
    edges = np.quantile(pred, np.arange(1, bins) / bins) if bins > 1 else np.zeros(0)
    which = np.searchsorted(edges, pred, side="right")
    lo, hi = [], []
    for b in range(bins):
        r = np.sort(truth[which == b] - pred[which == b])
        lo.append(_conformal_quantile(r, (1 - level) / 2, low=True))
        hi.append(_conformal_quantile(r, (1 + level) / 2, low=False))
    if limits is not None:
        limits = (float(limits[0]), float(limits[1]))
    return Interval(float(level), tuple(map(float, edges)), tuple(lo), tuple(hi), limits)


def _conformal_quantile(sorted_r: np.ndarray, q: float, low: bool) -> float:
    """The finite-sample conformal quantile: the ceil((n + 1) q)-th smallest residual (or the
    floor for the lower end), clipped to the sample."""
    n = len(sorted_r)
    k = math.floor((n + 1) * q) if low else math.ceil((n + 1) * q)
    return float(sorted_r[min(max(k, 1), n) - 1])


def coverage(interval: Interval, pred, truth) -> float:
    """Share of points whose truth lies inside the interval of their prediction."""
    lo, hi = interval.bounds(pred)
    t = np.asarray(truth, np.float64)
    return float(np.mean((t >= lo) & (t <= hi)))
