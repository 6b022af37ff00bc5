"""The embedding a clicked place is matched against street views with.

GAIR gives a point two embeddings in one space: the INR embedding (what the remote-sensing image
shows there) and the location embedding (where it is); the street-view encoder was trained to
agree with both. A place's street views are searched with their weighted sum,

    query = normalise(normalise(inr) + location_weight * normalise(location)),

`location_weight` 0 = imagery alone (look-alike views anywhere on Earth), large = location alone.
`gair eval` picks the weight on the val split (median km from a held-out point to its first view)
and records it in the run's config.json (`streetview_query`); the app reads it from there.
numpy only: the app's answer before the model has loaded uses it too.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

KEY = "streetview_query"
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, math.inf)  # the candidates `gair eval` compares
DEFAULT_WEIGHT = 0.0  # a run never evaluated: the INR embedding alone, as GAIR's paper queries


def place_query(inr: np.ndarray, location: np.ndarray, location_weight: float) -> np.ndarray:
    """Unit query vectors [N, E] (or [E]) from INR and location embeddings of the same shape
    (each made unit length first, so the weight is the location's share of two equals).

    `location_weight` >= 0; math.inf means the location embedding alone."""
    inr = np.asarray(inr, np.float32)
    location = np.asarray(location, np.float32)
    if inr.shape != location.shape:
        raise ValueError(
            f"place_query: inr {inr.shape} and location {location.shape} differ in shape"
        )
    w = float(location_weight)
    if not w >= 0:  # also rejects NaN
        raise ValueError(f"place_query: location_weight must be >= 0, got {location_weight!r}")
    inr, location = _unit(inr), _unit(location)
    return location if math.isinf(w) else _unit(inr + np.float32(w) * location)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(1e-12))


def describe(location_weight: float) -> str:
    """What the query holds, for a caption: 'imagery', 'location' or 'imagery + 0.5 x location'."""
    w = float(location_weight)
    if w == 0:
        return "imagery (INR embedding)"
    if math.isinf(w):
        return "location (location embedding)"
    return f"imagery + {w:g} x location (INR + location embeddings)"


def to_json(location_weight: float) -> float | str:
    return "inf" if math.isinf(location_weight) else float(location_weight)


def from_json(value) -> float:
    """A stored weight (a number >= 0 or "inf") -> float; ValueError naming the bad value."""
    try:
        w = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{KEY}.location_weight must be a number or 'inf', got {value!r}"
        ) from None
    if not w >= 0:
        raise ValueError(f"{KEY}.location_weight must be >= 0, got {value!r}")
    return w


def config_weight(run_config: dict) -> float:
    """The weight a run's parsed config.json records (DEFAULT_WEIGHT when it has none);
    ValueError naming the bad value when the record is malformed."""
    record = run_config.get(KEY)
    if not isinstance(record, dict) or "location_weight" not in record:
        return DEFAULT_WEIGHT
    return from_json(record["location_weight"])


def run_weight(run_dir: str | Path) -> float:
    """The weight `gair eval` chose for a run dir (DEFAULT_WEIGHT when it has none)."""
    from gair.run_dir import read_run_config

    return config_weight(read_run_config(run_dir))


def save_run_weight(run_dir: str | Path, record: dict) -> None:
    """Write `record` ({"location_weight", ...}) into the run's config.json under KEY."""
    from gair.atomic import locked_dir, write_json
    from gair.run_dir import read_run_config

    from_json(record.get("location_weight"))
    with locked_dir(Path(run_dir)):
        meta = read_run_config(run_dir)
        meta[KEY] = record
        write_json(Path(run_dir) / "config.json", meta)
