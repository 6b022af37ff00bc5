"""The world's street-view locations: GeoCLIP's real photo locations on land, topped up with
uniform random land samples where photos are thin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gair.world import grid


def build_streetviews(paths: dict[str, Path], land: np.ndarray, params: dict):
    """GeoCLIP's real photo locations on land, plus uniform random land samples in H3 cells where
    fewer than `land_samples_min_per_cell` photos fall (thin coverage)."""
    import h3
    import pandas as pd

    gc = pd.read_csv(paths["streetview_locations"])
    lat = gc["LAT"].to_numpy(np.float64)
    lon = gc["LON"].to_numpy(np.float64)
    ok = np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90)
    ids = np.arange(len(gc))
    lat, lon, ids = lat[ok], ((lon[ok] + 180) % 360) - 180, ids[ok]
    r, c = grid.nearest_index(lat, lon)
    on_land = land[r, c]
    lat, lon, ids = lat[on_land], lon[on_land], ids[on_land]
    gc_df = pd.DataFrame(
        {
            "id": [f"gc{i:06d}" for i in ids],
            "lat": lat,
            "lon": lon,
            "source": "geoclip",
        }
    )
    res = params["land_samples_h3_res"]
    need = params["land_samples_min_per_cell"]
    have = pd.Series([h3.latlng_to_cell(a, b, res) for a, b in zip(lat, lon)]).value_counts()
    rng = np.random.default_rng(params["land_samples_seed"])
    n_cand = 400_000
    c_lat = np.rad2deg(np.arcsin(rng.uniform(-1.0, 1.0, n_cand)))  # uniform on the sphere
    c_lon = rng.uniform(-180.0, 180.0, n_cand)
    r, c = grid.nearest_index(c_lat, c_lon)
    keep = land[r, c]
    c_lat, c_lon = c_lat[keep], c_lon[keep]
    cells = pd.Series([h3.latlng_to_cell(a, b, res) for a, b in zip(c_lat, c_lon)])
    rank = cells.groupby(cells).cumcount().to_numpy()
    deficit = (need - cells.map(have).fillna(0).to_numpy()).clip(0)
    take = rank < deficit
    ls_df = pd.DataFrame(
        {
            "id": [f"ls{i:06d}" for i in range(int(take.sum()))],
            "lat": c_lat[take],
            "lon": c_lon[take],
            "source": "land_sample",
        }
    )
    return pd.concat([gc_df, ls_df], ignore_index=True)
