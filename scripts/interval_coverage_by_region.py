"""How often a run's regression ranges hold the truth, by region, and how much val's own blocks
let that vary: the figures behind the README's paragraph on the elevation range.

Usage: .venv/bin/python scripts/interval_coverage_by_region.py [RUN_DIR] [WORLD_DIR]
(defaults checkpoints/demo, data/world; the eval points of `gair eval --n-land 12000
--n-train 5000`, seed 0). Prints, per regression head: coverage on the val half that calibrated
it, with the 10th and 5th percentiles over 1,000 block-bootstrap draws of that half (how much
the coverage of ~100 regions like val's varies), and coverage per continent on val and test.
Reads the test split: a report of the shipped heads, never an input to choosing them.
"""

from __future__ import annotations

import sys

import numpy as np


def main(run_dir: str = "checkpoints/demo", world_dir: str = "data/world") -> None:
    from gair.evaluation.features import Embedder
    from gair.evaluation.heads_select import calibration_half
    from gair.evaluation.points import eval_points
    from gair.evaluation.stats import block_bootstrap
    from gair.heads import Heads
    from gair.intervals import coverage
    from gair.world.world import World

    world = World.open(world_dir)
    heads = Heads.load(run_dir)
    if heads is None or not heads.intervals:
        raise SystemExit(
            f"{run_dir}: no heads with ranges (run `gair eval --checkpoint {run_dir}`)"
        )
    embedder = Embedder(run_dir, world)
    pts = eval_points(world, n_land=12000, n_train=5000, n_unseen=800, seed=0)
    # each split's points are embedded, predicted and labelled once, for every head
    preds, labels = {}, {}
    for split in ("val", "test"):
        ll = pts[split]["latlon"]
        preds[split] = heads.predict({"inr": embedder.point(ll), "location": embedder.location(ll)})
        labels[split] = world.labels(ll)
    for task, band in heads.intervals.items():
        print(f"{task}: {band.level:.0%} range")
        for split in ("val", "test"):
            blocks, lab = pts[split]["block"], labels[split]
            pred = preds[split][task].reshape(-1)
            truth = lab[task].astype(np.float64)
            if split == "val":
                cal = calibration_half(blocks)

                def cov(y_true, y_pred, band=band):
                    return coverage(band, y_pred, y_true)

                point, *_, draws = block_bootstrap(
                    cov, blocks[cal], 1000, 0, y_true=truth[cal], y_pred=pred[cal]
                )
                q10, q05 = np.quantile(draws, [0.1, 0.05])
                print(
                    f"  val calibration half: {point:.3f} over {cal.sum()} points in "
                    f"{len(set(blocks[cal]))} blocks; block bootstrap 10th / 5th percentile "
                    f"{q10:.3f} / {q05:.3f}"
                )
            print(f"  {split}: {coverage(band, pred, truth):.3f} over {len(truth)} points")
            for name in sorted(set(lab["continent"]) - {""}):
                m = lab["continent"] == name
                print(f"    {name:14s} {coverage(band, pred[m], truth[m]):.3f} ({m.sum()} points)")


if __name__ == "__main__":
    main(*sys.argv[1:])
