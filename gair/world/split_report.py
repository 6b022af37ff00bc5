"""The make-up of a world's splits, as markdown: `python -m gair.world.split_report [WORLD]`.

For street-view places and for uniform random land points: the share of each split, the
number of held-out blocks that hold points, the continents of the test split and its ten
largest countries, and how much of it lies in countries with training places.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

SPLIT_ORDER = ["train", "val", "test", "unseen", "buffer"]


def _random_land(world, n: int, seed: int) -> np.ndarray:
    from gair.evaluation.points import random_land

    return random_land(world, n, seed)


def split_makeup(world, n_land: int = 20000, seed: int = 0) -> dict:
    """{"streetviews": {...}, "land": {...}} with shares, blocks, continents and countries."""
    from gair.world.splits import cells_of

    sv = world.streetviews
    res = int(world.manifest["splits"]["block_h3_res"])
    sets = {
        "streetviews": sv[["lat", "lon"]].to_numpy(),
        "land": _random_land(world, n_land, seed),
    }
    splits = {"streetviews": sv["split"].to_numpy(), "land": None}
    out = {}
    for name, ll in sets.items():
        split = splits[name] if splits[name] is not None else world.split_of(ll)
        lab = world.labels(ll)
        test = split == "test"
        seen = set(lab["country"][split == "train"])
        blocks = {
            s: len(set(cells_of(ll[split == s, 0], ll[split == s, 1], res)))
            for s in ("val", "test")
        }
        out[name] = {
            "n": int(len(ll)),
            "share": pd.Series(split)
            .value_counts(normalize=True)
            .reindex(SPLIT_ORDER)
            .fillna(0)
            .round(4)
            .to_dict(),
            "blocks_with_points": blocks,
            "test_continents": pd.Series(lab["continent"][test])
            .replace("", "(none)")
            .value_counts(normalize=True)
            .round(3)
            .to_dict(),
            "test_top_countries": pd.Series(lab["country"][test])
            .replace("", "(none)")
            .value_counts(normalize=True)
            .head(10)
            .round(3)
            .to_dict(),
            "test_in_seen_countries": round(
                float(np.isin(lab["country"][test], list(seen)).mean()), 4
            ),
        }
    return out


def markdown(makeup: dict) -> str:
    lines = ["| | " + " | ".join(SPLIT_ORDER) + " | val / test blocks | test in seen countries |"]
    lines.append("|---|" + "---|" * (len(SPLIT_ORDER) + 2))
    for name, m in makeup.items():
        shares = " | ".join(f"{100 * m['share'][s]:.1f}%" for s in SPLIT_ORDER)
        b = m["blocks_with_points"]
        lines.append(
            f"| {name} (n = {m['n']:,}) | {shares} | {b['val']} / {b['test']} | {100 * m['test_in_seen_countries']:.1f}% |"
        )
    for name, m in makeup.items():
        cont = ", ".join(f"{k} {100 * v:.1f}%" for k, v in m["test_continents"].items())
        top = ", ".join(f"{k} {100 * v:.1f}%" for k, v in m["test_top_countries"].items())
        lines += ["", f"Test split, {name}: continents {cont}.", f"Top countries: {top}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from gair.world import World

    print(markdown(split_makeup(World.open(sys.argv[1] if len(sys.argv) > 1 else "data/world"))))
