"""`gair eval`: the tidy table's structure, baselines, saved heads, predictions in the index."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gair import build_model, save_model
from gair.evaluation.run import evaluate, markdown_table, retrieval_rows
from gair.heads import Heads

METHODS = {"gair", "location-only", "center-pool", "bilinear", "random-init", "mean-predictor"}
TASKS = {"koppen", "landcover", "elevation_m", "population", "continent"}


@pytest.fixture(scope="module")
def evaluated(world, tmp_path_factory):
    torch.manual_seed(0)
    run = save_model(build_model("tiny"), tmp_path_factory.mktemp("eval") / "run")
    result = evaluate(run, world, n_train=60, n_test=30, seeds=2, probes=("linear",))
    return run, result


def test_table_structure_and_baselines(evaluated):
    run, result = evaluated
    rows = result["rows"]
    keys = {"task", "method", "metric", "higher_is_better", "mean", "std", "n"}
    assert all(keys <= set(r) for r in rows)
    assert {r["method"] for r in rows} == METHODS
    geo = {"geolocalization", "geolocalization-best-entry", "geolocalization-xview"}
    assert TASKS | {"sv->place", "place->sv"} | geo == {r["task"] for r in rows}
    for task in geo - {"geolocalization"}:  # the median point only answers the first
        assert {r["method"] for r in rows if r["task"] == task} == {"gair", "random-init"}
    median = [r for r in rows if r["task"] == "geolocalization" and r["metric"] == "median_km"]
    assert {r["method"] for r in median} == {"gair", "random-init", "mean-predictor"}
    assert all(np.isfinite(r["mean"]) and r["mean"] >= 0 for r in median)
    for task in TASKS:
        methods = {r["method"] for r in rows if r["task"] == task}
        assert methods == METHODS, task
    reg = [r for r in rows if r["task"] == "elevation_m" and r["metric"] == "mae"]
    assert all(r["higher_is_better"] is False for r in reg)
    seeded = [r for r in rows if r["method"] == "gair" and r["task"] == "koppen"]
    assert all(r["std"] >= 0 and np.isfinite(r["mean"]) for r in seeded)
    assert json.loads((run / "eval.json").read_text())["rows"] == json.loads(json.dumps(rows))
    table = markdown_table(result)
    assert table.startswith("| task | metric | gair |") and "geolocalization" in table


def test_mean_predictor_r2_is_about_zero(evaluated):
    _, result = evaluated
    r2 = [
        r["mean"] for r in result["rows"] if r["method"] == "mean-predictor" and r["metric"] == "r2"
    ]
    assert all(v <= 0.0 + 1e-9 for v in r2)  # a constant never explains held-out variance


def test_heads_saved_and_predict(evaluated):
    run, _ = evaluated
    heads = Heads.load(run)
    assert heads is not None and set(heads.tasks) == TASKS
    emb = np.random.default_rng(0).normal(size=(3, 256)).astype(np.float32)
    pred = heads.predict(emb)
    assert pred["elevation_m"].shape == (3,)
    np.testing.assert_allclose(pred["koppen"].sum(1), 1.0, rtol=1e-5)
    assert set(heads.predict_table(emb)) >= {"pred_koppen", "pred_koppen_p", "pred_elevation_m"}


def test_retrieval_recall_counts_correct_first():
    e = np.eye(4, dtype=np.float32)
    rows = retrieval_rows("gair", e, e)
    assert all(r["mean"] == 1.0 for r in rows)
    shuffled = retrieval_rows("gair", e, e[[1, 0, 3, 2]])
    assert [r["mean"] for r in shuffled if r["metric"] == "R@1"] == [0.0, 0.0]
