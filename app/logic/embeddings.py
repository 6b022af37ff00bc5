"""Embeddings through the index's `Embedder` (`gair.embed`): points, locations, images,
and the neighbourhood grid around a clicked point.

A clicked point gets exactly the embedding the index stored for the same coordinates.
"""

from __future__ import annotations

import math
import threading

import numpy as np

NEIGHBOURHOOD_N = 9  # odd: the clicked point is the centre of the grid

_embed_lock = threading.Lock()  # torch modules: one embedding at a time per process


def embed_points(res, latlon: np.ndarray) -> np.ndarray:
    """INR embeddings [N, E] of points [N, 2] (or one point [2]) through the index's Embedder
    (which refuses any other shape)."""
    with _embed_lock:
        return res.index.embedder.point(np.asarray(latlon, np.float64))


def embed_locations(res, latlon: np.ndarray) -> np.ndarray:
    with _embed_lock:
        return res.index.embedder.location(np.asarray(latlon, np.float64))


def prepare_photo(res, image: np.ndarray) -> np.ndarray:
    """A photo as the SV encoder sees it, the way the index's gallery was prepared: its
    centred square crop (a 4:3 photo is cropped, never squashed), resized with antialiasing
    to the encoder's input size (`gair.images.square_resize`), before the model's own
    normalisation. A 4000 x 3000 photo is not aliased by a resize that skips most pixels."""
    from gair.images import square_resize

    return square_resize(image, int(res.index.embedder.config["sv"]["img_size"]))


def embed_image(res, image: np.ndarray) -> np.ndarray:
    """The SV embedding [E] of a photo (uint8 [H, W, 3], any size), `prepare_photo`d first."""
    image = prepare_photo(res, image)
    with _embed_lock:
        return res.index.embedder.street_view([image])[0]


def neighbourhood_grid(res, lat: float, lon: float, n: int = NEIGHBOURHOOD_N):
    """An n x n grid over the RS tile cell around the point: the square between the four tile
    centres whose chips the point's embedding blends (one tiling stride on a side). Every grid
    point blends the same four tiles, so the map costs no extra RS encoder pass.

    Returns (points [n*n, 2] row-major from the north-west, latitude axis [n] north to south,
    longitude axis [n] west to east, unwrapped so it contains `lon`)."""
    tiling = getattr(res.index.embedder, "tiling", None)
    step = getattr(tiling, "stride_deg", None) or 1.0
    r0 = math.floor((90.0 - lat) / step)
    c0 = math.floor(((lon + 180.0) % 360.0) / step)
    lat_axis = np.clip(90.0 - (r0 + np.linspace(0.0, 1.0, n)) * step, -90.0, 90.0)
    west = -180.0 + c0 * step
    west += 360.0 * round((lon - west - step / 2) / 360.0)  # the copy of the world `lon` is in
    lon_axis = west + np.linspace(0.0, 1.0, n) * step
    wrapped = (lon_axis + 180.0) % 360.0 - 180.0
    grid = np.stack(np.meshgrid(lat_axis, wrapped, indexing="ij"), -1).reshape(-1, 2)
    return grid, lat_axis, lon_axis
