"""Evaluation metrics, spatial block-bootstrap intervals and tidy result rows.

Points are grouped into spatial blocks (integer or string ids, one per point). Intervals come from
resampling whole blocks with replacement, so spatially correlated points move together and the
interval reflects the number of independent blocks rather than the number of points. Two methods
bootstrapped with the same ``blocks`` and ``seed`` see exactly the same block draws (paired).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "balanced_accuracy": True,
    "macro_f1": True,
    "mae": False,
    "rmse": False,
    "skill": True,
    "r2": True,
    "log_loss": False,
    "nll": False,
    "brier": False,
    "ece": False,
    # a regression head's 80% interval: the share of truths inside (should be ~0.8; more is
    # safer), and its median width (narrower is more useful)
    "interval80_coverage": True,
    "interval80_median_width": False,
    "median_km": False,
    "mean_km": False,
    "within_1km": True,
}

_WITHIN_KM = re.compile(r"^within_\d+(\.\d+)?km$")


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better.

    Known names come from ``HIGHER_IS_BETTER``; ``within_<X>km`` (share of points within X km) is
    higher-is-better and any other ``..._km`` name (a distance such as ``median_km``) is
    lower-is-better. Unknown names raise ValueError.
    """
    if metric in HIGHER_IS_BETTER:
        return HIGHER_IS_BETTER[metric]
    if _WITHIN_KM.match(metric) or re.fullmatch(r"R@\d+", metric):
        return True  # shares within a radius, recall at k
    if metric.endswith("_km"):
        return False
    raise ValueError(
        f"unknown metric {metric!r}: cannot tell whether higher is better "
        f"(known: {sorted(HIGHER_IS_BETTER)}, within_<X>km, <name>_km)"
    )


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def _check_pair(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must be 1-D of the same length, got shapes {y_true.shape} "
            f"and {y_pred.shape}"
        )
    if y_true.size == 0:
        raise ValueError("y_true is empty: no points to score")


def calibration_metrics(y_true, probs, n_bins: int = 10) -> dict[str, float]:
    """How honest a classifier's probabilities are. y_true [N] class indices, probs [N, C].

    ece: expected calibration error, the gap between confidence (top probability) and accuracy
    averaged over `n_bins` equal-width confidence bins weighted by their share of points (0 is
    perfect; a head that says 0.9 and is right half the time scores 0.4 there);
    log_loss: mean negative log probability of the true class (nats; probabilities floored at
    1e-12).
    """
    y_true = np.asarray(y_true).astype(np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or y_true.shape != probs.shape[:1]:
        raise ValueError(
            f"probs must be [N, C] with N = len(y_true), got {probs.shape} for {y_true.shape}"
        )
    if y_true.size == 0:
        raise ValueError("y_true is empty: no points to score")
    if y_true.min() < 0 or y_true.max() >= probs.shape[1]:
        raise ValueError(f"y_true holds classes outside 0..{probs.shape[1] - 1}")
    conf = probs.max(1)
    right = (probs.argmax(1) == y_true).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(
        np.bincount(bins, right, minlength=n_bins) - np.bincount(bins, conf, minlength=n_bins)
    )
    p_true = np.maximum(probs[np.arange(y_true.size), y_true], 1e-12)
    return {
        "ece": float(gap.sum() / count.sum()),
        "log_loss": float(-np.log(p_true).mean()),
    }


def classification_metrics(y_true, y_pred, n_classes: int) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro-F1 of integer class predictions.

    y_true, y_pred: [N] class indices in [0, n_classes).

    - ``accuracy``: share of points with y_pred == y_true.
    - ``balanced_accuracy``: mean recall over the classes present in y_true.
    - ``macro_f1``: mean F1 over the classes present in y_true OR y_pred. A class that appears in
      neither has no defined F1 and is left out (counting it as 0 would make the score depend on
      how many unused classes the label space happens to have). A class predicted but never true
      (or true but never predicted) has F1 = 0 and is included.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    _check_pair(y_true, y_pred)
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    for name, arr in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
        if arr.min() < 0 or arr.max() >= n_classes:
            raise ValueError(
                f"{name} has class index out of [0, {n_classes}): min {arr.min()}, max {arr.max()}"
            )
    cm = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    cm = cm.reshape(n_classes, n_classes)  # rows: true class, columns: predicted class
    tp = np.diag(cm).astype(np.float64)
    n_true = cm.sum(1)
    n_pred = cm.sum(0)
    present_true = n_true > 0
    present_any = present_true | (n_pred > 0)
    recall = tp[present_true] / n_true[present_true]
    # F1 = 2 tp / (n_true + n_pred); the denominator is > 0 for every class in present_any.
    f1 = 2.0 * tp[present_any] / (n_true[present_any] + n_pred[present_any])
    return {
        "accuracy": float(tp.sum() / y_true.size),
        "balanced_accuracy": float(recall.mean()),
        "macro_f1": float(f1.mean()),
    }


def regression_metrics(y_true, y_pred, train_mean: float) -> dict[str, float]:
    """MAE, RMSE and skill of real-valued predictions (all in the target's units).

    y_true, y_pred: [N] floats. train_mean: the training-set target mean (a float).
    ``skill`` = 1 - MSE(y_pred) / MSE(train_mean predictor), both on these points: 1 is perfect,
    0 is no better than predicting the training mean, negative is worse. NaN when the points'
    targets all equal train_mean (the reference MSE is 0).
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    _check_pair(y_true, y_pred)
    err = y_pred - y_true
    mse = float(np.mean(err**2))
    ref = float(np.mean((y_true - float(train_mean)) ** 2))
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(mse)),
        "skill": 1.0 - mse / ref if ref > 0 else float("nan"),
    }


# ---------------------------------------------------------------------------------------------
# Block bootstrap
# ---------------------------------------------------------------------------------------------


def _as_arrays(arrays: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    out = {}
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.ndim == 0 or arr.shape[0] != n:
            raise ValueError(
                f"array {name!r} must have {n} rows (one per block id), got shape {arr.shape}"
            )
        out[name] = arr
    return out


def _block_draws(blocks, n_boot: int, seed: int):
    """Yield n_boot index arrays, each the concatenated points of blocks drawn with replacement.

    The unique block ids (sorted) are drawn uniformly, as many as there are unique blocks; all
    points of a drawn block are taken, duplicates kept. Deterministic for (blocks, n_boot, seed).
    """
    blocks = np.asarray(blocks)
    if blocks.ndim != 1:
        raise ValueError(f"blocks must be 1-D (one block id per point), got shape {blocks.shape}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    _, inverse = np.unique(blocks, return_inverse=True)
    counts = np.bincount(inverse)
    n_blocks = counts.size
    if n_blocks < 2:
        raise ValueError(f"block bootstrap needs at least 2 unique blocks, got {n_blocks}")
    order = np.argsort(inverse, kind="stable")  # points grouped by block
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    draws = np.random.default_rng(seed).integers(0, n_blocks, size=(n_boot, n_blocks))
    for draw in draws:
        lengths = counts[draw]
        ends = np.cumsum(lengths)
        # position j in the output belongs to drawn block b: order[starts[b] + (j - out_start)]
        shift = np.repeat(starts[draw] - (ends - lengths), lengths)
        yield order[shift + np.arange(ends[-1])]


def _interval(samples: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return float(lo), float(hi)


def block_bootstrap(
    metric_fn: Callable[..., float],
    blocks,
    n_boot: int = 1000,
    seed: int = 0,
    **arrays,
) -> tuple[float, float, float, np.ndarray]:
    """Point estimate and 95% block-bootstrap percentile interval of ``metric_fn(**arrays)``.

    blocks: [N] block id per point. arrays: named arrays with N rows (e.g. y_true=..., y_pred=...),
    passed to metric_fn by name, each resampled along its first axis.
    Returns (point on all points, 2.5th percentile, 97.5th percentile, samples [n_boot]).
    Same blocks and seed give the same block draws, so bootstraps of two methods are paired.
    A metric that returns NaN on some draw makes the interval NaN (nothing is silently dropped).
    """
    blocks = np.asarray(blocks)
    data = _as_arrays(arrays, blocks.shape[0] if blocks.ndim else -1)
    samples = np.empty(n_boot, dtype=np.float64)
    for i, idx in enumerate(_block_draws(blocks, n_boot, seed)):
        samples[i] = metric_fn(**{k: v[idx] for k, v in data.items()})
    point = float(metric_fn(**data))
    lo, hi = _interval(samples)
    return point, lo, hi, samples


def paired_difference(
    metric_fn: Callable[..., float],
    blocks,
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """metric(a) - metric(b) on the same points, with a paired 95% block-bootstrap interval.

    a, b: dicts of named arrays with N rows for method A and method B (e.g. {"y_true", "y_pred"}),
    passed to metric_fn by name. Every bootstrap draw uses the same blocks for both methods.
    Returns (difference on all points, 2.5th percentile, 97.5th percentile).
    """
    blocks = np.asarray(blocks)
    n = blocks.shape[0] if blocks.ndim else -1
    da, db = _as_arrays(a, n), _as_arrays(b, n)
    samples = np.empty(n_boot, dtype=np.float64)
    for i, idx in enumerate(_block_draws(blocks, n_boot, seed)):
        ma = metric_fn(**{k: v[idx] for k, v in da.items()})
        mb = metric_fn(**{k: v[idx] for k, v in db.items()})
        samples[i] = ma - mb
    diff = float(metric_fn(**da) - metric_fn(**db))
    lo, hi = _interval(samples)
    return diff, lo, hi


# ---------------------------------------------------------------------------------------------
# Tidy rows
# ---------------------------------------------------------------------------------------------


_higher_is_better_lookup = higher_is_better  # `row` shadows the name with its keyword


def _plain(value: Any) -> Any:
    """numpy scalars -> python scalars; everything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    clash = sorted(set(base) & set(extra))
    if clash:
        raise ValueError(f"extra keys {clash} clash with the standard columns")
    return {**base, **{k: _plain(v) for k, v in extra.items()}}


def row(
    task: str,
    method: str,
    input: str,
    metric: str,
    point: float,
    lo: float,
    hi: float,
    n: int,
    split: str,
    *,
    higher_is_better: bool | None = None,
    **extra,
) -> dict[str, Any]:
    """One tidy result row.

    Keys: task, method, input, metric, higher_is_better, mean, ci_low, ci_high, n, split, then the
    extra keys. ``higher_is_better`` is looked up from the metric name unless given.
    """
    hib = _higher_is_better_lookup(metric) if higher_is_better is None else bool(higher_is_better)
    base = {
        "task": task,
        "method": method,
        "input": input,
        "metric": metric,
        "higher_is_better": hib,
        "mean": float(point),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "n": int(n),
        "split": split,
    }
    return _merge(base, extra)


def comparison(
    task: str,
    method: str,
    baseline: str,
    metric: str,
    diff: float,
    lo: float,
    hi: float,
    **extra,
) -> dict[str, Any]:
    """One tidy paired-comparison row: metric(method) - metric(baseline) with its interval.

    Keys: task, method, baseline, metric, diff_mean, diff_ci_low, diff_ci_high, then extra keys.
    """
    base = {
        "task": task,
        "method": method,
        "baseline": baseline,
        "metric": metric,
        "diff_mean": float(diff),
        "diff_ci_low": float(lo),
        "diff_ci_high": float(hi),
    }
    return _merge(base, extra)
