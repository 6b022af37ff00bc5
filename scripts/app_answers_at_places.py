"""What the app's Predictions panel says after a click at well-known places, beside the world's
truth: the same calls as a click (`open_resources`, the point's INR and location embeddings,
`predictions_for`, `truth_at`), with each class's probability and each number's 80% range.

    .venv/bin/python scripts/app_answers_at_places.py [INDEX_DIR]

A check of the product where a user clicks (cities, a desert, coasts, borders), not a benchmark:
docs/APP.md quotes it.
"""

from __future__ import annotations

import sys

import numpy as np

PLACES = {
    "Paris": (48.86, 2.35),
    "Sahara (Algeria)": (25.0, 3.0),
    "Dutch coast": (52.4, 4.6),
    "Lisbon coast": (38.7, -9.4),
    "Yakutsk": (62.03, 129.73),
    "Urals (Yekaterinburg)": (56.84, 60.6),
    "Moscow": (55.76, 37.62),
    "Istanbul": (41.01, 28.98),
    "Cairo": (30.04, 31.24),
    "Nairobi": (-1.29, 36.82),
    "Manaus": (-3.12, -60.02),
    "Lhasa": (29.65, 91.1),
    "Sydney": (-33.87, 151.21),
    "Panama": (8.98, -79.52),
    "London": (51.51, -0.13),
}


def _answer(pred: dict) -> str:
    guess = f"{pred['caveat']}, best guess " if pred.get("caveat") else ""  # at sea, unseen
    if pred["kind"] == "regression":
        band = pred.get("interval")
        rng = f" [{band[0]:.0f}, {band[1]:.0f}]" if band else ""
        return f"{guess}{pred['value']:.1f}{rng}"
    word = guess or ("uncertain: " if pred["uncertain"] else "")
    return f"{word}{pred['top']} p {pred['top_p']:.2f}"


def main(index_dir: str = "data/index") -> None:
    from app.logic.embeddings import embed_locations, embed_points
    from app.logic.labels import mark_caveat, predictions_for, truth_at
    from app.resources import open_resources
    from app.settings import Settings

    res = open_resources(Settings(index=index_dir))
    latlon = np.array(list(PLACES.values()), np.float64)
    emb, loc = embed_points(res, latlon), embed_locations(res, latlon)
    for i, name in enumerate(PLACES):
        lat, lon = PLACES[name]
        truth = truth_at(res, lat, lon) or {}
        pred = mark_caveat(predictions_for(res, emb[i], loc[i]), truth) or {}
        parts = [f"{task} {_answer(p)} (truth {truth.get(task, '?')})" for task, p in pred.items()]
        print(f"{name}: " + "; ".join(parts))


if __name__ == "__main__":
    main(*sys.argv[1:])
