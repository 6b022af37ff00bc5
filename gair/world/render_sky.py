"""Sky and light of the ground views: season, time of day and weather from the seed give the
light, the cloud cover, the sky colours, the visibility and the horizon row; the sky is a
gradient with clouds.
"""

from __future__ import annotations

import numpy as np

HUMIDITY = np.array([0.35, 0.6, 0.08, 0.45, 0.45, 0.5])  # by Koppen class (0 = none)


def _sky_and_light(lat, kg, U, V, S: int) -> dict:
    """Per-view light and sky of a scene (U: scene uniforms, V: view uniforms): light
    (exposure factor), cover, overcast, low_sun, zenith and horizon_col [3, N] colours,
    visibility (km), horizon_row and sun_side (+1 / -1)."""
    decl = 23.4 * np.sin(2 * np.pi * U[:, 0])  # season
    sun_noon = 90.0 - np.abs(lat - decl)
    sun_elev = np.maximum(3.0, sun_noon * (0.35 + 0.65 * U[:, 1]))  # time of day
    light = 0.85 + 0.2 * np.sin(np.radians(np.minimum(sun_elev, 90.0)))  # ~auto exposure
    cover = np.clip(HUMIDITY[kg] * 1.25 * U[:, 2] + 0.12 * U[:, 3], 0.0, 0.95)
    overcast = cover > 0.72
    low_sun = sun_elev < 10.0
    zenith = (
        np.array((58, 112, 200), np.float64)[:, None]
        + (np.abs(lat) / 90.0) * np.array((30, 28, 12), np.float64)[:, None]
    )
    horizon_col = np.where(
        kg == 2, np.array((216, 208, 192.0))[:, None], np.array((188, 208, 228.0))[:, None]
    )
    horizon_col = np.where(
        low_sun, horizon_col * 0.5 + np.array((240, 168, 118.0))[:, None] * 0.5, horizon_col
    )
    zenith = np.where(low_sun, zenith * 0.8, zenith)
    grey = 150.0 + 50.0 * U[:, 4]
    zenith = np.where(overcast, np.stack([grey, grey + 3, grey + 8]), zenith)
    horizon_col = np.where(overcast, zenith + 18.0, horizon_col)
    light = np.where(overcast, light * 0.85, light)
    visibility = 25.0 + 120.0 * U[:, 5] * np.where(overcast, 0.5, 1.0) * np.where(kg == 1, 0.6, 1.0)
    horizon_row = S * (0.5 + 0.08 * (U[:, 6] - 0.5) + 0.04 * (V[:, 0] - 0.5))
    sun_side = np.where(U[:, 7] > 0.5, 1.0, -1.0)
    zenith = zenith.astype(np.float32)
    horizon_col = horizon_col.astype(np.float32)
    return {
        "light": light,
        "cover": cover,
        "overcast": overcast,
        "low_sun": low_sun,
        "zenith": zenith,
        "horizon_col": horizon_col,
        "visibility": visibility,
        "horizon_row": horizon_row,
        "sun_side": sun_side,
    }


def _paint_sky(img, is_sky, scene, cloud, rows) -> np.ndarray:
    """Paints the sky (gradient and clouds) over the pixels where no terrain layer shows.
    `scene` is `_sky_and_light`'s dict, `cloud` each view's window of the cloud texture."""
    horizon_row, horizon_col, zenith = scene["horizon_row"], scene["horizon_col"], scene["zenith"]
    cover, overcast, low_sun = scene["cover"], scene["overcast"], scene["low_sun"]
    tsky = np.clip(
        (horizon_row[:, None] - rows[None, :]) / np.maximum(horizon_row, 1.0)[:, None], 0, 1
    )
    tsky = (tsky**0.6).astype(np.float32)
    sky = horizon_col[:, :, None] * (1 - tsky) + zenith[:, :, None] * tsky  # [3, N, S]
    cl = np.clip((cloud - (1.6 - 3.0 * cover).astype(np.float32)[:, None, None]) * 0.7, 0.0, 1.0)
    cloud_col = np.where(overcast, 196.0, 245.0)[None, :] * np.ones((3, 1))
    cloud_col = np.where(low_sun, np.array((250, 200, 170.0))[:, None], cloud_col).astype(
        np.float32
    )
    sky_img = sky[:, :, :, None] + (cloud_col[:, :, None, None] - sky[:, :, :, None]) * cl
    img = np.where(is_sky, sky_img, img)
    return img
