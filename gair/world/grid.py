"""The demo world's global grid: plate carree, lon -180..180, lat 90..-90, row 0 at the north.

Pixel (row i, col j) covers lon [-180 + j*p, -180 + (j+1)*p], lat [90 - (i+1)*p, 90 - i*p] with
p = 1/15 degree (4 arc-minutes, ~7.4 km at the equator).
"""

from __future__ import annotations

import numpy as np

WIDTH = 5400
HEIGHT = 2700
DEG_PER_PX = 360.0 / WIDTH  # 1/15 degree
KM_PER_DEG = 111.19492664455873  # great-circle km per degree on the mean sphere (R = 6371.0088)
EARTH_RADIUS_KM = 6371.0088


def lat_to_row(lat):
    """Continuous row coordinate (pixel centres at i + 0.5)."""
    return (90.0 - np.asarray(lat, dtype=np.float64)) / DEG_PER_PX


def lon_to_col(lon):
    """Continuous column coordinate (pixel centres at j + 0.5), in [0, WIDTH)."""
    return ((np.asarray(lon, dtype=np.float64) + 180.0) % 360.0) / DEG_PER_PX


def nearest_index(lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of the pixel containing each point (lat 90 maps to row 0)."""
    rows = np.clip(np.floor(lat_to_row(lat)).astype(np.int64), 0, HEIGHT - 1)
    cols = np.floor(lon_to_col(lon)).astype(np.int64) % WIDTH
    return rows, cols


def row_lat(rows) -> np.ndarray:
    """Latitude of pixel-row centres."""
    return 90.0 - (np.asarray(rows, dtype=np.float64) + 0.5) * DEG_PER_PX


def col_lon(cols) -> np.ndarray:
    """Longitude of pixel-column centres."""
    return -180.0 + (np.asarray(cols, dtype=np.float64) + 0.5) * DEG_PER_PX


def unit_vectors(lat, lon) -> np.ndarray:
    """(..., 3) unit vectors on the sphere, for chord-distance KD-trees."""
    la = np.deg2rad(np.asarray(lat, dtype=np.float64))
    lo = np.deg2rad(np.asarray(lon, dtype=np.float64))
    cl = np.cos(la)
    return np.stack([cl * np.cos(lo), cl * np.sin(lo), np.sin(la)], -1)


def chord_to_km(chord) -> np.ndarray:
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(np.asarray(chord) / 2.0, 0.0, 1.0))


def km_to_chord(km: float) -> float:
    return float(2.0 * np.sin(km / (2.0 * EARTH_RADIUS_KM)))
