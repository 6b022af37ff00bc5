"""gair.evaluation.stats (metrics, block bootstrap, tidy rows) and gair.evaluation.protocol (probes).

All data are tiny and synthetic: 600 points in 30 spatial blocks of 20.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax
from sklearn.metrics import balanced_accuracy_score, f1_score
from threadpoolctl import threadpool_limits

from gair.evaluation import protocol, stats

N, N_BLOCKS, D = 600, 30, 8


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny problems run far faster single-threaded (and on a busy 2-core machine, 10-60x)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture
def data():
    """x [600, 8] with a per-block offset, block ids [600], a fixed linear direction w [8]."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(N_BLOCKS), N // N_BLOCKS)
    centres = rng.normal(size=(N_BLOCKS, D))
    x = centres[groups] + rng.normal(size=(N, D))
    w = rng.normal(size=D)
    return rng, x, groups, w


def _apply_export(exp: dict, x: np.ndarray, kind: str) -> np.ndarray:
    """Evaluate an exported head in float64 numpy: values [N] or probabilities [N, C]."""
    t = {k: v.double().numpy() for k, v in exp.items() if k != "kind"}
    xs = (x - t["x_mean"]) / t["x_std"]
    if exp["kind"] == "linear":
        out = xs @ t["weight"].T + t["bias"]
    else:
        out = np.maximum(xs @ t["w1"].T + t["b1"], 0.0) @ t["w2"].T + t["b2"]
    if kind == "regression":
        return out[:, 0] * t["y_std"][0] + t["y_mean"][0]
    return softmax(out, axis=1)


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def test_classification_metrics_by_hand():
    y_true = np.array([0, 0, 1, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 0])
    m = stats.classification_metrics(y_true, y_pred, n_classes=4)  # class 3 appears nowhere
    assert m["accuracy"] == pytest.approx(3 / 6)
    # recalls 1/2, 2/3, 0 over the classes in y_true
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    # F1: class 0: 2*1/(2+3), class 1: 2*2/(3+3), class 2: 0; class 3 left out
    assert m["macro_f1"] == pytest.approx((0.4 + 2 / 3 + 0) / 3)
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_classification_metrics_predicted_only_class_counts_in_f1_not_recall():
    m = stats.classification_metrics(np.array([0, 0]), np.array([0, 1]), n_classes=3)
    assert m["balanced_accuracy"] == pytest.approx(0.5)  # only class 0 is in y_true
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)  # classes 0 and 1
    with pytest.raises(ValueError, match="out of"):
        stats.classification_metrics(np.array([0, 3]), np.array([0, 1]), n_classes=3)
    with pytest.raises(ValueError, match="integer"):
        stats.classification_metrics(np.array([0.0, 1.0]), np.array([0, 1]), n_classes=3)


def test_regression_metrics_by_hand():
    y_true = np.array([0.0, 1.0, 2.0, 3.0])
    m = stats.regression_metrics(y_true, np.array([1.0, 1.0, 2.0, 1.0]), train_mean=1.0)
    assert m["mae"] == pytest.approx(0.75)
    assert m["rmse"] == pytest.approx(np.sqrt(5 / 4))
    # reference MSE of predicting 1.0: (1 + 0 + 1 + 4) / 4 = 1.5
    assert m["skill"] == pytest.approx(1 - 1.25 / 1.5)
    assert stats.regression_metrics(y_true, np.full(4, 1.7), train_mean=1.7)["skill"] == 0.0
    assert stats.regression_metrics(y_true, y_true, train_mean=1.7)["skill"] == 1.0
    with pytest.raises(ValueError, match="same length"):
        stats.regression_metrics(y_true, y_true[:3], train_mean=0.0)


def test_higher_is_better():
    assert stats.higher_is_better("accuracy") and stats.higher_is_better("skill")
    assert not stats.higher_is_better("rmse")
    assert stats.higher_is_better("within_25km") and stats.higher_is_better("within_2.5km")
    assert not stats.higher_is_better("median_km") and not stats.higher_is_better("p90_km")
    with pytest.raises(ValueError, match="bogus"):
        stats.higher_is_better("bogus")


# ---------------------------------------------------------------------------------------------
# Block bootstrap
# ---------------------------------------------------------------------------------------------


def _acc(y_true, y_pred):
    return float(np.mean(y_true == y_pred))


def test_block_bootstrap_interval_and_determinism(data):
    rng, _, groups, _ = data
    y_true = rng.integers(0, 3, N)
    y_pred = np.where(rng.random(N) < 0.7, y_true, rng.integers(0, 3, N))
    point, lo, hi, samples = stats.block_bootstrap(
        _acc, groups, n_boot=300, seed=1, y_true=y_true, y_pred=y_pred
    )
    assert point == pytest.approx(_acc(y_true, y_pred))
    assert lo <= point <= hi and lo < hi
    assert samples.shape == (300,)
    again = stats.block_bootstrap(_acc, groups, n_boot=300, seed=1, y_true=y_true, y_pred=y_pred)
    np.testing.assert_array_equal(samples, again[3])
    other = stats.block_bootstrap(_acc, groups, n_boot=300, seed=2, y_true=y_true, y_pred=y_pred)
    assert not np.array_equal(samples, other[3])


def test_block_bootstrap_resamples_whole_blocks(data):
    _, _, groups, _ = data
    # shuffle point order so blocks are not contiguous
    perm = np.random.default_rng(3).permutation(N)
    ids = groups[perm]

    def whole_blocks(b):
        counts = np.unique(b, return_counts=True)[1]
        return float(b.size == N and np.all(counts % (N // N_BLOCKS) == 0))

    _, lo, hi, samples = stats.block_bootstrap(whole_blocks, ids, n_boot=50, b=ids)
    assert samples.min() == 1.0
    with pytest.raises(ValueError, match="at least 2 unique blocks"):
        stats.block_bootstrap(_acc, np.zeros(5), y_true=np.zeros(5), y_pred=np.zeros(5))
    with pytest.raises(ValueError, match="y_pred"):
        stats.block_bootstrap(_acc, groups, y_true=np.zeros(N), y_pred=np.zeros(N - 1))


def test_paired_difference(data):
    rng, _, groups, _ = data
    y_true = rng.integers(0, 3, N)
    good = np.where(rng.random(N) < 0.9, y_true, (y_true + 1) % 3)
    bad = np.where(rng.random(N) < 0.5, y_true, (y_true + 1) % 3)
    a = {"y_true": y_true, "y_pred": good}
    b = {"y_true": y_true, "y_pred": bad}
    assert stats.paired_difference(_acc, groups, a, a, n_boot=200) == (0.0, 0.0, 0.0)
    diff, lo, hi = stats.paired_difference(_acc, groups, a, b, n_boot=200, seed=5)
    assert diff == pytest.approx(_acc(y_true, good) - _acc(y_true, bad))
    assert 0 < lo <= diff <= hi
    # paired: the same draws as two block_bootstrap calls with the same seed
    sa = stats.block_bootstrap(_acc, groups, n_boot=200, seed=5, **a)[3]
    sb = stats.block_bootstrap(_acc, groups, n_boot=200, seed=5, **b)[3]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(sa - sb, [2.5, 97.5])))


def test_rows():
    r = stats.row(
        "lc",
        "gair",
        "s2",
        "accuracy",
        np.float32(0.5),
        0.4,
        0.6,
        np.int64(10),
        "test",
        seed=np.int64(3),
    )
    assert list(r) == [
        "task",
        "method",
        "input",
        "metric",
        "higher_is_better",
        "mean",
        "ci_low",
        "ci_high",
        "n",
        "split",
        "seed",
    ]
    assert r["higher_is_better"] is True
    assert type(r["mean"]) is float and type(r["n"]) is int and type(r["seed"]) is int
    custom = stats.row("t", "m", "i", "custom", 1, 0, 2, 5, "val", higher_is_better=False)
    assert custom["higher_is_better"] is False
    with pytest.raises(ValueError, match="clash"):
        stats.row("t", "m", "i", "mae", 1, 0, 2, 5, "val", mean=3)
    c = stats.comparison("lc", "gair", "knn", "accuracy", np.float64(0.1), 0.05, 0.2, seed=0)
    assert list(c) == [
        "task",
        "method",
        "baseline",
        "metric",
        "diff_mean",
        "diff_ci_low",
        "diff_ci_high",
        "seed",
    ]
    assert type(c["diff_mean"]) is float


# ---------------------------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------------------------


def test_ridge_alpha_follows_signal(data):
    rng, x, groups, w = data
    clean = protocol.fit_ridge(x, x @ w + 0.01 * rng.normal(size=N), groups)
    noise = protocol.fit_ridge(x, rng.normal(size=N), groups)
    assert noise.alpha > clean.alpha
    assert clean.cv_score == pytest.approx(clean.cv_scores.min())
    assert stats.regression_metrics(x @ w, clean.predict(x), 0.0)["skill"] > 0.99
    with pytest.raises(ValueError, match="groups"):
        protocol.fit_ridge(x, x @ w, np.zeros(N))


def _classes(x, w3):
    return (x @ w3).argmax(1)


def test_logistic_separable_and_absent_class(data):
    rng, x, groups, _ = data
    w3 = rng.normal(size=(D, 3))
    y = _classes(x, w3)
    tr, te = groups < 20, groups >= 20
    # n_classes=4: class 3 never occurs
    probe = protocol.fit_logistic(x[tr], y[tr], groups[tr], n_classes=4)
    assert stats.classification_metrics(y[te], probe.predict(x[te]), 4)["accuracy"] > 0.9
    proba = probe.predict_proba(x[te])
    assert proba.shape == (te.sum(), 4)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-12)
    assert np.all(proba[:, 3] == 0.0)
    assert probe.C in protocol.DEFAULT_CS and probe.cv_score > 0


def test_logistic_class_missing_from_a_fold_and_binary(data):
    rng, x, groups, w = data
    y = (x @ w > 0).astype(np.int64) * 2  # classes 0 and 2 only: sklearn's binary model
    y[groups == 7] = 1  # class 1 only in block 7: absent from one CV fold's training part
    probe = protocol.fit_logistic(x, y, groups, n_classes=3, class_weight="balanced")
    np.testing.assert_allclose(probe.predict_proba(x).sum(1), 1.0, atol=1e-12)
    binary = protocol.fit_logistic(x, (x @ w > 0).astype(np.int64) * 2, groups, n_classes=3)
    proba = binary.predict_proba(x)
    assert np.all(proba[:, 1] == 0.0)
    assert np.mean(binary.predict(x) == (x @ w > 0) * 2) > 0.9
    with pytest.raises(ValueError, match="class_weight"):
        protocol.fit_logistic(x, y, groups, n_classes=3, class_weight="auto")


def test_mlp_early_stops_on_noise_and_is_deterministic(data):
    rng, x, groups, _ = data
    y = rng.normal(size=N)
    tr, va = groups < 20, groups >= 20
    state = torch.get_rng_state()
    kw = dict(hidden=32, max_epochs=200, patience=5, lr=1e-2, batch=64)
    probe = protocol.fit_mlp(x[tr], y[tr], "regression", None, x[va], y[va], **kw)
    assert torch.equal(state, torch.get_rng_state())  # caller's RNG untouched
    assert probe.epochs_run < 200
    assert probe.epochs_run == probe.best_epoch + 5  # stopped after `patience` worse epochs
    again = protocol.fit_mlp(x[tr], y[tr], "regression", None, x[va], y[va], **kw)
    np.testing.assert_array_equal(probe.predict(x), again.predict(x))


def test_mlp_classification_absent_class(data):
    rng, x, groups, _ = data
    y = _classes(x, rng.normal(size=(D, 3)))
    tr, va = groups < 20, groups >= 20
    probe = protocol.fit_mlp(
        x[tr], y[tr], "classification", 4, x[va], y[va], hidden=32, max_epochs=30, batch=64, lr=1e-2
    )
    proba = probe.predict_proba(x[va])
    assert proba.shape == (va.sum(), 4) and np.all(proba[:, 3] == 0.0)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    assert np.mean(probe.predict(x[va]) == y[va]) > 0.8


def test_knn():
    x = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
    y = np.array([0, 0, 1, 2, 2, 2])
    probe = protocol.fit_knn(x, y, "classification", n_classes=4, k=3)
    np.testing.assert_allclose(
        probe.predict_proba(np.array([[0.05], [10.05]])), [[2 / 3, 1 / 3, 0, 0], [0, 0, 1, 0]]
    )
    np.testing.assert_array_equal(probe.predict(np.array([[0.05], [10.05]])), [0, 2])
    reg = protocol.fit_knn(x, np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0]), "regression", k=3)
    np.testing.assert_allclose(reg.predict(np.array([[0.0], [11.0]])), [2.0, 20.0])
    with pytest.raises(NotImplementedError, match="kNN"):
        probe.export()
    with pytest.raises(ValueError, match="kind"):
        protocol.fit_knn(x, y, "ranking")


def test_constant():
    y = np.array([2, 2, 0, 2])
    probe = protocol.fit_constant(y, "classification", n_classes=4, n_features=D)
    x = np.zeros((3, D))
    np.testing.assert_allclose(probe.predict_proba(x), [[0.25, 0, 0.75, 0]] * 3)
    np.testing.assert_array_equal(probe.predict(x), [2, 2, 2])
    reg = protocol.fit_constant(np.array([1.0, 2.0, 6.0]), "regression")
    np.testing.assert_allclose(reg.predict(np.ones((2, 5))), [3.0, 3.0])
    with pytest.raises(ValueError, match="n_features"):
        reg.export()


def test_export_round_trip(data):
    rng, x, groups, w = data
    y_reg = x @ w + 0.5 * rng.normal(size=N)
    y_cls = _classes(x, rng.normal(size=(D, 3)))
    tr, va = groups < 20, groups >= 20
    mlp_kw = dict(hidden=16, max_epochs=5, batch=128)
    probes = {
        "regression": [
            protocol.fit_ridge(x, y_reg, groups),
            protocol.fit_mlp(x[tr], y_reg[tr], "regression", None, x[va], y_reg[va], **mlp_kw),
            protocol.fit_constant(y_reg, "regression", n_features=D),
        ],
        "classification": [
            protocol.fit_logistic(x, y_cls, groups, n_classes=4),
            protocol.fit_mlp(x[tr], y_cls[tr], "classification", 4, x[va], y_cls[va], **mlp_kw),
            protocol.fit_constant(y_cls, "classification", n_classes=4, n_features=D),
        ],
    }
    for kind, fitted in probes.items():
        for probe in fitted:
            exp = probe.export()
            assert all(isinstance(v, torch.Tensor) for k, v in exp.items() if k != "kind")
            got = _apply_export(exp, x, kind)
            want = probe.predict(x) if kind == "regression" else probe.predict_proba(x)
            np.testing.assert_allclose(
                got, want, rtol=1e-5, atol=1e-5, err_msg=type(probe).__name__
            )
    assert probes["classification"][1].export()["kind"] == "mlp"


def test_temperature_scale():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2000, 3))
    y = np.array([rng.choice(3, p=p) for p in softmax(logits, axis=1)])
    t_over = protocol.temperature_scale(10 * logits, y)
    assert t_over > 1.0 and t_over == pytest.approx(10, rel=0.3)
    assert protocol.temperature_scale(logits, y) == pytest.approx(1.0, rel=0.2)
    # every point right with a margin: the NLL falls all the way down; sharpening stops at 2x
    right = np.eye(3)[y] * 3.0
    assert protocol.temperature_scale(right, y) == pytest.approx(protocol.MIN_TEMPERATURE, rel=1e-3)
    probe = protocol.fit_logistic(logits, y, np.arange(2000) % 10, n_classes=3)
    assert probe.logits(logits).shape == (2000, 3)
