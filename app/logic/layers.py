"""The map's static overlays: the heads' predictions over all cells and the world's labels,
as colour-mapped PNGs with legends (cached per process).
"""

from __future__ import annotations

import numpy as np

from app import raster

LAYER_SIMILARITY = "Similarity (current query)"
KOPPEN_COLORS = np.array(
    [(0, 119, 255), (255, 148, 0), (0, 170, 80), (150, 80, 200), (160, 200, 230)], np.uint8
)
IGBP_COLORS = np.array(
    [
        (28, 13, 255),
        (5, 69, 10),
        (8, 106, 16),
        (84, 167, 8),
        (120, 210, 3),
        (0, 153, 0),
        (198, 176, 68),
        (220, 209, 89),
        (218, 222, 72),
        (251, 255, 19),
        (182, 255, 5),
        (39, 255, 135),
        (194, 79, 68),
        (165, 165, 165),
        (255, 109, 76),
        (105, 255, 248),
        (249, 255, 164),
    ],
    np.uint8,
)  # the MODIS IGBP legend colours


def map_layers(res) -> list[str]:
    """Names of the overlays the map can show: the similarity of the current query, the heads'
    predictions over all cells (when the run has heads) and the world's labels."""
    names = [LAYER_SIMILARITY]
    names += [f"Predicted {t}" for t in res.head_names]
    names += [
        f"Truth {c}" for c in ("koppen", "landcover", "elevation_m", "population") if c in res.cells
    ]
    return names


def _cell_predictions(res) -> dict:
    """Head outputs for every cell [n_cells] (class index or value): from the index's `pred_`
    columns (written by the build with the same heads), else computed once from the vectors."""

    def build():
        current = res.stored_predictions_current()
        out: dict = {}
        for name, task in res.heads.tasks.items():
            col = f"pred_{name}"
            if not current or col not in res.cells:
                return _predict_cells(res)
            values = res.cells[col]
            if task.kind == "regression":
                out[name] = values.to_numpy(np.float32)
            else:
                out[name] = class_codes(values, task.classes)
        return out

    return res.cached_layer("__cell_predictions__", build)


def class_codes(values, classes) -> np.ndarray:
    """Positions [n] int64 of class names `values` (a Series) in `classes` (-1: not a class)."""
    import pandas as pd

    cat = pd.Series(values).astype("category")
    index = {c: i for i, c in enumerate(classes)}
    lookup = np.array([index.get(str(c), -1) for c in cat.cat.categories] + [-1], np.int64)
    return lookup[cat.cat.codes.to_numpy()]  # code -1 (missing) -> the trailing -1


def _predict_cells(res) -> dict:
    vecs = res.index.cell_vectors
    locs = res.index.cell_location
    out: dict = {}
    for i in range(0, len(vecs), 16384):
        j = slice(i, i + 16384)
        x = {"inr": np.asarray(vecs[j], np.float32), "location": np.asarray(locs[j], np.float32)}
        for name, y in res.heads.predict(x).items():
            out.setdefault(name, []).append(y if y.ndim == 1 else y.argmax(-1))
    return {name: np.concatenate(parts) for name, parts in out.items()}


def layer_overlay(res, name: str) -> dict | None:
    """The overlay PNG + legend of a static layer (cached per process)."""
    if name == LAYER_SIMILARITY:
        return None

    def build():
        if name.startswith("Predicted "):
            task_name = name[len("Predicted ") :]
            if res.heads is None or task_name not in res.heads.tasks:
                return None  # heads listed in config.json but not loadable (logged)
            task = res.heads.tasks[task_name]
            values = _cell_predictions(res)[task_name]
            if task.kind == "regression":
                return _continuous_layer(
                    res, values, f"predicted {task_name} ({task.units})", task_name
                )
            colors = (
                KOPPEN_COLORS
                if task_name == "koppen"
                else IGBP_COLORS
                if task_name == "landcover"
                else raster.CLASS_COLORS
            )
            return _class_layer(res, values, task.classes, colors, f"predicted {task_name}")
        label = name[len("Truth ") :]
        values = res.cells[label].to_numpy()
        if label == "koppen":
            from gair.evaluation.tasks import KOPPEN

            return _class_layer(
                res, values.astype(int) - 1, KOPPEN, KOPPEN_COLORS, "Koppen climate (truth)"
            )
        if label == "landcover":
            from gair.world.world import IGBP_CLASSES

            return _class_layer(
                res, values.astype(int), IGBP_CLASSES, IGBP_COLORS, "IGBP land cover (truth)"
            )
        units = "m" if label == "elevation_m" else "log10(1 + people within 50 km)"
        return _continuous_layer(res, values.astype(np.float32), f"{label} ({units}, truth)", label)

    return res.cached_layer(name, build)


def _continuous_layer(res, values, title, label) -> dict:
    values = np.asarray(values, np.float32)
    finite = values[np.isfinite(values)]
    vmin, vmax = (
        (float(np.quantile(finite, 0.02)), float(np.quantile(finite, 0.98)))
        if len(finite)
        else (0.0, 1.0)
    )
    cmap = "terrain" if "elevation" in label else "viridis"
    png = res.raster.continuous(values, vmin, vmax, cmap, alpha=(170, 210))

    def draw(raster_, rows):
        return raster_.continuous(values[rows], vmin, vmax, cmap, alpha=(170, 210))

    return {
        "png": png,
        "legend": raster.Legend(title, "continuous", vmin, vmax, cmap),
        "bounds": res.raster.bounds,
        "draw": draw,
        "key": ("layer", title),
    }


def _class_layer(res, codes, classes, colors, title) -> dict:
    codes = np.asarray(codes, np.int64)
    colors = np.asarray(colors, np.uint8)
    if len(colors) < len(classes):
        colors = np.concatenate([colors, raster.CLASS_COLORS])[: len(classes)]
    png = res.raster.classes(codes, colors)
    present = sorted(set(codes[(codes >= 0) & (codes < len(classes))].tolist()))
    legend = raster.Legend(
        title, "classes", classes=[(classes[i], raster.hex_color(colors[i])) for i in present]
    )

    def draw(raster_, rows):
        return raster_.classes(codes[rows], colors)

    return {
        "png": png,
        "legend": legend,
        "bounds": res.raster.bounds,
        "draw": draw,
        "key": ("layer", title),
    }
