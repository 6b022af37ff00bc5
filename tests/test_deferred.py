"""`gair.deferred.DeferredEmbedder`: the app's first page without torch, same embeddings after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gair import build_model, save_model
from gair.deferred import DeferredEmbedder
from gair.embed import Embedder
from gair.run_dir import checkpoint_hash

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.manual_seed(0)
    return save_model(build_model("tiny"), tmp_path_factory.mktemp("deferred") / "run")


def test_identity_without_loading_then_the_same_embeddings(run):
    deferred = DeferredEmbedder(run)
    assert deferred.checkpoint_hash == checkpoint_hash(run) and deferred.dim == 256
    assert not deferred.loaded
    deferred.verify_weights()
    latlon = np.array([[48.85, 2.35], [-33.9, 18.4]])
    np.testing.assert_array_equal(deferred.location(latlon), Embedder(run).location(latlon))
    assert deferred.loaded and deferred.load() is deferred.load()


def test_background_load_and_its_error_on_the_next_use(run, tmp_path):
    deferred = DeferredEmbedder(run)
    deferred.load_in_background().join(timeout=120)
    assert deferred.loaded
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "model.safetensors"):
        (broken / name).write_bytes((run / name).read_bytes())
    with open(broken / "model.safetensors", "r+b") as fh:
        fh.truncate(1000)
    bad = DeferredEmbedder(broken)
    with pytest.raises(ValueError, match="SHA-256"):
        bad.verify_weights()
    bad.load_in_background().join(timeout=120)  # fails quietly in the thread ...
    with pytest.raises(ValueError):  # ... and loudly on the caller's next use
        bad.location(np.zeros((1, 2)))


def test_app_first_page_imports_no_torch(world_dir, tmp_path_factory):
    """Opening the app's resources, its layer menu, a truth overlay and the About facts import
    neither torch nor timm (they load after the first page); then the model loads on demand."""
    from tests.e2e.support import build_app_index

    root = tmp_path_factory.getbasetemp() / "app-index"
    root.mkdir(exist_ok=True)
    _, index_dir = build_app_index(world_dir, root)
    code = f"""
import json, sys
from app.resources import Settings, open_resources
from app import logic
res = open_resources(Settings(index={str(index_dir)!r}, world={str(world_dir)!r}))
layers = logic.map_layers(res)
truth = [n for n in layers if n.startswith("Truth ")]
overlay = logic.layer_overlay(res, truth[0])
first_page = {{"torch": "torch" in sys.modules, "timm": "timm" in sys.modules,
               "layers": layers, "heads": res.head_names, "overlay": overlay is not None}}
res.index.embedder.load()
first_page["loaded"] = res.model_ready
print(json.dumps(first_page))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    page = json.loads(out.stdout.strip().splitlines()[-1])
    assert page["torch"] is False and page["timm"] is False
    assert page["overlay"] and page["loaded"]
    assert all(f"Predicted {h}" in page["layers"] for h in page["heads"])
