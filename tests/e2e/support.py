"""A tiny index for the app's tests: a randomly initialised "tiny" GAIR, an H3 grid over a
European bbox, a small rendered gallery, and quickly fitted prediction heads (so every panel
has something to show). Built once per test session."""

from __future__ import annotations

from pathlib import Path

import numpy as np

APP_BBOX = (-11.0, 35.0, 30.0, 60.0)  # W, S, E, N: western and central Europe, some sea
APP_GRID = "h3:3"
GALLERY = 200


def build_app_index(world_dir: Path, root: Path, with_heads: bool = True) -> tuple[Path, Path]:
    """-> (run_dir, index_dir) under root."""
    import torch

    from gair import build_model, save_model
    from gair.world import World
    from index.build import BuildSpec, build_index

    run = root / "run"
    index_dir = root / "index"
    if not (index_dir / "manifest.json").is_file():
        torch.manual_seed(0)
        save_model(build_model("tiny"), run)
        spec = BuildSpec(
            checkpoint=str(run),
            world=str(world_dir),
            grid=APP_GRID,
            bbox=APP_BBOX,
            gallery_size=GALLERY,
            shard_size=512,
        )
        build_index(spec, index_dir, world=World.open(world_dir), progress=False)
        if with_heads:
            fit_heads(run, index_dir)
    return run, index_dir


def fit_heads(run_dir: Path, index_dir: Path, steps: int = 30) -> None:
    """Prediction heads for the default tasks, fitted briefly on the index's own cells."""
    import pandas as pd

    from gair import intervals
    from gair.evaluation.probes import fit_probe
    from gair.evaluation.tasks import default_tasks
    from gair.heads import Heads
    from gair.place_query import save_run_weight
    from gair.world.world import IGBP_CLASSES

    cells = pd.read_parquet(index_dir / "cells.parquet")
    x = np.load(index_dir / "cells.npy")
    continents = sorted({c for c in cells["continent"] if c} | {"Africa", "Asia", "Europe"})
    tasks = default_tasks(list(IGBP_CLASSES), continents)
    probes, kinds, bands = {}, {}, {}
    for task in tasks:
        y, ok = task.encode(cells[task.name].to_numpy())
        n_out = 1 if task.kind == "regression" else len(task.classes)
        probes[task.name] = fit_probe(x[ok], y[ok], task.kind, n_out, "linear", seed=0, steps=steps)
        kinds[task.name] = "linear"
        if task.kind == "regression":  # a range from the cells themselves (a fixture, not a claim)
            import torch

            with torch.no_grad():
                pred = probes[task.name](torch.as_tensor(x[ok], dtype=torch.float32))[:, 0]
            bands[task.name] = intervals.fit(pred.numpy(), y[ok], limits=(y[ok].min(), y[ok].max()))
    Heads(tasks, probes, kinds, intervals=bands).save(run_dir)
    save_run_weight(run_dir, {"location_weight": 1.0})  # street views: INR + 1 x location
