"""The app under damage: an altered index is reported as the index's problem (not the
checkpoint's), unusable heads hide the predictions with the reason while clicks keep working,
and the background integrity check catches what opening cannot."""

from __future__ import annotations

import json
import shutil
import time

import pandas as pd
import pytest

from app import logic
from app.resources import Settings, SetupError, open_resources


@pytest.fixture(scope="module")
def app_index(app_paths):
    return app_paths["run"], app_paths["index"]


@pytest.fixture
def copies(app_index, tmp_path):
    run, index_dir = app_index
    shutil.copytree(run, tmp_path / "run")
    shutil.copytree(index_dir, tmp_path / "index")
    return tmp_path / "run", tmp_path / "index"


def test_damaged_index_is_reported_as_the_index(copies, world_dir):
    run, index_dir = copies
    cells = pd.read_parquet(index_dir / "cells.parquet")
    cells.iloc[::-1].to_parquet(index_dir / "cells.parquet", index=False)
    manifest = json.loads((index_dir / "manifest.json").read_text())
    manifest["files"]["cells.parquet"]["bytes"] = (index_dir / "cells.parquet").stat().st_size
    (index_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SetupError) as err:
        open_resources(Settings(index=str(index_dir), world=str(world_dir), checkpoint=str(run)))
    message = err.value.message
    assert "damaged" in message and "cells.parquet" in message and "gair index build" in message
    assert "checkpoint" not in message.split(":")[0]


def test_heads_with_a_wrong_class_count_hide_predictions(copies, world_dir):
    run, index_dir = copies
    config = json.loads((run / "config.json").read_text())
    task = next(t for t in config["heads"]["tasks"] if t["name"] == "landcover")
    task["classes"] = task["classes"][:-1]  # the file's head still outputs one more class
    (run / "config.json").write_text(json.dumps(config))
    res = open_resources(Settings(index=str(index_dir), world=str(world_dir), checkpoint=str(run)))
    cell = res.cells.iloc[0]
    result = logic.click_result(
        res, float(cell["lat"]), float(cell["lon"]), k=3, thumbnails=False, heatmap=False
    )
    assert result["predictions"] is None
    assert len(result["places"]) == 3 and len(result["streetviews"]) == 3  # still answered
    assert res.heads_error and task["name"] in res.heads_error


def test_background_verification_catches_a_flipped_byte(copies, world_dir):
    run, index_dir = copies
    path = index_dir / "streetviews.npy"
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))
    res = open_resources(Settings(index=str(index_dir), world=str(world_dir), checkpoint=str(run)))
    res.verify_in_background()
    deadline = time.time() + 60
    while res.integrity["state"] in ("checking", "not checked") and time.time() < deadline:
        time.sleep(0.05)
    assert res.integrity["state"] == "damaged"
    assert "streetviews.npy" in res.integrity["error"]


def test_intact_index_verifies_in_background(app_index, world_dir):
    run, index_dir = app_index
    res = open_resources(Settings(index=str(index_dir), world=str(world_dir), checkpoint=str(run)))
    res.verify_in_background()
    deadline = time.time() + 60
    while res.integrity["state"] != "ok" and time.time() < deadline:
        time.sleep(0.05)
    assert res.integrity == {"state": "ok", "error": None}
