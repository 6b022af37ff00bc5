"""The population layer: people within 50 km of every grid pixel, from the GeoNames cities,
stored as log10(1 + people) * POPULATION_SCALE.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gair.world import grid

POPULATION_SCALE = 32.0  # stored uint8 = round(intensity * 32)
POPULATION_RADIUS_KM = 50.0


def population_within(
    lat: np.ndarray, lon: np.ndarray, pop: np.ndarray, radius_km: float = POPULATION_RADIUS_KM
) -> np.ndarray:
    """People within `radius_km` of every grid-pixel centre: the cities' populations summed into
    grid pixels, then convolved with a geodesic disk. The disk's shape depends on latitude, so the
    grid is processed in bands of rows, each with its own kernel, as circular (longitude-wrapping)
    FFT convolutions along rows."""
    rows, cols = grid.nearest_index(lat, lon)
    counts = np.zeros((grid.HEIGHT, grid.WIDTH), np.float64)
    np.add.at(counts, (rows, cols), pop)
    r_px = int(np.ceil(radius_km / (grid.KM_PER_DEG * grid.DEG_PER_PX))) + 1
    fft_counts = np.fft.rfft(counts, axis=1)  # [H, W/2+1], each row's spectrum
    out = np.zeros_like(counts)
    band = 12
    dcol = np.arange(grid.WIDTH)
    dcol = np.where(dcol > grid.WIDTH // 2, dcol - grid.WIDTH, dcol)  # signed column offset
    lon_off = np.deg2rad(dcol * grid.DEG_PER_PX)
    for r0 in range(0, grid.HEIGHT, band):
        r1 = min(r0 + band, grid.HEIGHT)
        lat_c = np.deg2rad(grid.row_lat((r0 + r1 - 1) / 2.0))
        acc = np.zeros((r1 - r0, fft_counts.shape[1]), np.complex128)
        for dr in range(-r_px, r_px + 1):
            src = np.arange(r0, r1) + dr
            ok = (src >= 0) & (src < grid.HEIGHT)
            if not ok.any():
                continue
            lat_s = np.deg2rad(grid.row_lat((r0 + r1 - 1) / 2.0 + dr))
            # haversine distance from the band's centre row to (dr, dcol)
            a = (
                np.sin((lat_s - lat_c) / 2) ** 2
                + np.cos(lat_c) * np.cos(lat_s) * np.sin(lon_off / 2) ** 2
            )
            dist = 2 * grid.EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
            kernel = (dist <= radius_km).astype(np.float64)
            if not kernel.any():
                continue
            kf = np.fft.rfft(kernel)
            acc[ok] += fft_counts[src[ok]] * kf[None, :]
        out[r0:r1] = np.fft.irfft(acc, n=grid.WIDTH, axis=1)
    return np.clip(out, 0.0, None)


def build_population(paths: dict[str, Path]) -> tuple[np.ndarray, dict]:
    with open(paths["cities"], encoding="utf-8") as fh:
        cities = json.load(fh)
    lat = np.fromiter((c["latitude"] for c in cities.values()), np.float64, len(cities))
    lon = np.fromiter((c["longitude"] for c in cities.values()), np.float64, len(cities))
    pop = np.fromiter((c.get("population") or 0 for c in cities.values()), np.float64, len(cities))
    del cities
    people = population_within(lat, lon, pop)
    intensity = np.log10(1.0 + people)
    stored = np.clip(np.rint(intensity * POPULATION_SCALE), 0, 255).astype(np.uint8)
    return stored, {"cities": int(len(lat)), "people": float(pop.sum())}
