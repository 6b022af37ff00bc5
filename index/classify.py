"""Find more places like these: a classifier fitted on a label set scores every cell of an
index (issue 16). The app and `gair index classify` call the same functions, so the same set
gives the same hits.

- One positive and no negative: a similarity ranking; a cell's score is the cosine of its
  vector with the positive's (in [-1, 1]).
- Otherwise: L2-regularised (kernel) logistic regression; a cell's score is the probability
  that it is positive (in [0, 1]): sigmoid(sum_j alpha_j k(x, c_j) + b) over the labelled
  examples c_j, with the kernel k(x, c) = exp(KERNEL_BETA * (cos(x, c) - 1)) (a Gaussian on
  the unit sphere). Fitted by L-BFGS (float64, deterministic). With fewer than
  `FEW_NEGATIVES` negatives, `BACKGROUND_N` random cells of the index join the fit as weak
  negatives (together as much as `BACKGROUND_WEIGHT` labelled negatives; most places are not
  what one looks for); positives and negatives weigh the same in total.

Why a kernel: what one labels (water, snow, cities) looks different in different places, and a
linear model on the embeddings averages those looks away. On the demo index (h3:4 land, 81,820
cells; 5 positive and 5 negative cells of one land-cover class, 15 classes x 5 draws),
precision@100 is a median 9.7x the class's base rate with this kernel (mean 12.7x; below 2x
in 2 of 75 draws), 7.2x to 7.5x with a linear logistic regression on the embeddings (6 of 75
below 2x) and 6.2x with the cosine to the positives' mean (9 of 75). A wider kernel (beta 5
rather than 20) ranks as well and gives probabilities that mean something at 0.5: about 6%
of the cells pass it, and held-out examples are recalled more often.

Scoring costs one pass over the N cell vectors per new example (its kernel column, cached per
index: `kernel_column`) plus O(N m) to combine the m columns, and a fit on m + BACKGROUND_N
rows of m features.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from index.labelset import LabelSet, cell_positions

BACKGROUND_N = 256  # random cells used as weak negatives
BACKGROUND_SEED = 16
BACKGROUND_WEIGHT = 4.0  # their total weight, in labelled negatives
FEW_NEGATIVES = 20  # below this many labelled negatives the background joins
KERNEL_BETA = 5.0  # k(x, c) = exp(beta (cos - 1)): 0.61 at cos 0.9, 0.08 at cos 0.5
L2 = 1e-3  # ridge penalty on alpha (not the bias), per unit of total sample weight
LOGISTIC_THRESHOLD = 0.5
SIMILARITY_TOP = 100  # one positive: the default threshold keeps the 100 most similar cells
HIT_COLUMNS = ["rank", "cell_id", "lat", "lon", "score", "label"]


@dataclass(frozen=True)
class Model:
    """A fitted scorer.

    mode "similarity": score = cos(x, centres[0]) (centres [1, E], a unit vector);
    mode "logistic": score = sigmoid(k(x, centres) @ alpha + b), a probability, with
    centres [m, E] float32 (the examples), alpha [m] float32 and k the module's kernel."""

    mode: str
    centres: np.ndarray
    alpha: np.ndarray
    b: float
    n_positive: int
    n_negative: int
    n_background: int

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Scores [n] float32 of vectors x [n, E] (float32, L2-normalised)."""
        x = np.asarray(x, np.float32)
        if self.mode == "similarity":
            return x @ self.centres[0]
        return _sigmoid(_kernel(x, self.centres) @ self.alpha + np.float32(self.b))


def _kernel(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """k(x_i, c_j) [n, m] float32 = exp(beta (cos - 1)) for unit vectors x [n, E], c [m, E]."""
    k = np.asarray(x, np.float32) @ np.asarray(centres, np.float32).T
    k -= 1.0
    k *= np.float32(KERNEL_BETA)
    np.exp(k, out=k)
    return k


def _sigmoid(z: np.ndarray) -> np.ndarray:
    z = np.clip(np.asarray(z, np.float32), -60.0, 60.0)
    out = np.exp(-z)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


# --------------------------------------------------------------------------- fitting


def fit(
    positives: np.ndarray,
    negatives: np.ndarray | None = None,
    background: np.ndarray | None = None,
    mode: str | None = None,
) -> Model:
    """Fit a scorer on positives [p, E], negatives [q, E] and background [b, E] (weak
    negatives, logistic mode only; all float32 unit vectors). mode None chooses "similarity"
    for exactly one positive and no negative, else "logistic"."""
    pos = np.asarray(positives, np.float32)
    if pos.ndim != 2 or len(pos) == 0:
        raise ValueError("a label set needs at least one positive example to find places")
    dim = pos.shape[1]
    neg = np.zeros((0, dim), np.float32) if negatives is None else np.asarray(negatives, np.float32)
    bg = (
        np.zeros((0, dim), np.float32) if background is None else np.asarray(background, np.float32)
    )
    if mode is None:
        mode = "similarity" if len(pos) == 1 and len(neg) == 0 else "logistic"
    if mode == "similarity":
        w = pos.mean(0)
        w /= max(float(np.linalg.norm(w)), 1e-12)
        return Model("similarity", w[None].astype(np.float32), np.ones(1, np.float32), 0.0,
                     len(pos), len(neg), 0)  # fmt: skip
    if mode != "logistic":
        raise ValueError(f"mode must be 'similarity' or 'logistic', got {mode!r}")
    if len(neg) >= FEW_NEGATIVES:
        bg = bg[:0]
    centres = np.concatenate([pos, neg])
    x = _kernel(np.concatenate([centres, bg]), centres).astype(np.float64)
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg) + len(bg))])
    s_neg = np.concatenate(
        [np.ones(len(neg)), np.full(len(bg), BACKGROUND_WEIGHT / max(len(bg), 1))]
    )
    if s_neg.sum() > 0:  # the negatives weigh as much as the positives together
        s_neg *= len(pos) / s_neg.sum()
    s = np.concatenate([np.ones(len(pos)), s_neg])
    theta = _logistic(x, y, s, L2 * float(s.sum()))
    return Model("logistic", centres, theta[:-1].astype(np.float32), float(theta[-1]),
                 len(pos), len(neg), len(bg))  # fmt: skip


def _logistic(x: np.ndarray, y: np.ndarray, s: np.ndarray, lam: float) -> np.ndarray:
    """argmin over theta = (w, b) of sum_i s_i * logloss(y_i, x_i . w + b) + lam/2 |w|^2 by
    L-BFGS from zero (float64; deterministic for the same input). x [n, d] features, y [n] in
    {0, 1}, s [n] weights; returns theta [d + 1] float64."""
    from scipy.optimize import minimize

    d = x.shape[1]

    def loss_grad(theta):
        w, b = theta[:-1], theta[-1]
        z = x @ w + b
        r = s * (0.5 * (1.0 + np.tanh(0.5 * z)) - y)  # sigmoid(z) - y, never overflowing
        loss = float(s @ (np.logaddexp(0.0, z) - y * z) + 0.5 * lam * (w @ w))
        grad = np.empty(d + 1)
        grad[:-1] = x.T @ r + lam * w
        grad[-1] = r.sum()
        return loss, grad

    out = minimize(
        loss_grad,
        np.zeros(d + 1),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-6, "maxiter": 500},
    )
    return np.asarray(out.x, np.float64)


# --------------------------------------------------------------------------- the index


_bg_cache: dict = {}
_bg_lock = threading.Lock()


def background_positions(n_cells: int, n: int = BACKGROUND_N, seed: int = BACKGROUND_SEED):
    """Distinct random cell positions [min(n, n_cells)] int64, the same for the same sizes."""
    key = (int(n_cells), int(n), int(seed))
    with _bg_lock:
        if key not in _bg_cache:
            rng = np.random.default_rng(seed)
            if n_cells <= 4 * n:
                pos = rng.permutation(n_cells)[:n]
            else:
                draw = rng.integers(0, n_cells, size=4 * n)
                _, first = np.unique(draw, return_index=True)
                pos = draw[np.sort(first)][:n]
            _bg_cache[key] = np.asarray(pos, np.int64)
        return _bg_cache[key]


def background_for(index, labelset: LabelSet) -> np.ndarray:
    """Background vectors [b, E] float32: the random cells, minus the set's own cells."""
    pos = background_positions(len(index.cells))
    own = [e.cell_id for e in labelset.examples if e.kind == "cell"]
    if own:
        pos = np.setdiff1d(pos, cell_positions(index, own), assume_unique=False)
        pos = np.sort(pos)
    else:
        pos = np.sort(pos)
    return np.asarray(index.cell_vectors[pos], np.float32)


def check_trainable(labelset: LabelSet) -> None:
    """ValueError unless the set can rank places (at least one positive)."""
    if len(labelset) == 0:
        raise ValueError(f"label set {labelset.name!r} is empty: add a positive example")
    if labelset.n_positive == 0:
        raise ValueError(
            f"label set {labelset.name!r} has no positive example "
            f"({labelset.n_negative} negative): add one to find places like it"
        )


def fit_labelset(index, labelset: LabelSet) -> Model:
    """The scorer of an embedded label set on `index` (see `embed_labelset`)."""
    check_trainable(labelset)
    x, y = labelset.vectors(), labelset.labels().astype(bool)
    return fit(x[y], x[~y], background_for(index, labelset))


_columns: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # index -> OrderedDict
_columns_lock = threading.Lock()
KERNEL_CACHE_BYTES = 512 * 2**20  # kernel columns kept per index (128 columns at 1e6 cells)


def kernel_column(index, centre: np.ndarray) -> np.ndarray:
    """k(cell, centre) for every cell of the index: [N] float32 (read-only), one cosine pass
    (`similarity_to_all_cells`) then exp. Cached per index and centre, so adding an example
    costs one pass over the cell vectors, not one per example."""
    centre = np.ascontiguousarray(centre, np.float32)
    key = (float(KERNEL_BETA), hashlib.sha1(centre.tobytes()).hexdigest())
    with _columns_lock:
        cache = _columns.get(index)
        if cache is None:
            cache = _columns[index] = OrderedDict()
        col = cache.get(key)
        if col is not None:
            cache.move_to_end(key)
            return col
    col = np.array(index.similarity_to_all_cells(centre), np.float32)
    col -= 1.0
    col *= np.float32(KERNEL_BETA)
    np.exp(col, out=col)
    col.setflags(write=False)
    with _columns_lock:
        cache[key] = col
        while len(cache) > 1 and sum(c.nbytes for c in cache.values()) > KERNEL_CACHE_BYTES:
            cache.popitem(last=False)
    return col


def score_cells(index, model: Model) -> np.ndarray:
    """Scores [N] float32 of every cell of the index: the cosine to the positive (similarity
    mode), or sigmoid(sum_j alpha_j k(cell, c_j) + b) summed in the examples' order over
    their cached kernel columns (so the app and the CLI get the same floats)."""
    if model.mode == "similarity":
        return np.asarray(index.similarity_to_all_cells(model.centres[0]), np.float32)
    z = np.full(len(index.cell_vectors), np.float32(model.b), np.float32)
    tmp = np.empty_like(z)
    for a, c in zip(model.alpha, model.centres):
        np.multiply(kernel_column(index, c), np.float32(a), out=tmp)
        z += tmp
    return _sigmoid(z)


def default_threshold(model: Model, scores: np.ndarray) -> float:
    """0.5 for a probability; for a similarity, the score of the SIMILARITY_TOP-th cell."""
    if model.mode == "logistic":
        return LOGISTIC_THRESHOLD
    k = min(SIMILARITY_TOP, len(scores))
    return float(np.partition(scores, len(scores) - k)[len(scores) - k]) if k else 0.0


def select_hits(
    index,
    scores: np.ndarray,
    threshold: float | None = None,
    top: int | None = None,
    labelset: LabelSet | None = None,
    unlabelled_only: bool = False,
) -> pd.DataFrame:
    """Hits, best first: the cells with score >= threshold, or (top given) the `top` best.
    Columns: rank, cell_id, lat, lon, score, label ("positive"/"negative" for the set's own
    cells, else ""). Ties keep the index's cell order. unlabelled_only drops the set's cells
    (ranks count the rest)."""
    scores = np.asarray(scores, np.float32)
    labelled = {}
    if labelset is not None:
        labelled = {e.cell_id: e.label for e in labelset.examples if e.kind == "cell"}
    drop = cell_positions(index, list(labelled)) if (unlabelled_only and labelled) else None
    if top is not None:
        top = int(top)
        if top < 1:
            raise ValueError(f"top must be a positive integer, got {top}")
        want = min(len(scores), top + (0 if drop is None else len(drop)))
        cand = (
            np.argpartition(-scores, want - 1)[:want]
            if want < len(scores)
            else np.arange(len(scores))
        )
    else:
        if threshold is None:
            raise ValueError("give a threshold or a number of top hits")
        if not np.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        cand = np.flatnonzero(scores >= np.float32(threshold))
    if drop is not None:
        cand = cand[~np.isin(cand, drop)]
    order = cand[np.lexsort((cand, -scores[cand]))]
    if top is not None:
        order = order[:top]
    cells = index.cells
    ids = cells["cell_id"].to_numpy()[order].astype(str)
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(order) + 1),
            "cell_id": ids,
            "lat": cells["lat"].to_numpy()[order].astype(float),
            "lon": cells["lon"].to_numpy()[order].astype(float),
            "score": scores[order].astype(float),
            "label": [labelled.get(c, "") for c in ids],
        },
        columns=HIT_COLUMNS,
    )


@dataclass(frozen=True)
class Classified:
    """A label set scored on an index: model, scores [N] float32 and hits (DataFrame)."""

    model: Model
    scores: np.ndarray
    threshold: float
    hits: pd.DataFrame


def classify(
    index, labelset: LabelSet, threshold: float | None = None, top: int | None = None
) -> Classified:
    """Fit on an embedded set, score every cell, select the hits (threshold default:
    `default_threshold`; `top` instead keeps the N best). The app and the CLI call this."""
    model = fit_labelset(index, labelset)
    scores = score_cells(index, model)
    if threshold is None:
        threshold = default_threshold(model, scores)
    hits = select_hits(index, scores, None if top else threshold, top, labelset)
    return Classified(model, scores, float(threshold), hits)


# --------------------------------------------------------------------------- quality

_cv_cache: OrderedDict = OrderedDict()
_cv_lock = threading.Lock()
CV_CACHE = 512
LOO_MAX = 30  # above this many examples, 10-fold cross-validation instead of leave-one-out
CURVE_SMALL = 10  # every set size up to this is a point of the learning curve, then every 5th


def heldout_scores(x: np.ndarray, y: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Cross-validated probabilities [n]: each example scored by a logistic model fitted
    without it (leave-one-out up to LOO_MAX examples, else 10 folds in order of addition);
    NaN where its training fold has no positive. x [n, E], y [n] in {0, 1}."""
    x = np.asarray(x, np.float32)
    y = np.asarray(y).astype(bool)
    n = len(x)
    out = np.full(n, np.nan)
    if n < 2:
        return out
    folds = np.arange(n) if n <= LOO_MAX else np.arange(n) % 10
    for f in np.unique(folds):
        test = folds == f
        train_pos, train_neg = x[~test & y], x[~test & ~y]
        if not len(train_pos):
            continue
        m = fit(train_pos, train_neg, background, mode="logistic")
        out[test] = m.raw(x[test])
    return out


def precision_recall(y: np.ndarray, held: np.ndarray, threshold: float) -> dict:
    """Precision and recall of held-out scores at a threshold (NaN when undefined)."""
    y = np.asarray(y).astype(bool)
    ok = np.isfinite(held)
    pred = ok & (held >= threshold)
    tp = int((pred & y).sum())
    n_pred, n_pos = int(pred.sum()), int((ok & y).sum())
    return {
        "precision": tp / n_pred if n_pred else float("nan"),
        "recall": tp / n_pos if n_pos else float("nan"),
        "scored": int(ok.sum()),
    }


def curve_sizes(n: int) -> list[int]:
    """Set sizes of the learning curve: 2..CURVE_SMALL, then every 5th, and n itself."""
    sizes = [k for k in range(2, min(n, CURVE_SMALL) + 1)]
    sizes += [k for k in range(CURVE_SMALL + 5, n + 1, 5)]
    if n >= 2 and sizes[-1:] != [n]:
        sizes.append(n)
    return sizes


def learning_curve(index, labelset: LabelSet, threshold: float = LOGISTIC_THRESHOLD):
    """Cross-validated precision and recall of the set's first k examples (in the order they
    were added) for the sizes of `curve_sizes`. DataFrame: examples, positives, negatives,
    precision, recall, scored. Held-out scores are cached per prefix, so adding an example
    costs one cross-validation."""
    x, y = labelset.vectors(), labelset.labels()
    background = background_for(index, labelset)
    bg_key = background_positions(len(index.cells)).tobytes()[:64]
    rows = []
    for k in curve_sizes(len(labelset)):
        prefix = LabelSet(labelset.name, labelset.examples[:k])
        key = (prefix.key(), len(index.cells), bg_key)
        with _cv_lock:
            held = _cv_cache.get(key)
            if held is not None:
                _cv_cache.move_to_end(key)
        if held is None:
            held = heldout_scores(x[:k], y[:k], background)
            with _cv_lock:
                _cv_cache[key] = held
                while len(_cv_cache) > CV_CACHE:
                    _cv_cache.popitem(last=False)
        pr = precision_recall(y[:k], held, threshold)
        rows.append(
            {
                "examples": k,
                "positives": int(y[:k].sum()),
                "negatives": int(k - y[:k].sum()),
                **pr,
            }
        )
    return pd.DataFrame(
        rows, columns=["examples", "positives", "negatives", "precision", "recall", "scored"]
    )
