"""Exports of a query result: one tidy table, as CSV or as a GeoJSON FeatureCollection."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd


def results_table(result: dict) -> pd.DataFrame:
    """One tidy table of a result: the query, the estimated location (image searches), its top
    places and top street views. `distance_km` is from the query point (for the estimate: its
    error, when the true location is known)."""
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
    if result.get("located"):  # the location encoder's estimate of where a view was taken
        rows.append(
            {
                "kind": "estimate",
                "rank": 0,
                "id": "",
                "lat": result["located"][0],
                "lon": result["located"][1],
                "similarity": None,
                "distance_km": result.get("located_error_km"),
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
