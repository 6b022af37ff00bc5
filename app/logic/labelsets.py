"""Label sets in the app ("find more places like these", issue 16): add examples, score every
place of the index, draw the scores, export. Plain functions over `index.labelset` and
`index.classify`, which `gair index classify` calls too, so the app and the CLI give the same
hits for the same set.

Examples are embedded once, when added: a clicked point by the index's Embedder (the click's
own code path, `embed_points`), a cell or a gallery view by its stored vector, an uploaded
photo by the SV encoder (`embed_image`). A set is immutable; every edit returns a new one, and
a failed edit or load raises ValueError and leaves the caller's set as it was.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from app import raster
from app.logic.embeddings import embed_image, embed_points
from app.logic.inputs import check_point
from app.logic.runtime import _ms
from index import classify, classify_export
from index.labelset import (
    Example,
    LabelSet,
    check_label,
    embed_labelset,
    index_checkpoint,
    parse_labelset,
    to_geojson_bytes,
)

REVIEW_N = 10  # hits listed for review (fly / confirm / reject)
SCORE_COLORMAP = "viridis"


# --------------------------------------------------------------------------- editing


def add_point(res, labelset: LabelSet, label: str, lat: float, lon: float) -> LabelSet:
    """The set plus a clicked point (its INR embedding at exactly (lat, lon))."""
    label = check_label(label)
    lat, lon = check_point(lat, lon, wrap=True)
    lat, lon = round(lat, 7), round(lon, 7)  # as saved (GeoJSON keeps 7 decimals, ~1 cm)
    vec = embed_points(res, np.array([[lat, lon]]))[0]
    ex = Example(label, "point", lat, lon, checkpoint=index_checkpoint(res.index), vector=vec)
    return labelset.add(ex)


def add_cell(res, labelset: LabelSet, label: str, cell_id: str) -> LabelSet:
    """The set plus an index cell (its stored vector); ValueError for an unknown id."""
    ex = Example(check_label(label), "cell", cell_id=str(cell_id))
    return labelset.add(embed_labelset(res.index, LabelSet(examples=(ex,))).examples[0])


def add_gallery_view(res, labelset: LabelSet, label: str, sv_id: str) -> LabelSet:
    """The set plus a gallery street view (its stored SV embedding, at its location)."""
    gallery = res.index.streetviews
    rows = gallery.index[gallery["sv_id"].astype(str) == str(sv_id)]
    if not len(rows):
        raise ValueError(f"street view {sv_id!r} is not in this index's gallery")
    row = gallery.loc[rows[0]]
    ex = Example(
        check_label(label), "streetview", float(row["lat"]), float(row["lon"]), sv_id=str(sv_id)
    )
    return labelset.add(embed_labelset(res.index, LabelSet(examples=(ex,))).examples[0])


def add_upload(res, labelset: LabelSet, label: str, image: np.ndarray, name: str) -> LabelSet:
    """The set plus an uploaded street-view photo (uint8 [H, W, 3]) through the SV encoder;
    it has no location, so it is not drawn on the map."""
    vec = embed_image(res, image)
    ex = Example(
        check_label(label),
        "upload",
        name=str(name)[:120],
        checkpoint=index_checkpoint(res.index),
        vector=np.asarray(vec, np.float32),
    )
    return labelset.add(ex)


def load_set(res, data: bytes, name: str) -> LabelSet:
    """A GeoJSON upload -> an embedded set (size cap, format, ids and checkpoint checked);
    ValueError with the reason otherwise."""
    parsed = parse_labelset(data, name=str(name).rsplit(".", 1)[0] or "labels")
    return embed_labelset(res.index, parsed, embed_points=lambda ll: embed_points(res, ll))


def save_set(labelset: LabelSet) -> bytes:
    """The set as GeoJSON bytes (what *Save set* downloads)."""
    return to_geojson_bytes(labelset)


# --------------------------------------------------------------------------- scoring


def score(res, labelset: LabelSet) -> dict:
    """Fit on the set and score every place: {"model", "scores" [N] float32, "threshold"
    (the default), "timings_ms"}. ValueError for a set that cannot rank (no positive)."""
    t0 = time.perf_counter()
    model = classify.fit_labelset(res.index, labelset)
    fit_ms = _ms(t0)
    t = time.perf_counter()
    scores = classify.score_cells(res.index, model)
    return {
        "model": model,
        "scores": scores,
        "threshold": classify.default_threshold(model, scores),
        "timings_ms": {"fit": fit_ms, "score": _ms(t)},
    }


def threshold_range(scored: dict) -> tuple[float, float]:
    """The threshold slider's range: [0, 1] for probabilities, [min, max] of similarities."""
    if scored["model"].mode == "logistic":
        return 0.0, 1.0
    s = scored["scores"]
    return float(np.floor(s.min() * 100) / 100), float(np.ceil(s.max() * 100) / 100)


def hits(res, labelset: LabelSet, scored: dict, threshold: float, heatmap: bool = True) -> dict:
    """At a threshold: {"threshold", "n_hits", "review" (the REVIEW_N best unlabelled hits),
    "overlay" (PNG of the scores >= threshold, or None), "timings_ms"}."""
    t0 = time.perf_counter()
    scores = scored["scores"]
    n_hits = int(np.count_nonzero(scores >= np.float32(threshold)))
    review = classify.select_hits(
        res.index, scores, top=REVIEW_N, labelset=labelset, unlabelled_only=True
    )
    review = review[review["score"] >= np.float32(threshold)].reset_index(drop=True)
    review = _with_place_columns(res, review)
    hits_ms = _ms(t0)
    t = time.perf_counter()
    overlay = scores_overlay(res, scores, threshold, scored["model"].mode) if heatmap else None
    return {
        "threshold": float(threshold),
        "n_hits": n_hits,
        "review": review,
        "overlay": overlay,
        "timings_ms": {"hits": hits_ms, "overlay": _ms(t)},
    }


def _with_place_columns(res, frame: pd.DataFrame) -> pd.DataFrame:
    """Country and land cover beside each hit, when the index has them."""
    from app.logic.places import _tidy_places

    extra = [c for c in ("country", "landcover") if c in res.cells]
    if not extra or frame.empty:
        return frame
    from index.labelset import cell_positions

    pos = cell_positions(res.index, frame["cell_id"])
    cols = _tidy_places(res.cells.iloc[pos][extra].reset_index(drop=True))
    return pd.concat([frame, cols], axis=1)


def scores_overlay(res, scores: np.ndarray, threshold: float, mode: str) -> dict:
    """One PNG of the scores of every place at or above the threshold (others transparent)."""
    scores = np.asarray(scores, np.float32)
    vmin = float(threshold)
    vmax = max(float(scores.max()) if len(scores) else vmin, vmin + 1e-3)
    png = res.raster.continuous(
        scores, vmin, vmax, SCORE_COLORMAP, alpha=(150, 235), hide_below=True
    )
    title = "probability of a positive" if mode == "logistic" else "similarity to the positive"
    legend = raster.Legend(
        title=f"label set: {title}", kind="continuous", vmin=vmin, vmax=vmax,
        colormap=SCORE_COLORMAP,
    )  # fmt: skip

    def draw(raster_, rows):
        return raster_.continuous(
            scores[rows], vmin, vmax, SCORE_COLORMAP, alpha=(150, 235), hide_below=True
        )

    key = ("labelset", mode, float(threshold), hash(scores.tobytes()))
    return {"png": png, "legend": legend, "bounds": res.raster.bounds, "draw": draw, "key": key}


def iteration(res, labelset: LabelSet, threshold: float | None = None) -> dict:
    """One loop of the tab: score the set, then the hits and heatmap at `threshold` (default:
    the model's). What `benchmarks/bench_classify.py` times."""
    scored = score(res, labelset)
    at = scored["threshold"] if threshold is None else threshold
    return {"scored": scored, **hits(res, labelset, scored, at)}


# --------------------------------------------------------------------------- exports, quality


def export_hits(res, labelset: LabelSet, scored: dict, threshold: float, fmt: str) -> bytes:
    """Every hit at or above the threshold as GeoParquet ("parquet") or GeoJSON ("geojson")
    bytes, with the H3 polygon of each cell (`index.classify_export`)."""
    table = classify.select_hits(res.index, scored["scores"], threshold, labelset=labelset)
    if fmt == "parquet":
        return classify_export.hits_parquet_bytes(table)
    if fmt == "geojson":
        meta = {
            "label_set": labelset.name,
            "mode": scored["model"].mode,
            "threshold": float(threshold),
            "checkpoint": index_checkpoint(res.index),
        }
        return classify_export.hits_geojson_bytes(table, meta)
    raise ValueError(f"export format must be 'parquet' or 'geojson', got {fmt!r}")


def quality(res, labelset: LabelSet, threshold: float) -> pd.DataFrame:
    """The learning curve: cross-validated precision / recall of the set's first k examples
    (see `index.classify.learning_curve`); empty below two examples."""
    if len(labelset) < 2:
        return pd.DataFrame(columns=["examples", "precision", "recall"])
    return classify.learning_curve(res.index, labelset, threshold)
