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


def cell_geometry(cell_id: str, lat: float, lon: float):
    """The shapely geometry of a cell: its H3 polygon (lon, lat), or a Point."""
    import h3
    from shapely.geometry import MultiPolygon, Point, Polygon, box

    if not isinstance(cell_id, str) or not h3.is_valid_cell(cell_id):
        return Point(float(lon), float(lat))
    ring = [(lng, la) for la, lng in h3.cell_to_boundary(cell_id)]
    lons = np.array([p[0] for p in ring])
    if lons.max() - lons.min() <= 180.0:
        return Polygon(ring)
    # crosses the antimeridian: unwrap to (0, 360), then cut at 180 and shift the east part
    unwrapped = Polygon([(lng + 360.0 if lng < 0 else lng, la) for lng, la in ring])
    west = unwrapped.intersection(box(0.0, -90.0, 180.0, 90.0))
    east = unwrapped.intersection(box(180.0, -90.0, 360.0, 90.0))
    from shapely.affinity import translate

    parts = [g for g in (west, translate(east, xoff=-360.0)) if not g.is_empty]
    polys = [p for g in parts for p in (g.geoms if hasattr(g, "geoms") else [g])]
    return MultiPolygon([p for p in polys if p.geom_type == "Polygon"])


def hits_geodataframe(hits: pd.DataFrame):
    """GeoDataFrame (EPSG:4326) of hits with their cell polygons."""
    import geopandas as gpd

    geoms = [
        cell_geometry(c, la, lo) for c, la, lo in zip(hits["cell_id"], hits["lat"], hits["lon"])
    ]
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
