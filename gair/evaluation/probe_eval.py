"""Probe rows of `gair eval`: every feature set x probe x task, scored on held-out blocks.

Probes (`gair.evaluation.protocol`): "linear" (closed-form ridge / L-BFGS logistic regression,
the regularisation chosen by cross-validation grouped by spatial blocks of the training points),
"knn" (5 nearest neighbours), "mlp" (one hidden layer, early-stopped on the val split), and the
training-mean / majority "constant". Intervals: 95% percentile bootstrap over the test split's
blocks; differences: the same block draws for both methods (paired).
"""

from __future__ import annotations

import logging

import numpy as np

from gair.evaluation import protocol, stats

log = logging.getLogger(__name__)

MAIN_METRIC = {"classification": "accuracy", "regression": "skill"}
LOGISTIC_CS = (0.01, 0.1, 1.0)  # inverse L2 strengths (standardised inputs) tried by grouped CV
# what each GAIR row is compared against (method, input, probe)
BASELINES = (
    ("random-init", "inr", "linear"),
    ("raw-pixels", "pixels", "linear"),
    ("center-pool", "tokens", "linear"),
    ("bilinear", "tokens", "linear"),
    ("gair", "location", "linear"),
    ("geoclip", "location", "linear"),
    ("coordinates", "xyz", "knn"),
    ("mean-predictor", "none", "constant"),
)


def probes_for(method: str) -> tuple[str, ...]:
    return ("knn",) if method == "coordinates" else ("linear", "knn", "mlp")


def fit(probe: str, task, x_tr, y_tr, groups, x_val, y_val, n_classes: int, seed: int):
    """One fitted probe (see the module docstring)."""
    cls = task.kind == "classification"
    if probe == "linear":
        if cls:  # a short grid and 3 grouped folds: logistic CV is most of `gair eval`'s time
            return protocol.fit_logistic(
                x_tr, y_tr, groups, n_classes, Cs=LOGISTIC_CS, n_folds=3, max_iter=200
            )
        return protocol.fit_ridge(x_tr, y_tr, groups)
    if probe == "knn":
        return protocol.fit_knn(x_tr, y_tr, task.kind, n_classes)
    if probe == "mlp":
        return protocol.fit_mlp(
            x_tr, y_tr, task.kind, n_classes, x_val, y_val, max_epochs=100, seed=seed
        )
    if probe == "constant":
        return protocol.fit_constant(y_tr, task.kind, n_classes)
    raise ValueError(f"unknown probe {probe!r}")


def metric_fns(task, n_classes: int, train_mean: float) -> dict:
    """{metric: fn(y_true, y_pred) -> float} for a task."""
    if task.kind == "classification":
        names = ("accuracy", "balanced_accuracy", "macro_f1")

        def one(name):
            return lambda y_true, y_pred: stats.classification_metrics(y_true, y_pred, n_classes)[
                name
            ]
    else:
        names = ("mae", "rmse", "skill")

        def one(name):
            return lambda y_true, y_pred: stats.regression_metrics(y_true, y_pred, train_mean)[name]

    return {n: one(n) for n in names}


def probe_rows(tasks, labels: dict, feats: dict, blocks: dict, n_boot: int, seed: int):
    """-> (rows, comparisons, predictions, models).

    labels[split][task] = (y, ok); feats[(method, input)][split] = x; blocks[split] = block ids
    (train: CV groups). predictions[(task, method, input, probe)][split] = y_pred on ok points;
    models[(task, method, input, probe)] = the fitted probe (the heads reuse GAIR's).
    """
    rows, comparisons, preds, models = [], [], {}, {}
    for task in tasks:
        n_classes = len(task.classes) if task.kind == "classification" else 0
        y_tr, ok_tr = labels["train"][task.name]
        y_val, ok_val = labels["val"][task.name]
        train_mean = float(np.mean(y_tr[ok_tr])) if task.kind == "regression" else 0.0
        fns = metric_fns(task, n_classes, train_mean)
        runs = [(m, i, p) for (m, i) in feats for p in probes_for(m)]
        runs.append(("mean-predictor", "none", "constant"))
        for method, inp, probe in runs:
            x = feats.get((method, inp))
            if x is None:
                x = {s: np.zeros((len(labels[s][task.name][0]), 1), np.float32) for s in labels}
            log.info("probe %s: %s/%s %s", task.name, method, inp, probe)
            model = fit(
                probe,
                task,
                x["train"][ok_tr],
                y_tr[ok_tr],
                blocks["train"][ok_tr],
                x["val"][ok_val],
                y_val[ok_val],
                n_classes,
                seed,
            )
            models[(task.name, method, inp, probe)] = model
            for split in [s for s in ("test", "unseen") if s in labels]:
                y, ok = labels[split][task.name]
                if ok.sum() < 2:
                    continue
                y_pred = model.predict(x[split][ok])
                preds.setdefault((task.name, method, inp, probe), {})[split] = y_pred
                rows += scored_rows(
                    (task.name, method, inp, probe), fns, y[ok], y_pred, blocks[split][ok], split,
                    n_boot, seed,
                )  # fmt: skip
        comparisons += _compare(task, labels, preds, blocks, fns, n_boot, seed)
    return rows, comparisons, preds, models


def scored_rows(key, fns, y_true, y_pred, blocks, split, n_boot, seed) -> list[dict]:
    """One row per metric of `fns` for key = (task, method, input, probe), with block-bootstrap
    intervals."""
    task, method, inp, probe = key
    rows = []
    for metric, fn in fns.items():
        point, lo, hi, _ = stats.block_bootstrap(
            fn, blocks, n_boot, seed, y_true=y_true, y_pred=y_pred
        )
        rows.append(
            stats.row(task, method, inp, metric, point, lo, hi, len(y_true), split, probe=probe)
        )
    return rows


def _compare(task, labels, preds, blocks, fns, n_boot, seed) -> list[dict]:
    """Paired differences on the test split: each GAIR row against each baseline."""
    y, ok = labels["test"][task.name]
    out = []
    gair_rows = [("gair", "inr", "linear"), ("gair", "inr+location", "linear")]
    for method, inp, probe in gair_rows:
        a = preds.get((task.name, method, inp, probe), {}).get("test")
        if a is None:
            continue
        for base in BASELINES:
            b = preds.get((task.name, *base), {}).get("test")
            if b is None or base == (method, inp, probe):
                continue
            for metric, fn in fns.items():
                diff, lo, hi = stats.paired_difference(
                    fn,
                    blocks["test"][ok],
                    {"y_true": y[ok], "y_pred": a},
                    {"y_true": y[ok], "y_pred": b},
                    n_boot,
                    seed,
                )
                out.append(
                    stats.comparison(
                        task.name,
                        f"{method}/{inp}/{probe}",
                        "/".join(base),
                        metric,
                        diff,
                        lo,
                        hi,
                        split="test",
                    )
                )
    return out
