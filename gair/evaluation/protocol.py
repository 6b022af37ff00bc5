"""Standard probes on frozen features: CV-tuned ridge and logistic regression, kNN, an early-stopped
MLP and a constant baseline, each exportable as plain tensors for a deployed head.

Every probe takes features x [N, D] (float) and targets y [N]: class indices in [0, n_classes) for
``kind="classification"``, floats for ``kind="regression"``. Features are standardised inside each
probe with the training mean and std (std clamped at 1e-6); regression targets likewise where the
probe is fitted by a loss (ridge, MLP). Hyperparameters of ridge and logistic regression are
chosen by GroupKFold cross-validation over spatial block ids, so held-out folds are whole blocks.

Fitted classification probes give ``predict(x)`` [N] class indices, ``predict_proba(x)`` [N, C]
over all n_classes classes and ``logits(x)`` [N, C]; a class absent from the training targets gets
the logit ``ABSENT_LOGIT`` and so probability exactly 0. Regression probes give ``predict(x)`` [N].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

KINDS = ("classification", "regression")
ABSENT_LOGIT = -1e4  # logit of a class never seen in training: softmax probability exactly 0
STD_FLOOR = 1e-6
_LOG_EPS = 1e-12  # probability floor inside the CV log-loss
DEFAULT_ALPHAS = tuple(np.logspace(-2, 5, 15).tolist())  # ridge penalties tried by CV
DEFAULT_CS = tuple(np.logspace(-4, 2, 9).tolist())  # logistic inverse penalties tried by CV


# ---------------------------------------------------------------------------------------------
# Input checks and helpers
# ---------------------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _check_x(x, name: str = "x") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array [N, D], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_y(y, n: int, kind: str, n_classes: int | None, name: str = "y") -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match the features, got {y.shape}")
    if kind == "regression":
        y = y.astype(np.float64)
        if not np.isfinite(y).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        return y
    if n_classes is None or n_classes < 1:
        raise ValueError(f"classification needs n_classes >= 1, got {n_classes}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(
            f"{name} has class index out of [0, {n_classes}): min {y.min()}, max {y.max()}"
        )
    return y.astype(np.int64)


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and std [D] (clamped at STD_FLOOR) of x [N, D]."""
    return x.mean(0), np.maximum(x.std(0), STD_FLOOR)


def _group_folds(groups, n: int, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """GroupKFold (train_idx, val_idx) pairs over the block ids ``groups`` [N]."""
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(
            f"groups must have shape ({n},) (one block id per point), got {groups.shape}"
        )
    n_groups = np.unique(groups).size
    if n_groups < 2:
        raise ValueError(f"cross-validation needs at least 2 distinct groups, got {n_groups}")
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    splitter = GroupKFold(n_splits=min(n_folds, n_groups))
    return list(splitter.split(np.zeros((n, 1)), groups=groups))


def _to_tensor(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float32).clone()


# ---------------------------------------------------------------------------------------------
# Linear probe (ridge, logistic, constant)
# ---------------------------------------------------------------------------------------------


@dataclass
class LinearProbe:
    """out = ((x - x_mean) / x_std) @ weight.T + bias.

    Regression: value = out[:, 0] * y_std + y_mean. Classification: logits = out [N, C].
    Shapes: x_mean, x_std [D]; weight [out, D]; bias, y_mean, y_std [out] (y_mean = 0 and
    y_std = 1 for classification).
    """

    kind: str
    x_mean: np.ndarray = field(repr=False)
    x_std: np.ndarray = field(repr=False)
    weight: np.ndarray = field(repr=False)
    bias: np.ndarray = field(repr=False)
    y_mean: np.ndarray = field(repr=False)
    y_std: np.ndarray = field(repr=False)
    alpha: float | None = None  # ridge penalty chosen by CV
    C: float | None = None  # logistic inverse penalty chosen by CV
    cv_score: float | None = None  # pooled out-of-fold loss at the chosen value (lower = better)
    cv_scores: np.ndarray | None = field(default=None, repr=False)  # per candidate value

    def _out(self, x) -> np.ndarray:
        x = _check_x(x)
        if x.shape[1] != self.x_mean.shape[0]:
            raise ValueError(
                f"x has {x.shape[1]} features, the probe expects {self.x_mean.shape[0]}"
            )
        return ((x - self.x_mean) / self.x_std) @ self.weight.T + self.bias

    def logits(self, x) -> np.ndarray:
        """Class logits [N, C] (classification only)."""
        if self.kind != "classification":
            raise ValueError("logits() is only defined for classification probes")
        return self._out(x)

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities [N, C] (classification only)."""
        return softmax(self.logits(x), axis=1)

    def predict(self, x) -> np.ndarray:
        """Class indices [N] (classification) or values [N] in target units (regression)."""
        if self.kind == "classification":
            return self.logits(x).argmax(1)
        return self._out(x)[:, 0] * self.y_std[0] + self.y_mean[0]

    def export(self) -> dict:
        """{"kind": "linear", x_mean, x_std, weight, bias, y_mean, y_std} as float32 tensors."""
        names = ("x_mean", "x_std", "weight", "bias", "y_mean", "y_std")
        return {"kind": "linear", **{k: _to_tensor(getattr(self, k)) for k in names}}


def _ridge_path(xs: np.ndarray, ys: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Ridge weights [A, D] minimising |ys - xs w|^2 + alpha |w|^2 for each alpha (centred data)."""
    u, s, vt = np.linalg.svd(xs, full_matrices=False)
    uty = u.T @ ys  # [K]
    shrink = s[None, :] / (s[None, :] ** 2 + alphas[:, None])  # [A, K]
    return (shrink * uty[None, :]) @ vt


def fit_ridge(
    x,
    y,
    groups,
    alphas=DEFAULT_ALPHAS,
    n_folds: int = 5,
) -> LinearProbe:
    """Closed-form ridge regression with alpha chosen by GroupKFold CV over ``groups``.

    x [N, D], y [N] floats, groups [N] block ids. Features and target are standardised (with each
    fold's own training statistics inside CV); alpha penalises |w|^2 in standardised units against
    the summed squared error. The chosen alpha minimises the pooled out-of-fold MSE (target units,
    recorded as ``cv_score``); the probe is then refitted on all points. Records ``.alpha``.
    """
    x = _check_x(x)
    y = _check_y(y, x.shape[0], "regression", None)
    alphas = np.asarray(alphas, dtype=np.float64).ravel()
    if alphas.size == 0 or (alphas <= 0).any():
        raise ValueError(f"alphas must be a non-empty list of positive values, got {alphas}")
    sq_err = np.zeros(alphas.size)
    for tr, va in _group_folds(groups, x.shape[0], n_folds):
        xm, xsd = _standardiser(x[tr])
        ym, ysd = y[tr].mean(), max(y[tr].std(), STD_FLOOR)
        w = _ridge_path((x[tr] - xm) / xsd, (y[tr] - ym) / ysd, alphas)  # [A, D]
        pred = ((x[va] - xm) / xsd) @ w.T * ysd + ym  # [Nva, A]
        sq_err += ((pred - y[va, None]) ** 2).sum(0)
    cv_mse = sq_err / x.shape[0]
    best = int(np.argmin(cv_mse))
    xm, xsd = _standardiser(x)
    ym, ysd = y.mean(), max(y.std(), STD_FLOOR)
    w = _ridge_path((x - xm) / xsd, (y - ym) / ysd, alphas[best : best + 1])  # [1, D]
    return LinearProbe(
        kind="regression",
        x_mean=xm,
        x_std=xsd,
        weight=w,
        bias=np.zeros(1),
        y_mean=np.array([ym]),
        y_std=np.array([ysd]),
        alpha=float(alphas[best]),
        cv_score=float(cv_mse[best]),
        cv_scores=cv_mse,
    )


def _logistic_params(
    clf: LogisticRegression | None, present: np.ndarray, n_classes: int, d: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weight [C, D] and bias [C] over all n_classes from a fitted sklearn model.

    ``present`` are the classes seen in training; the others get weight 0 and bias ABSENT_LOGIT.
    With one present class (clf None) its logit is 0; with two, sklearn's binary model
    (one row, logit of present[1] vs present[0]) becomes logits (0, z).
    """
    weight = np.zeros((n_classes, d))
    bias = np.full(n_classes, ABSENT_LOGIT)
    bias[present] = 0.0
    if clf is None:
        return weight, bias
    if present.size == 2:
        weight[present[1]] = clf.coef_[0]
        bias[present[1]] = clf.intercept_[0]
    else:
        weight[present] = clf.coef_
        bias[present] = clf.intercept_
    return weight, bias


def _balanced_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-point weights n / (n_present_classes * count[y]), as sklearn's "balanced"."""
    counts = np.bincount(y, minlength=n_classes)
    return y.size / (np.count_nonzero(counts) * counts[y])


def fit_logistic(
    x,
    y,
    groups,
    n_classes: int,
    Cs=DEFAULT_CS,
    n_folds: int = 5,
    class_weight: str | None = None,
    max_iter: int = 1000,
) -> LinearProbe:
    """Multinomial L-BFGS logistic regression with C chosen by GroupKFold CV over ``groups``.

    x [N, D], y [N] class indices, groups [N] block ids. C is chosen by the pooled out-of-fold
    log-loss (mean negative log-likelihood, probabilities floored at 1e-12), which rewards
    calibrated probabilities rather than only the argmax; recorded as ``cv_score`` (lower is
    better). With class_weight="balanced" the training loss and the CV log-loss weight each
    point by n / (n_classes_present * count of its class). Classes missing from a fold's
    training part get probability 0 there. The probe is refitted on all points. Records ``.C``.
    With exactly two classes sklearn fits the equivalent binary model (C then acts as a
    slightly different penalty scale; it is chosen by CV either way).
    """
    x = _check_x(x)
    y = _check_y(y, x.shape[0], "classification", n_classes)
    if class_weight not in (None, "balanced"):
        raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
    Cs = np.sort(np.asarray(Cs, dtype=np.float64).ravel())
    if Cs.size == 0 or (Cs <= 0).any():
        raise ValueError(f"Cs must be a non-empty list of positive values, got {Cs}")
    point_w = _balanced_weights(y, n_classes) if class_weight else np.ones(y.size)

    def fit_all(xtr, ytr, C_values):
        """Yield (weight, bias) per C on standardised xtr, warm-starting along increasing C."""
        present = np.unique(ytr)
        clf = None
        if present.size > 1:
            clf = LogisticRegression(
                solver="lbfgs", max_iter=max_iter, warm_start=True, class_weight=class_weight
            )
        for C in C_values:
            if clf is not None:
                clf.set_params(C=float(C)).fit(xtr, ytr)
            yield _logistic_params(clf, present, n_classes, xtr.shape[1])

    nll = np.zeros(Cs.size)
    for tr, va in _group_folds(groups, x.shape[0], n_folds):
        xm, xsd = _standardiser(x[tr])
        xtr, xva = (x[tr] - xm) / xsd, (x[va] - xm) / xsd
        for i, (w, b) in enumerate(fit_all(xtr, y[tr], Cs)):
            logp = log_softmax(xva @ w.T + b, axis=1)[np.arange(va.size), y[va]]
            nll[i] -= (point_w[va] * np.maximum(logp, np.log(_LOG_EPS))).sum()
    cv_loss = nll / point_w.sum()
    best = int(np.argmin(cv_loss))
    xm, xsd = _standardiser(x)
    w, b = next(fit_all((x - xm) / xsd, y, Cs[best : best + 1]))
    return LinearProbe(
        kind="classification",
        x_mean=xm,
        x_std=xsd,
        weight=w,
        bias=b,
        y_mean=np.zeros(n_classes),
        y_std=np.ones(n_classes),
        C=float(Cs[best]),
        cv_score=float(cv_loss[best]),
        cv_scores=cv_loss,
    )


@dataclass
class ConstantProbe(LinearProbe):
    """A LinearProbe with zero weight: the output is ``bias`` for every point.

    ``n_features`` (D) is the feature count ``predict`` checks and ``export`` uses for the zero
    weight [out, D]; when None, any D is accepted and ``export`` raises ValueError.
    """

    n_features: int | None = None

    def _out(self, x) -> np.ndarray:
        x = _check_x(x)
        if self.n_features is not None and x.shape[1] != self.n_features:
            raise ValueError(f"x has {x.shape[1]} features, the probe expects {self.n_features}")
        return np.repeat(self.bias[None, :], x.shape[0], axis=0)

    def export(self) -> dict:
        if self.n_features is None:
            raise ValueError("pass n_features= to fit_constant to export a constant probe")
        return super().export()


def fit_constant(
    y, kind: str, n_classes: int | None = None, n_features: int | None = None
) -> ConstantProbe:
    """Training-mean (regression) or class-frequency (classification) baseline.

    y [N]. Regression: predict = the training mean. Classification: predict_proba = training
    class frequencies [C] for every point, predict = the majority class (lowest index on ties),
    logits = log(freq) (ABSENT_LOGIT for unseen classes). The probe ignores x's values;
    ``n_features`` (D) is needed only by ``export()`` (zero weight [out, D]).
    """
    _check_kind(kind)
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"y must be a non-empty 1-D array, got shape {y.shape}")
    y = _check_y(y, y.shape[0], kind, n_classes)
    if n_features is not None and n_features < 1:
        raise ValueError(f"n_features must be >= 1, got {n_features}")
    if kind == "regression":
        out = 1
        bias, y_mean, y_std = np.zeros(1), np.array([y.mean()]), np.ones(1)
    else:
        out = n_classes
        freq = np.bincount(y, minlength=n_classes) / y.size
        bias = np.full(out, ABSENT_LOGIT)
        bias[freq > 0] = np.log(freq[freq > 0])
        y_mean, y_std = np.zeros(out), np.ones(out)
    d = n_features or 1
    return ConstantProbe(
        kind=kind,
        x_mean=np.zeros(d),
        x_std=np.ones(d),
        weight=np.zeros((out, d)),
        bias=bias,
        y_mean=y_mean,
        y_std=y_std,
        n_features=n_features,
    )


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------


# The least temperature: sharpen a head's logits at most 2x. On calibration points that a head
# gets (nearly) all right with a margin the NLL keeps falling as T -> 0, so the search would run
# to its bound and make every answer certain, those at a border too (seed 2's continent head,
# right at 99.5% of ~600 val points, got T = 0.05: p = 1.000 everywhere).
MIN_TEMPERATURE = 0.5


def temperature_scale(logits_val, y_val) -> float:
    """Temperature T minimising the mean NLL of softmax(logits_val / T) on validation.

    logits_val [M, C], y_val [M] class indices. Searches T in [MIN_TEMPERATURE, 20]; T > 1
    softens over-confident logits, T < 1 sharpens under-confident ones. Apply as
    softmax(logits / T).
    """
    logits = np.asarray(logits_val, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits_val must be a non-empty 2-D array [M, C], got {logits.shape}")
    y = _check_y(y_val, logits.shape[0], "classification", logits.shape[1], "y_val")
    rows = np.arange(y.size)

    def nll(log_t: float) -> float:
        return -float(log_softmax(logits / np.exp(log_t), axis=1)[rows, y].mean())

    bounds = (float(np.log(MIN_TEMPERATURE)), 3.0)
    res = minimize_scalar(nll, bounds=bounds, method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x))


# the nonlinear probes live in their own module; imported here so callers use one namespace
from gair.evaluation.protocol_nonlinear import (  # noqa: E402
    KNNProbe,
    MLPProbe,
    fit_knn,
    fit_mlp,
)

__all__ = [
    "ABSENT_LOGIT",
    "ConstantProbe",
    "KNNProbe",
    "LinearProbe",
    "MLPProbe",
    "fit_constant",
    "fit_knn",
    "fit_logistic",
    "fit_mlp",
    "fit_ridge",
    "temperature_scale",
]
