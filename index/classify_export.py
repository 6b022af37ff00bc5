"""Exports of classifier hits (`index.classify.select_hits`): GeoParquet and GeoJSON, one
feature per cell with its H3 hexagon as geometry (`h3.cell_to_boundary`; cells that cross the
antimeridian are split into a MultiPolygon at +-180 degrees, as RFC 7946 asks), and the
properties rank, cell_id, lat, lon, score, label. A cell id that is not an H3 cell gets its
centre as a Point. Files are written atomically (`gair.atomic`)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from gair.atomic import atomic_path, write_bytes

PARQUET_SUFFIXES = (".parquet", ".geoparquet")
GEOJSON_SUFFIXES = (".geojson", ".json")


def hits_geodataframe(hits: pd.DataFrame):
    """GeoDataFrame (EPSG:4326) of hits with their cell polygons."""
    import geopandas as gpd

    from index.export import cell_polygons  # antimeridian and polar cells drawn right

    geoms = cell_polygons(
        hits["cell_id"].to_numpy(), hits["lat"].to_numpy(), hits["lon"].to_numpy()
    )
    return gpd.GeoDataFrame(hits.reset_index(drop=True).copy(), geometry=geoms, crs="EPSG:4326")


def hits_parquet_bytes(hits: pd.DataFrame) -> bytes:
    """The hits as GeoParquet bytes."""
    buf = io.BytesIO()
    hits_geodataframe(hits).to_parquet(buf, index=False)
    return buf.getvalue()


def hits_geojson_bytes(hits: pd.DataFrame, meta: dict | None = None) -> bytes:
    """The hits as a GeoJSON FeatureCollection (lon, lat; `meta` as its `properties`)."""
    from shapely.geometry import mapping

    gdf = hits_geodataframe(hits)
    feats = []
    for row, geom in zip(hits.to_dict("records"), gdf.geometry):
        props = {k: _plain(v) for k, v in row.items()}
        feats.append({"type": "Feature", "geometry": mapping(geom), "properties": props})
    doc = {"type": "FeatureCollection", "features": feats}
    if meta:
        doc["properties"] = meta
    return json.dumps(doc).encode("utf-8")


def _plain(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def write_hits(path: str | os.PathLike, hits: pd.DataFrame, meta: dict | None = None) -> Path:
    """Write hits as GeoParquet (.parquet / .geoparquet) or GeoJSON (.geojson / .json),
    atomically; ValueError for any other suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        with atomic_path(path) as tmp:
            hits_geodataframe(hits).to_parquet(tmp, index=False)
    elif suffix in GEOJSON_SUFFIXES:
        write_bytes(path, hits_geojson_bytes(hits, meta))
    else:
        raise ValueError(
            f"output {path} must end in .parquet or .geojson (got {suffix or 'no suffix'!r})"
        )
    return path
