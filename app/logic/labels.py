"""What is known about a point: the world's ground truth and the heads' predictions."""

from __future__ import annotations

import numpy as np


def has_labels(res) -> bool:
    """Whether the index has ground truth to show (the demo world; not the user's imagery)."""
    return bool(getattr(res, "has_labels", getattr(res, "world", None) is not None))


def truth_at(res, lat: float, lon: float) -> dict | None:
    """The world's ground truth at a point, with readable class names; None when the index has
    no labels (built from the user's imagery)."""
    from gair.world.world import IGBP_CLASSES, KOPPEN_CLASSES

    if not has_labels(res):
        return None
    lab = res.world.labels(np.array([lat, lon]))
    kg = int(lab["koppen"])
    lc = int(lab["landcover"])
    koppen_names = _task_classes(res, "koppen")
    return {
        "koppen": (
            koppen_names[kg - 1]
            if koppen_names and 1 <= kg <= len(koppen_names)
            else KOPPEN_CLASSES[kg]
        )
        if kg
        else "none (sea)",
        "landcover": IGBP_CLASSES[lc] if 0 <= lc < len(IGBP_CLASSES) else str(lc),
        "elevation_m": float(lab["elevation_m"]),
        "population": float(lab["population"]),
        "continent": str(lab["continent"]) or "-",
        "country": str(lab["country"]) or "-",
        "is_land": bool(lab["is_land"]),
        "split": str(res.world.split_of(np.array([lat, lon]))),
    }


# a calibrated top-class probability under this is shown as "uncertain" (not as an answer)
UNCERTAIN_BELOW = 0.6


def _task_classes(res, name: str) -> list[str] | None:
    """A head's class names as the run's config.json lists them (without loading the heads,
    which needs torch: a click answered before the model loads uses this too)."""
    for task in (getattr(res, "run_config", None) or {}).get("heads", {}).get("tasks") or []:
        if task.get("name") == name and task.get("classes"):
            return list(task["classes"])
    return None


def regression_answer(res, name: str, value: float, base: dict) -> dict:
    """A regression head's answer for the panels: `base` plus kind, value and, when the run
    records one for the head (`gair.intervals`, fitted on val), `interval` (low, high) and
    `level` (e.g. 0.8). From config.json: no torch needed."""
    from gair.intervals import Interval

    out = {**base, "kind": "regression", "value": float(value)}
    for task in (getattr(res, "run_config", None) or {}).get("heads", {}).get("tasks") or []:
        if task.get("name") == name and task.get("interval"):
            try:
                band = Interval.from_dict(task["interval"], f"head {name!r} interval")
            except ValueError:  # Heads.load names it; the panel shows the value alone
                break
            lo, hi = band.bounds([value])
            out |= {
                "value": float(band.clip([value])[0]),  # inside the training targets' range
                "interval": (float(lo[0]), float(hi[0])),
                "level": band.level,
            }
    return out


def head_scores(res, split: str = "test") -> dict[str, dict[str, float]]:
    """{task: {metric: value}} of the run's heads on a held-out split's places ("test", or
    "unseen": the region held out whole), as `gair eval` measured them beside the heads it wrote
    (eval.json rows of method "gair-heads": e.g. accuracy and ece of a class head,
    interval80_coverage of a number's range); {} without an eval.json. The panels show them
    next to each answer, so a user reads how often such an answer was right on places the
    heads never saw."""
    scores: dict[str, dict[str, float]] = {}
    for row in (getattr(res, "eval_result", None) or {}).get("rows") or []:
        if not isinstance(row, dict) or row.get("method") != "gair-heads":
            continue
        if row.get("split") != split or not isinstance(row.get("mean"), int | float):
            continue
        scores.setdefault(str(row.get("task")), {})[str(row.get("metric"))] = float(row["mean"])
    return scores


def caveat_at(truth: dict | None) -> str | None:
    """Why the heads' answers at a point are only best guesses: "sea" where the world's land
    mask puts it at sea (the heads are fitted on land points only, `gair.evaluation.points`),
    "unseen" where it lies in the world's unseen region (held out whole: no training imagery,
    street view or head point there, so the heads extrapolate; on that region eval.json
    measures them apart, split "unseen"); None elsewhere and without ground truth (the user's
    imagery has no land mask or splits)."""
    if not truth:
        return None
    if not truth.get("is_land", True):
        return "sea"
    return "unseen" if truth.get("split") == "unseen" else None


def mark_caveat(preds: dict | None, truth: dict | None) -> dict | None:
    """`preds` with `caveat` ("sea" or "unseen", `caveat_at`) on every answer where one applies;
    the panels then show each answer as a best guess beside the record that fits the place."""
    caveat = caveat_at(truth)
    if not preds or caveat is None:
        return preds
    return {name: {**p, "caveat": caveat} for name, p in preds.items()}


def predictions_for(res, emb: np.ndarray, loc: np.ndarray | None = None) -> dict | None:
    """{task: {"kind", "units", "input", "classes", "probs", "top", "top_p", "uncertain"} or
    {"kind", "units", "input", "value"[, "interval", "level"]}} or None. `loc` is the point's
    location embedding (heads that take it get it; without it such heads are hidden with the
    reason)."""
    if res.heads is None:
        return None
    inputs = {"inr": np.asarray(emb, np.float32).reshape(1, -1)}
    if loc is not None:
        inputs["location"] = np.asarray(loc, np.float32).reshape(1, -1)
    try:
        predicted = res.heads.predict(inputs)
    except ValueError as err:  # unusable heads hide the predictions, never the click
        res.heads_error = str(err)
        return None
    out = {}
    for name, y in predicted.items():
        task = res.heads.tasks[name]
        if task.kind == "regression":
            base = {"units": task.units, "input": res.heads.inputs[name]}
            out[name] = regression_answer(res, name, float(y[0]), base)
        else:
            probs = np.asarray(y[0], np.float64)
            out[name] = {
                "kind": "classification",
                "units": task.units,
                "classes": list(task.classes),
                "probs": probs,
                "input": res.heads.inputs[name],
                "top": task.classes[int(probs.argmax())],
                "top_p": float(probs.max()),
                "uncertain": bool(probs.max() < UNCERTAIN_BELOW),
            }
    return out
