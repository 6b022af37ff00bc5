"""`gair eval`: the tidy eval.json (rows, comparisons, heads, decisions), its protocol
(points by split, train-only geolocation gallery, baselines) and the saved heads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gair import build_model, save_model
from gair.evaluation import geolocation as G
from gair.evaluation.features import FEATURE_SETS, render_queries
from gair.evaluation.geoclip_location import geoclip_features
from gair.evaluation.points import eval_points
from gair.evaluation.report import primary_prior
from gair.evaluation.run import evaluate, markdown_table, retrieval_rows
from gair.heads import Heads
from gair.world import grid

TASKS = {"koppen", "landcover", "elevation_m", "population", "continent"}
ROW_KEYS = {"task", "method", "input", "metric", "higher_is_better", "mean", "ci_low", "ci_high"}
ROW_KEYS |= {"n", "split"}
COMP_KEYS = {"task", "method", "baseline", "metric", "diff_mean", "diff_ci_low", "diff_ci_high"}


@pytest.fixture(scope="module")
def evaluated(world, tmp_path_factory):
    torch.manual_seed(0)
    run = save_model(build_model("tiny"), tmp_path_factory.mktemp("eval") / "run")
    result = evaluate(
        run, world, n_land=700, n_train=150, n_boot=100, geo_queries=30, geo_gallery=1200
    )
    return run, result


def test_rows_and_comparisons_are_tidy(evaluated):
    run, result = evaluated
    rows = result["rows"]
    assert all(set(r) >= ROW_KEYS for r in rows)
    assert all(
        r["ci_low"] <= r["mean"] + 1e-9 <= r["ci_high"] + 2e-9
        for r in rows
        if r["split"] == "test" and np.isfinite(r["ci_low"])
    )
    assert {r["split"] for r in rows} <= {"test", "unseen"}
    for task in TASKS:
        have = {(r["method"], r["input"]) for r in rows if r["task"] == task}
        assert set(FEATURE_SETS) | {("mean-predictor", "none")} <= have, task
        assert any(r["method"] == "gair-heads" for r in rows if r["task"] == task)
    skill = [r for r in rows if r["method"] == "mean-predictor" and r["metric"] == "skill"]
    assert skill and all(abs(r["mean"]) < 1e-9 for r in skill)  # the training mean itself
    mae = [r for r in rows if r["metric"] == "mae"]
    assert mae and not any(r["higher_is_better"] for r in mae)
    comps = result["comparisons"]
    assert comps and all(set(c) >= COMP_KEYS for c in comps)
    assert {c["baseline"] for c in comps if c["task"] == "koppen"} >= {
        "random-init/inr/linear",
        "raw-pixels/pixels/linear",
        "coordinates/xyz/knn",
    }
    assert json.loads((run / "eval.json").read_text())["rows"] == json.loads(json.dumps(rows))
    table = markdown_table(result)
    assert "| koppen (accuracy) |" in table and "Geolocation" in table


def test_geolocation_rows_baselines_and_decision(evaluated):
    _, result = evaluated
    rows = [r for r in result["rows"] if r["task"].startswith("geolocation")]
    assert {r["task"] for r in rows} == {"geolocation", "geolocation-no-signs"}
    answers = {(r["method"], r.get("answer")) for r in rows}
    priors = {("gallery-prior", "baseline"), ("area-prior", "baseline")}
    assert priors | {("country-oracle", "baseline")} <= answers
    assert {("gair", a) for a in G.ANSWERS} <= answers
    decision = result["decisions"]["geolocation_primary_answer"]
    assert decision["answer"] in G.ANSWERS and set(decision["val_median_km"]) == set(G.ANSWERS)
    assert decision["answer"] == min(decision["val_median_km"], key=decision["val_median_km"].get)
    # each continent's figure of the primary answer stands beside the flat-score answers of both
    # priors, and the claims compare it with its own prior's
    grouped = {(r["method"], r["group"]) for r in rows if r.get("group", "").startswith("cont")}
    for method in ("gair", "gallery-prior", "area-prior"):
        assert any(m == method for m, _ in grouped), method
    assert primary_prior(result) == G.PRIOR_OF[decision["answer"]]
    # the primary answer is compared, paired, with the baselines and GAIR's other answers
    compared = {c["baseline"] for c in result["comparisons"] if c["task"] == "geolocation"}
    others = {f"gair/{a}" for a in G.ANSWERS if a != decision["answer"]}
    assert {"gallery-prior", "area-prior", "country-oracle"} | others <= compared


def test_heads_chosen_on_val_and_saved(evaluated):
    run, result = evaluated
    heads = Heads.load(run)
    assert heads is not None and set(heads.tasks) == TASKS
    for task, rec in result["heads"].items():
        chosen = rec["chosen"]
        assert (heads.inputs[task], heads.kinds[task]) == (chosen["input"], chosen["probe"])
        regression = heads.tasks[task].kind == "regression"
        # 3 inputs x 2 probes, and for regression x 2 targets (itself, asinh), chosen on val
        assert len(rec["candidates"]) == (12 if regression else 6) and rec["temperature"] > 0
        # classes by val accuracy, numbers by val mean absolute error
        if regression:
            assert rec["rule"] == "lowest val mae" and "val_skill" in chosen
            best = min(rec["candidates"], key=lambda c: c["val_mae"])
        else:
            assert rec["rule"] == "highest val accuracy"
            best = max(rec["candidates"], key=lambda c: c["val_accuracy"])
        assert best == chosen
        # chosen on one half of val (by block), calibrated on the other
        halves = rec["val_points"]
        assert halves["halves"] == "by block hash", halves
        assert halves["choose"] >= 20 and halves["calibrate"] >= 20
        if regression:
            assert heads.targets[task] == chosen["target"]
            assert {c["target"].split(":")[0] for c in rec["candidates"]} == {"identity", "asinh"}
    e = heads.in_dim
    x = np.random.default_rng(0).normal(size=(3, e)).astype(np.float32)
    pred = heads.predict({"inr": x, "location": x})
    assert pred["elevation_m"].shape == (3,)
    np.testing.assert_allclose(pred["koppen"].sum(1), 1.0, rtol=1e-5)
    if "location" in heads.needs:
        with pytest.raises(ValueError, match="location"):
            heads.predict(x)


def test_points_follow_the_world_splits(world):
    pts = eval_points(world, n_land=1500, n_train=300, n_unseen=50, seed=1)
    assert len(pts["train"]["latlon"]) == 300
    for split in ("train", "val", "test", "unseen"):
        got = world.split_of(pts[split]["latlon"])
        assert (got == split).all(), split
    assert world.labels(pts["test"]["latlon"])["is_land"].all()
    assert len(set(pts["test"]["block"])) > 20


def test_geolocation_gallery_is_train_only_and_far_from_queries(world):
    sv = world.streetviews
    queries = sv.loc[sv["split"] == "test", ["lat", "lon"]].to_numpy()[:200]
    gallery = G.train_gallery(world, queries, 25.0, 50_000, 0)
    assert (world.split_of(gallery) == "train").all()
    from scipy.spatial import cKDTree

    d, _ = cKDTree(grid.unit_vectors(gallery[:, 0], gallery[:, 1])).query(
        grid.unit_vectors(queries[:, 0], queries[:, 1])
    )
    assert grid.chord_to_km(d).min() >= 25.0
    base = G.baseline_answers(world, queries, gallery, 0)
    assert len({tuple(p) for p in base["gallery-prior"].round(6)}) == 1
    same = world.labels(base["country-oracle"])["country"] == world.labels(queries)["country"]
    assert same.mean() > 0.5  # the median of a country's places mostly lies in it


def test_geoclip_location_features_are_pretrained():
    ll = np.array([[48.85, 2.35], [48.9, 2.4], [-33.9, 151.2]])
    f = geoclip_features(ll)
    assert f.shape == (3, 512) and np.isfinite(f).all()
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    assert f[0] @ f[1] > f[0] @ f[2] + 0.2  # Paris is nearer Paris than Sydney


def test_signs_removed_changes_only_the_signs(world):
    ll = np.array([[48.86, 2.35], [40.71, -74.0], [35.68, 139.76]])
    with_signs = render_queries(world, ll, 64, signs=True)
    without = render_queries(world, ll, 64, signs=False)
    diff = np.abs(with_signs.astype(int) - without).sum(-1) > 0
    assert diff.any() and diff.mean() < 0.2


def test_retrieval_recall_counts_correct_first():
    e = np.eye(4, dtype=np.float32)
    blocks = np.array(["a", "b", "c", "d"])
    rows = retrieval_rows("gair", e, e, blocks, 100, 0)
    assert all(r["mean"] == 1.0 for r in rows)
    shuffled = retrieval_rows("gair", e, e[[1, 0, 3, 2]], blocks, 100, 0)
    assert [r["mean"] for r in shuffled if r["metric"] == "R@1"] == [0.0, 0.0]


def test_heads_refuse_an_unknown_input_or_temperature(evaluated, tmp_path):
    import shutil

    run, _ = evaluated
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    cfg = json.loads((copy / "config.json").read_text())
    original = cfg["heads"]["tasks"][0].get("input", "inr")
    cfg["heads"]["tasks"][0]["input"] = "pixels"
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="input must be one of"):
        Heads.load(copy)
    cfg["heads"]["tasks"][0]["input"] = original
    cfg["heads"]["tasks"][0]["temperature"] = -1
    (copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="temperature"):
        Heads.load(copy)
    cfg["heads"]["tasks"][0]["temperature"] = 1.0
    for bad in ("log", "asinh:0", "asinh:x"):
        cfg["heads"]["tasks"][0]["target"] = bad
        (copy / "config.json").write_text(json.dumps(cfg))
        with pytest.raises(ValueError, match="target transform"):
            Heads.load(copy)


def test_a_head_fitted_on_asinh_predicts_in_the_task_units(evaluated, tmp_path):
    """The head stores its target transform and `predict` undoes it, after a save and load."""
    import shutil

    from gair import targets

    run, _ = evaluated
    heads = Heads.load(run)
    x = np.random.default_rng(1).normal(size=(5, heads.in_dim)).astype(np.float32)
    given = {"inr": x, "location": x}
    raw = heads.predict(given)["elevation_m"]  # as fitted, under its own target
    raw_t = targets.forward(heads.targets["elevation_m"], raw)
    heads.targets["elevation_m"] = "asinh:250"
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    heads.save(copy)
    again = Heads.load(copy)
    assert again.targets["elevation_m"] == "asinh:250"
    np.testing.assert_allclose(
        again.predict(given)["elevation_m"], 250 * np.sinh(raw_t), rtol=1e-4, atol=1e-3
    )


def test_target_transforms_round_trip_and_refuse_bad_names():
    from gair import targets

    y = np.array([-400.0, 0.0, 12.0, 300.0, 8000.0])
    name = targets.asinh_for(y)
    assert name == "asinh:300"
    np.testing.assert_allclose(targets.inverse(name, targets.forward(name, y)), y, rtol=1e-9)
    np.testing.assert_array_equal(targets.forward("identity", y), y)
    for bad in ("", "sqrt", "asinh", "asinh:-1", "asinh:nan"):
        with pytest.raises(ValueError, match="target transform"):
            targets.parse(bad)


def test_claims_are_checked_from_eval_json(evaluated, capsys):
    from gair.evaluation.claims import check, main

    run, result = evaluated
    checks = check(result)
    assert len(checks) == 8 and all(isinstance(ok, bool) and why for ok, why in checks.values())
    code = main([str(run)])
    out = capsys.readouterr().out
    assert out.startswith("| claim |") and code == (
        0 if all(ok for ok, _ in checks.values()) else 1
    )


def test_nearest_street_view_rows_and_the_weight_chosen_on_val(evaluated):
    from gair.place_query import WEIGHTS, from_json, run_weight

    run, result = evaluated
    rows = [r for r in result["rows"] if r["task"].startswith("nearest-street-view")]
    have = {(r["task"], r["method"], r["input"]) for r in rows if r["split"] == "test"}
    for method in ("gair", "random-init"):
        for inp in ("inr", "location", "query"):
            assert ("nearest-street-view", method, inp) in have
    assert {("nearest-street-view", b, "none") for b in ("random-view", "closest-view")} <= have
    assert ("nearest-street-view-no-signs", "gair", "query") in have
    decision = result["decisions"]["streetview_query"]
    weight = from_json(decision["location_weight"])
    assert weight in WEIGHTS and len(decision["val_median_km"]) == len(WEIGHTS)
    assert decision["val_median_km"][str(decision["location_weight"])] == min(
        decision["val_median_km"].values()
    )
    assert run_weight(run) == weight  # recorded for the app beside the heads
    med = {
        (r["method"], r["input"]): r["mean"]
        for r in rows
        if r["task"] == "nearest-street-view"
        and r["metric"] == "median_km"
        and r["split"] == "test"
    }
    assert all(med[("closest-view", "none")] <= km for km in med.values())  # the floor
    assert "Nearest street view" in markdown_table(result)


def test_stages_rerun_keeps_the_other_stages(evaluated, world, tmp_path):
    import shutil

    run, result = evaluated
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    kw = dict(n_land=700, n_train=150, n_boot=100, geo_queries=30, geo_gallery=1200)
    again = evaluate(copy, world, stages=("nearest-street-view",), **kw)
    kept = [r for r in result["rows"] if not r["task"].startswith("nearest-street-view")]
    assert [r for r in again["rows"] if not r["task"].startswith("nearest-street-view")] == kept
    assert again["comparisons"] == result["comparisons"]
    assert again["decisions"] == result["decisions"]  # the same points: the same choice
    assert again["settings"]["stages_run"] == ["nearest-street-view"]
    with pytest.raises(ValueError, match="run every stage"):
        evaluate(copy, world, stages=("retrieval",), **(kw | {"seed": 1}))
    with pytest.raises(ValueError, match="stages must be"):
        evaluate(copy, world, stages=("everything",), **kw)
    broken = json.loads((copy / "eval.json").read_text())
    broken["rows"].append([{"task": "a list where a row should be"}])
    (copy / "eval.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="malformed rows"):
        evaluate(copy, world, stages=("retrieval",), **kw)


def test_place_query_weights():
    from gair.place_query import describe, from_json, place_query

    inr = np.array([[3.0, 0, 0, 0]], np.float32)
    loc = np.array([[0, 2.0, 0, 0]], np.float32)
    assert np.allclose(place_query(inr, loc, 0), [[1, 0, 0, 0]])
    assert np.allclose(place_query(inr, loc, float("inf")), [[0, 1, 0, 0]])
    both = place_query(inr, loc, 1.5)
    assert np.allclose(np.linalg.norm(both, axis=-1), 1) and np.allclose(
        both, np.array([[1, 1.5, 0, 0]]) / np.hypot(1, 1.5)
    )
    with pytest.raises(ValueError, match="location_weight"):
        place_query(inr, loc, -1)
    with pytest.raises(ValueError, match="differ in shape"):
        place_query(inr, loc[:, :3], 1)
    assert from_json("inf") == float("inf") and "location" in describe(float("inf"))
    with pytest.raises(ValueError, match="location_weight"):
        from_json("much")


def test_regression_heads_carry_a_val_interval_scored_on_test(evaluated):
    from gair.heads import Heads

    run, result = evaluated
    heads = Heads.load(run)
    regression = {n for n, t in heads.tasks.items() if t.kind == "regression"}
    assert regression and set(heads.intervals) == regression
    assert all("interval" in result["heads"][n] for n in regression)
    cov = [
        r
        for r in result["rows"]
        if r["method"] == "gair-heads" and r["metric"] == "interval80_coverage"
    ]
    assert {r["task"] for r in cov} == regression and all(0 <= r["mean"] <= 1 for r in cov)


def test_calibration_metrics_on_known_cases():
    from gair.evaluation.stats import calibration_metrics

    y = np.array([0, 1, 0, 1])
    sure_right = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert calibration_metrics(y, sure_right)["ece"] == pytest.approx(0.0)
    # says 0.9 for class 0 everywhere, right half the time: a gap of 0.4 in the one bin
    overconfident = np.tile([0.9, 0.1], (4, 1))
    got = calibration_metrics(y, overconfident)
    assert got["ece"] == pytest.approx(0.4)
    assert got["log_loss"] == pytest.approx(-(np.log(0.9) + np.log(0.1)) / 2)
    # honest 0.6 on points right 60% of the time: no gap
    y10 = np.array([0] * 6 + [1] * 4)
    assert calibration_metrics(y10, np.tile([0.6, 0.4], (10, 1)))["ece"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="classes outside"):
        calibration_metrics(np.array([2]), np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        calibration_metrics(y, np.ones(4))


def test_classification_heads_report_their_calibration_on_held_out_points(evaluated):
    run, result = evaluated
    heads = Heads.load(run)
    classes = {n for n, t in heads.tasks.items() if t.kind == "classification"}
    cal = [r for r in result["rows"] if r["method"] == "gair-heads" and r["metric"] == "ece"]
    assert {r["task"] for r in cal if r["split"] == "test"} == classes
    assert all(0 <= r["ci_low"] <= r["mean"] <= r["ci_high"] <= 1 for r in cal)
    assert all(not r["higher_is_better"] for r in cal)
    loss = [r for r in result["rows"] if r["method"] == "gair-heads" and r["metric"] == "log_loss"]
    assert {r["task"] for r in loss if r["split"] == "test"} == classes


def test_val_halves_are_whole_blocks_and_stable():
    from gair.evaluation.heads_select import calibration_half

    blocks = np.array([f"81{i:03d}ffffffffff" for i in range(200)]).repeat(3)
    cal = calibration_half(blocks)
    assert cal.shape == blocks.shape and 0.35 < cal.mean() < 0.65
    by_block = {b: set(cal[blocks == b].tolist()) for b in set(blocks.tolist())}
    assert all(len(v) == 1 for v in by_block.values())  # a block is never split
    np.testing.assert_array_equal(cal, calibration_half(blocks[::-1])[::-1])  # order-free
