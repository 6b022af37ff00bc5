"""The app's logic as plain functions: inputs in, data out. The Streamlit panels only draw what
these return, and the tests and `benchmarks/bench_app.py` call the same functions.

Every embedding goes through the index's `Embedder` (`gair.embed`), so a clicked point gets
exactly the embedding the index stored for the same coordinates.
"""

from __future__ import annotations

import io
import json
import math
import re
import threading
import time
from collections import OrderedDict

import numpy as np
import pandas as pd

from app import raster

K_DEFAULT = 8
K_MAX = 50
THUMBNAILS_MAX = 12
NEIGHBOURHOOD_N = 9  # odd: the clicked point is the centre of the grid
SIMILARITY_FLOOR_QUANTILE = 0.8  # the similarity overlay colours the top 20% of all cells

_embed_lock = threading.Lock()  # torch modules: one embedding at a time per process
_thumb_cache: OrderedDict = OrderedDict()
_thumb_lock = threading.Lock()
THUMB_CACHE_SIZE = 4096


# --------------------------------------------------------------------------- input checks


_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_COORD = re.compile(rf"^\s*({_NUM})\s*°?\s*([NSns])?\s*[,;\s]\s*({_NUM})\s*°?\s*([EWew])?\s*$")


def check_point(lat, lon, wrap: bool = False) -> tuple[float, float]:
    """(lat, lon) as floats, or ValueError with a message for people. Typed longitudes must be
    in [-180, 180]; map clicks (wrap=True) may come from a copy of the world and are wrapped."""
    try:
        lat_f, lon_f = float(lat), float(lon)
    except (TypeError, ValueError) as err:
        raise ValueError(f"coordinates must be numbers, got lat={lat!r}, lon={lon!r}") from err
    if not (math.isfinite(lat_f) and math.isfinite(lon_f)):
        raise ValueError(f"coordinates must be finite numbers, got lat={lat!r}, lon={lon!r}")
    if abs(lat_f) > 90:
        raise ValueError(f"latitude must be within [-90, 90], got {lat_f:g}")
    if wrap:
        lon_f = (lon_f + 180.0) % 360.0 - 180.0
    elif abs(lon_f) > 180:
        raise ValueError(f"longitude must be within [-180, 180], got {lon_f:g}")
    return lat_f, lon_f


def parse_coordinates(text: str) -> tuple[float, float]:
    """ "48.85, 2.35" / "48.85 2.35" / "48.85N 2.35E" / "33.9S; 18.4E" -> (lat, lon).
    ValueError with a message for anything else (including out-of-range values)."""
    if text is None or not str(text).strip():
        raise ValueError("type coordinates as `lat, lon`, e.g. `48.85, 2.35`")
    m = _COORD.match(str(text))
    if not m:
        raise ValueError(
            f"cannot read {str(text)[:60]!r} as coordinates: type `lat, lon`, e.g. `48.85, 2.35`"
        )
    lat, ns, lon, ew = float(m.group(1)), m.group(2), float(m.group(3)), m.group(4)
    if ns and ns.upper() == "S":
        lat = -abs(lat)
    if ew and ew.upper() == "W":
        lon = -abs(lon)
    return check_point(lat, lon)


def clamp_k(k) -> int:
    try:
        k = int(k)
    except (TypeError, ValueError):
        return K_DEFAULT
    return max(1, min(K_MAX, k))


# --------------------------------------------------------------------------- embeddings


def embed_points(res, latlon: np.ndarray) -> np.ndarray:
    """INR embeddings [N, E] of points [N, 2] through the index's Embedder."""
    with _embed_lock:
        return res.index.embedder.point(np.asarray(latlon, np.float64).reshape(-1, 2))


def embed_locations(res, latlon: np.ndarray) -> np.ndarray:
    with _embed_lock:
        return res.index.embedder.location(np.asarray(latlon, np.float64).reshape(-1, 2))


def embed_image(res, image: np.ndarray) -> np.ndarray:
    with _embed_lock:
        return res.index.embedder.street_view([image])[0]


def neighbourhood_grid(res, lat: float, lon: float, n: int = NEIGHBOURHOOD_N):
    """An n x n grid over the RS tile cell around the point: the square between the four tile
    centres whose chips the point's embedding blends (one tiling stride on a side). Every grid
    point blends the same four tiles, so the map costs no extra RS encoder pass.

    Returns (points [n*n, 2] row-major from the north-west, latitude axis [n] north to south,
    longitude axis [n] west to east, unwrapped so it contains `lon`)."""
    tiling = res.index.embedder.tiling
    step = tiling.stride_deg if tiling is not None else 1.0
    r0 = math.floor((90.0 - lat) / step)
    c0 = math.floor(((lon + 180.0) % 360.0) / step)
    lat_axis = np.clip(90.0 - (r0 + np.linspace(0.0, 1.0, n)) * step, -90.0, 90.0)
    west = -180.0 + c0 * step
    west += 360.0 * round((lon - west - step / 2) / 360.0)  # the copy of the world `lon` is in
    lon_axis = west + np.linspace(0.0, 1.0, n) * step
    wrapped = (lon_axis + 180.0) % 360.0 - 180.0
    grid = np.stack(np.meshgrid(lat_axis, wrapped, indexing="ij"), -1).reshape(-1, 2)
    return grid, lat_axis, lon_axis


# --------------------------------------------------------------------------- street views


def streetview_image(res, row) -> np.ndarray:
    """The gallery image of a street-view row: rendered from the world (source "rendered"), or
    read from its file for real galleries. Cached per process (LRU)."""
    key = str(row["sv_id"])
    with _thumb_lock:
        if key in _thumb_cache:
            _thumb_cache.move_to_end(key)
            return _thumb_cache[key]
    if "heading_deg" in row and "seed" in row and not pd.isna(row["heading_deg"]):
        size = min(
            int(res.index.embedder.config["sv"]["img_size"]), 128
        )  # as the index embedded it
        img = res.world.render_view(
            np.array([row["lat"], row["lon"]]),
            float(row["heading_deg"]),
            int(row["seed"]),
            size=size,
        )
    else:
        from gair.images import read_image

        img = read_image(row["path"])
    with _thumb_lock:
        _thumb_cache[key] = img
        while len(_thumb_cache) > THUMB_CACHE_SIZE:
            _thumb_cache.popitem(last=False)
    return img


def is_rendered(res) -> bool:
    return res.manifest.get("streetviews", {}).get("source", "rendered") == "rendered"


# --------------------------------------------------------------------------- labels / heads


def truth_at(res, lat: float, lon: float) -> dict:
    """The world's ground truth at a point, with readable class names."""
    from gair.world.world import IGBP_CLASSES, KOPPEN_CLASSES

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
    }


def _task_classes(res, name: str) -> list[str] | None:
    if res.heads is None or name not in res.heads.tasks:
        return None
    return list(res.heads.tasks[name].classes)


def predictions_for(res, emb: np.ndarray) -> dict | None:
    """{task: {"kind", "units", "classes", "probs"} or {"kind", "units", "value"}} or None."""
    if res.heads is None:
        return None
    out = {}
    for name, y in res.heads.predict(np.asarray(emb, np.float32).reshape(1, -1)).items():
        task = res.heads.tasks[name]
        if task.kind == "regression":
            out[name] = {"kind": "regression", "units": task.units, "value": float(y[0])}
        else:
            probs = np.asarray(y[0], np.float64)
            out[name] = {
                "kind": "classification",
                "units": task.units,
                "classes": list(task.classes),
                "probs": probs,
                "top": task.classes[int(probs.argmax())],
                "top_p": float(probs.max()),
            }
    return out


# --------------------------------------------------------------------------- similarity overlay


def similarity_overlay(res, sims: np.ndarray, title: str) -> dict:
    """One colour-mapped PNG of per-cell similarities (Web Mercator rows) and its legend."""
    sims = np.asarray(sims, np.float32)
    vmax = float(sims.max()) if len(sims) else 1.0
    vmin = float(np.quantile(sims, SIMILARITY_FLOOR_QUANTILE)) if len(sims) else 0.0
    if vmax - vmin < 1e-6:
        vmin = vmax - 1e-3
    png = res.raster.continuous(sims, vmin, vmax, "inferno", alpha=(90, 235), hide_below=True)
    legend = raster.Legend(title=title, kind="continuous", vmin=vmin, vmax=vmax, colormap="inferno")
    return {"png": png, "legend": legend, "bounds": raster.OVERLAY_BOUNDS}


PLACE_COLUMNS = (
    "rank",
    "similarity",
    "cell_id",
    "lat",
    "lon",
    "distance_km",
    "country",
    "continent",
    "koppen",
    "landcover",
    "elevation_m",
)


def _tidy_places(places: pd.DataFrame) -> pd.DataFrame:
    """The columns the panels show, with class codes as names (Koppen letter, IGBP class)."""
    from gair.world.world import IGBP_CLASSES, KOPPEN_CLASSES

    keep = [c for c in PLACE_COLUMNS if c in places]
    keep += [c for c in places.columns if c.startswith("pred_") and c not in keep]
    out = places[keep].copy()
    for col, names in (("koppen", KOPPEN_CLASSES), ("landcover", IGBP_CLASSES)):
        if col in out and pd.api.types.is_integer_dtype(out[col]):
            codes = out[col].to_numpy()
            out[col] = [names[c] if 0 <= c < len(names) else str(c) for c in codes]
    return out


def exact_cells(res) -> bool:
    """True when the cell index is exact (FAISS Flat): its top-k equal a sort of all scores."""
    return str(res.manifest.get("cells", {}).get("factory", "")).startswith("Flat")


def top_places(
    res, vec: np.ndarray, k: int, origin=None, sims: np.ndarray | None = None
) -> pd.DataFrame:
    """Top-k cells for an embedding. With the scores of all cells at hand (computed anyway for
    the heatmap) and an exact index, the top-k come from those scores: one pass over the cell
    vectors per query instead of two. Otherwise the index's own search (IVF/HNSW) answers."""
    if sims is None or not exact_cells(res):
        return _tidy_places(res.index.search_cells(vec, k, origin=origin))
    from gair import geo

    k = max(1, min(int(k), len(sims)))
    idx = np.argpartition(-sims, k - 1)[:k]
    idx = idx[np.argsort(-sims[idx], kind="stable")]
    hits = res.cells.iloc[idx].drop(columns=["geometry"], errors="ignore").reset_index(drop=True)
    hits.insert(0, "similarity", sims[idx].astype(float))
    hits.insert(0, "rank", np.arange(1, len(hits) + 1))
    if origin is not None:
        hits["distance_km"] = geo.haversine_km(
            np.asarray(origin, np.float64)[None], hits[["lat", "lon"]].to_numpy()
        )
    return _tidy_places(hits)


def _top_streetviews(res, vec: np.ndarray, k: int, origin=None) -> pd.DataFrame:
    return res.index.search_streetviews(vec, k, origin=origin)


def _thumbnails(res, svs: pd.DataFrame, n: int) -> list[np.ndarray]:
    return [streetview_image(res, row) for _, row in svs.head(n).iterrows()]


_pool = None
_pool_lock = threading.Lock()


def _executor():
    """A small shared pool: the heatmap half of a query runs beside the street-view half."""
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gair-app")
        return _pool


def _places_and_overlay(res, vec, k, origin, heatmap: bool, title: str) -> tuple:
    t = time.perf_counter()
    sims = res.index.similarity_to_all_cells(vec)
    places = top_places(res, vec, k, origin=origin, sims=sims)
    overlay = similarity_overlay(res, sims, title) if heatmap else None
    return places, overlay, _ms(t)


def _views(res, vec, k, origin, thumbnails: bool) -> tuple:
    t = time.perf_counter()
    svs = _top_streetviews(res, vec, k, origin=origin)
    thumbs = _thumbnails(res, svs, min(k, THUMBNAILS_MAX)) if thumbnails else []
    return svs, thumbs, _ms(t)


# --------------------------------------------------------------------------- the click


def click_result(
    res,
    lat: float,
    lon: float,
    k: int = K_DEFAULT,
    neighbourhood: bool = True,
    thumbnails: bool = True,
    heatmap: bool = True,
) -> dict:
    """Everything the panels show for a clicked point.

    Returns a dict: query (lat, lon), embedding [E], location_similarity (cosine of the INR
    embedding with the location encoder's embedding of the same point), neighbourhood (grid
    similarities to the point's embedding), places (top-k cells, DataFrame), streetviews
    (top-k gallery rows), thumbnails (uint8 images of those rows), overlay (similarity PNG +
    legend), predictions (heads) or None, truth (world labels) and timings_ms per stage.
    """
    t0 = time.perf_counter()
    timings = {}
    lat, lon = check_point(lat, lon, wrap=True)
    k = clamp_k(k)
    pts = np.array([[lat, lon]])
    if neighbourhood:
        grid, lat_axis, lon_axis = neighbourhood_grid(res, lat, lon)
        pts = np.concatenate([pts, grid])
    emb_all = embed_points(res, pts)  # one batch: the point's tiles serve the neighbourhood too
    emb = emb_all[0]
    timings["embed"] = _ms(t0)

    # the heatmap half (all-cell scores -> top places + overlay PNG) beside the street-view half
    origin = (lat, lon)
    heat = _executor().submit(
        _places_and_overlay, res, emb, k, origin, heatmap, "similarity to the clicked point"
    )
    svs, thumbs, timings["streetviews"] = _views(res, emb, k, origin, thumbnails)

    t = time.perf_counter()
    loc = embed_locations(res, pts[:1])[0]
    location_similarity = float(np.dot(emb, loc))
    preds = predictions_for(res, emb)
    truth = truth_at(res, lat, lon)
    timings["location_heads_truth"] = _ms(t)

    nb = None
    if neighbourhood:
        sims = (emb_all[1:] @ emb).reshape(NEIGHBOURHOOD_N, NEIGHBOURHOOD_N)
        nb = {"lat": lat_axis, "lon": lon_axis, "similarity": sims}
    places, overlay, timings["places_overlay"] = heat.result()
    timings["total"] = _ms(t0)
    return {
        "kind": "point",
        "query": {"lat": lat, "lon": lon, "k": k},
        "embedding": emb,
        "location_embedding": loc,
        "location_similarity": location_similarity,
        "neighbourhood": nb,
        "places": places,
        "streetviews": svs,
        "thumbnails": thumbs,
        "overlay": overlay,
        "predictions": preds,
        "truth": truth,
        "timings_ms": timings,
    }


# --------------------------------------------------------------------------- cross-view search


def decode_upload(data: bytes, name: str = "upload") -> np.ndarray:
    """Bytes of an uploaded image -> uint8 RGB, or ValueError with a message (not an image,
    too large, decompression bomb)."""
    from gair.images import decode_image

    return decode_image(data, name)


def image_search(
    res, image: np.ndarray | None = None, sv_row=None, k: int = K_DEFAULT, heatmap: bool = True
) -> dict:
    """Where was this street view taken? Embeds an image (or a gallery row's view) with the SV
    encoder and compares it with every place; returns the heatmap, the top places and, for a
    gallery view, the true location and the top place's error in km."""
    from gair import geo

    t0 = time.perf_counter()
    k = clamp_k(k)
    truth = None
    if sv_row is not None:
        image = streetview_image(res, sv_row)
        truth = (float(sv_row["lat"]), float(sv_row["lon"]))
    if image is None:
        raise ValueError("give an image or a gallery street view")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}")
    vec = embed_image(res, image)
    heat = _executor().submit(
        _places_and_overlay, res, vec, k, truth, heatmap, "similarity to the street view"
    )
    svs, thumbs, _ = _views(res, vec, k, truth, True)
    places, overlay, _ = heat.result()
    top = places.iloc[0] if len(places) else None
    guess = (float(top["lat"]), float(top["lon"])) if top is not None else None
    error_km = (
        float(geo.haversine_km(np.array(truth), np.array(guess))) if truth and guess else None
    )
    return {
        "kind": "image",
        "query": {
            "sv_id": None if sv_row is None else str(sv_row["sv_id"]),
            "truth": truth,
            "k": k,
        },
        "image": image,
        "embedding": vec,
        "places": places,
        "streetviews": svs,
        "thumbnails": thumbs,
        "overlay": overlay,
        "guess": guess,
        "error_km": error_km,
        "timings_ms": {"total": _ms(t0)},
    }


# --------------------------------------------------------------------------- compare


def compare_points(res, a: tuple[float, float], b: tuple[float, float]) -> dict:
    """Cosine similarity of two points' INR embeddings (and location embeddings), distance."""
    from gair import geo

    a = check_point(*a, wrap=True)
    b = check_point(*b, wrap=True)
    pts = np.array([a, b])
    emb = embed_points(res, pts)
    loc = embed_locations(res, pts)
    return {
        "a": a,
        "b": b,
        "cosine": float(emb[0] @ emb[1]),
        "location_cosine": float(loc[0] @ loc[1]),
        "distance_km": float(geo.haversine_km(pts[0], pts[1])),
        "truth_a": truth_at(res, *a),
        "truth_b": truth_at(res, *b),
    }


# --------------------------------------------------------------------------- map layers


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
    if res.heads is not None:
        names += [f"Predicted {t}" for t in res.heads.tasks]
    names += [
        f"Truth {c}" for c in ("koppen", "landcover", "elevation_m", "population") if c in res.cells
    ]
    return names


def _cell_predictions(res) -> dict:
    """Head outputs for every cell: from the index's pred_ columns, else computed once."""

    def build():
        vecs = np.asarray(res.index.cell_vectors)
        out: dict = {}
        for i in range(0, len(vecs), 16384):
            for name, y in res.heads.predict(np.array(vecs[i : i + 16384])).items():
                out.setdefault(name, []).append(y if y.ndim == 1 else y.argmax(-1))
        return {name: np.concatenate(parts) for name, parts in out.items()}

    return res.cached_layer("__cell_predictions__", build)


def layer_overlay(res, name: str) -> dict | None:
    """The overlay PNG + legend of a static layer (cached per process)."""
    if name == LAYER_SIMILARITY:
        return None

    def build():
        if name.startswith("Predicted "):
            task_name = name[len("Predicted ") :]
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
    return {
        "png": png,
        "legend": raster.Legend(title, "continuous", vmin, vmax, cmap),
        "bounds": raster.OVERLAY_BOUNDS,
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
    return {"png": png, "legend": legend, "bounds": raster.OVERLAY_BOUNDS}


# --------------------------------------------------------------------------- export


def results_table(result: dict) -> pd.DataFrame:
    """One tidy table of a result: the query, its top places and top street views."""
    q = result["query"]
    rows = []
    if result["kind"] == "point":
        rows.append(
            {
                "kind": "query",
                "rank": 0,
                "id": "",
                "lat": q["lat"],
                "lon": q["lon"],
                "similarity": 1.0,
                "distance_km": 0.0,
            }
        )
    elif q.get("truth"):
        rows.append(
            {
                "kind": "query",
                "rank": 0,
                "id": q.get("sv_id") or "",
                "lat": q["truth"][0],
                "lon": q["truth"][1],
                "similarity": 1.0,
                "distance_km": 0.0,
            }
        )
    for kind, frame, id_col in (
        ("place", result["places"], "cell_id"),
        ("streetview", result["streetviews"], "sv_id"),
    ):
        for _, r in frame.iterrows():
            rows.append(
                {
                    "kind": kind,
                    "rank": int(r["rank"]),
                    "id": str(r[id_col]),
                    "lat": float(r["lat"]),
                    "lon": float(r["lon"]),
                    "similarity": float(r["similarity"]),
                    "distance_km": float(r["distance_km"])
                    if "distance_km" in r and not pd.isna(r.get("distance_km"))
                    else None,
                }
            )
    return pd.DataFrame(
        rows, columns=["kind", "rank", "id", "lat", "lon", "similarity", "distance_km"]
    )


def to_csv(result: dict) -> bytes:
    buf = io.StringIO()
    results_table(result).to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")


def to_geojson(result: dict) -> bytes:
    """A GeoJSON FeatureCollection (lon, lat order, WGS84) of the query and its matches."""
    feats = []
    for r in results_table(result).to_dict("records"):
        props = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in r.items()
            if k not in ("lat", "lon")
        }
        feats.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
                "properties": props,
            }
        )
    meta = {"query_kind": result["kind"]}
    if result["kind"] == "point":
        meta["location_similarity"] = result["location_similarity"]
    return json.dumps(
        {"type": "FeatureCollection", "properties": meta, "features": feats}, default=_json_default
    ).encode("utf-8")


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(type(o))


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000.0, 2)
