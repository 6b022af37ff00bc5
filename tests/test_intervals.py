"""Regression heads' prediction intervals (`gair.intervals`): split conformal with bins by the
predicted value, stored in config.json, checked on load, shown by the app."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gair.intervals import Interval, coverage, fit


def _heteroscedastic(n: int, seed: int):
    rng = np.random.default_rng(seed)
    pred = rng.uniform(0, 3000, n)  # e.g. elevation: errors grow with the value
    truth = pred + rng.normal(0, 10 + 0.2 * pred)
    return pred, truth


def test_coverage_holds_on_new_points_and_bins_follow_the_noise():
    pred, truth = _heteroscedastic(2000, 0)
    band = fit(pred, truth, level=0.8, bins=4)
    new_pred, new_truth = _heteroscedastic(20000, 1)
    assert abs(coverage(band, new_pred, new_truth) - 0.8) < 0.03
    widths = np.array(band.hi) - np.array(band.lo)
    assert len(widths) == 4 and np.all(np.diff(widths) > 0)  # wider where the errors are
    lo, hi = band.bounds([5.0, 2900.0])
    assert hi[0] - lo[0] < hi[1] - lo[1]


def test_few_points_get_fewer_bins_and_the_dict_round_trips():
    pred, truth = _heteroscedastic(120, 2)
    band = fit(pred, truth)
    assert len(band.edges) == 1  # 120 points: two bins of >= 50
    assert Interval.from_dict(band.to_dict()) == band
    with pytest.raises(ValueError, match="paired"):
        fit(pred[:5], truth[:5])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"level": 1.5}, "level"),
        ({"lo": [0.0]}, "one per bin"),
        ({"edges": [2.0, 1.0], "lo": [0, 0, 0], "hi": [1, 1, 1]}, "ascending"),
        ({"hi": [float("nan"), 1.0]}, "finite"),
        ({"lo": [5.0, 0.0], "hi": [1.0, 1.0]}, "exceed"),
    ],
)
def test_a_malformed_interval_is_named(change, message):
    good = {"level": 0.8, "edges": [1.0], "lo": [-1.0, -2.0], "hi": [1.0, 2.0]}
    with pytest.raises(ValueError, match=message):
        Interval.from_dict(good | change, "head 'elevation_m' interval")


def test_heads_save_and_load_their_intervals(tmp_path):
    import torch

    from gair import build_model, save_model
    from gair.evaluation.probes import Probe
    from gair.evaluation.tasks import Task
    from gair.heads import Heads

    torch.manual_seed(0)
    run = save_model(build_model("tiny"), tmp_path / "run")
    dim = int(json.loads((run / "config.json").read_text())["model"]["embed_dim"])
    band = Interval(0.8, (100.0,), (-10.0, -200.0), (12.0, 300.0))
    tasks = [Task("elevation_m", "regression", units="m"), Task("koppen", "classification",
             classes=["A (tropical)", "B (arid)", "C (temperate)", "D (continental)", "E (polar)"])]  # fmt: skip
    probes = {"elevation_m": Probe(dim, 1, "linear"), "koppen": Probe(dim, 5, "linear")}
    heads = Heads(
        tasks,
        probes,
        {"elevation_m": "linear", "koppen": "linear"},
        intervals={"elevation_m": band},
    )
    heads.save(run)
    loaded = Heads.load(run)
    assert loaded.intervals == {"elevation_m": band}
    with pytest.raises(ValueError, match="regression tasks only"):
        Heads(
            tasks, probes, {"elevation_m": "linear", "koppen": "linear"}, intervals={"koppen": band}
        )


def test_the_app_shows_the_interval_of_a_value():
    from types import SimpleNamespace

    from app.logic.labels import regression_answer

    band = Interval(0.8, (100.0,), (-10.0, -200.0), (12.0, 300.0))
    cfg = {"heads": {"tasks": [{"name": "elevation_m", "interval": band.to_dict()}]}}
    res = SimpleNamespace(run_config=cfg)
    low = regression_answer(res, "elevation_m", 50.0, {"units": "m"})
    assert low["interval"] == (40.0, 62.0) and low["level"] == 0.8 and low["units"] == "m"
    high = regression_answer(res, "elevation_m", 1000.0, {})
    assert high["interval"] == (800.0, 1300.0)
    bare = regression_answer(SimpleNamespace(run_config={}), "elevation_m", 1.0, {})
    assert "interval" not in bare and bare["value"] == 1.0


def test_limits_keep_values_and_bounds_inside_the_training_range():
    pred, truth = _heteroscedastic(400, 3)
    band = fit(pred, truth, limits=(0.0, 3000.0))
    lo, hi = band.bounds([1.0, 2999.0])
    assert lo[0] >= 0.0 and hi[1] <= 3000.0
    assert band.clip([-5.0, 10.0, 4000.0]).tolist() == [0.0, 10.0, 3000.0]
    assert Interval.from_dict(band.to_dict()) == band
    with pytest.raises(ValueError, match="limits"):
        Interval.from_dict(band.to_dict() | {"limits": [5.0, 1.0]})
    no_limits = fit(pred, truth)
    assert no_limits.clip([-5.0]).tolist() == [-5.0] and "limits" not in no_limits.to_dict()


def test_the_app_keeps_a_value_inside_the_training_range():
    from types import SimpleNamespace

    from app.logic.labels import regression_answer

    band = Interval(0.8, (), (-0.5,), (0.5,), limits=(0.0, 7.0))
    res = SimpleNamespace(
        run_config={"heads": {"tasks": [{"name": "population", "interval": band.to_dict()}]}}
    )
    out = regression_answer(res, "population", -0.2, {})
    assert out["value"] == 0.0 and out["interval"] == (0.0, 0.3)
