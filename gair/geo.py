"""Geographic maths and coordinate validation.

Conventions (DESIGN.md): coordinates are WGS84 degrees, arrays `latlon` have shape (..., 2) in
(lat, lon) order; a bbox is (west, south, east, north) and may cross the antimeridian
(west > east). Chip coordinates: x = -1 at the west edge, +1 at the east edge; y = -1 at the
north edge, +1 at the south edge (image row order).

Every function accepts numpy arrays or torch tensors and returns the same kind. torch is not
imported here (a tensor can only exist once something else imported it), so numpy-only users
such as the app's first page do not pay for it.
"""

from __future__ import annotations

import math
import sys

import numpy as np

EARTH_RADIUS_KM = 6371.0088

Array = np.ndarray  # or a torch.Tensor: every function here works on both


def _is_tensor(x) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _lib(x: Array):
    return sys.modules["torch"] if _is_tensor(x) else np


def _first_bad(mask: Array, values: Array) -> str:
    """Describe the first offending entry of `values` where `mask` is True."""
    idx = np.argwhere(np.asarray(mask.cpu() if _is_tensor(mask) else mask))[0]
    val = values[tuple(idx)]
    val = val.item() if hasattr(val, "item") else val
    return f"{val!r} at index {tuple(int(i) for i in idx)}"


def validate_latlon(latlon: Array, name: str = "latlon") -> Array:
    """Check an array of (lat, lon) pairs; return it with longitudes wrapped to [-180, 180).

    Raises ValueError naming the first bad value: wrong last dimension, NaN/inf, |lat| > 90.
    """
    if not _is_tensor(latlon):
        try:
            latlon = np.asarray(latlon, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} is not numeric: {latlon!r}") from err
    if latlon.ndim == 0 or latlon.shape[-1] != 2:
        raise ValueError(
            f"{name} must have shape (..., 2) in (lat, lon) order, got {tuple(latlon.shape)}"
        )
    lib = _lib(latlon)
    finite = lib.isfinite(latlon)
    if not bool(finite.all()):
        raise ValueError(f"{name} contains a non-finite value: {_first_bad(~finite, latlon)}")
    lat, lon = latlon[..., 0], latlon[..., 1]
    bad_lat = lib.abs(lat) > 90
    if bool(bad_lat.any()):
        raise ValueError(f"{name}: latitude outside [-90, 90]: {_first_bad(bad_lat, lat)}")
    return lib.stack([lat, wrap_lon(lon)], -1)


def validate_point(lat: float, lon: float) -> tuple[float, float]:
    """Validate one named point; return (lat, lon) with lon wrapped to [-180, 180)."""
    try:
        lat_f, lon_f = float(lat), float(lon)
    except (TypeError, ValueError) as err:
        raise ValueError(f"coordinates must be numbers, got lat={lat!r}, lon={lon!r}") from err
    if not math.isfinite(lat_f) or abs(lat_f) > 90:
        raise ValueError(f"latitude must be a finite number in [-90, 90], got {lat!r}")
    if not math.isfinite(lon_f):
        raise ValueError(f"longitude must be a finite number, got {lon!r}")
    return lat_f, float(wrap_lon(np.float64(lon_f)))


def wrap_lon(lon: Array) -> Array:
    """Wrap longitudes (degrees) into [-180, 180)."""
    return (lon + 180.0) % 360.0 - 180.0


def validate_bbox(bbox: Array, name: str = "rs_bbox") -> Array:
    """Check bboxes (..., 4) = (west, south, east, north); west > east means it crosses 180."""
    if not _is_tensor(bbox):
        bbox = np.asarray(bbox, dtype=np.float64)
    if bbox.ndim == 0 or bbox.shape[-1] != 4:
        raise ValueError(
            f"{name} must have shape (..., 4) = (west, south, east, north), got {tuple(bbox.shape)}"
        )
    lib = _lib(bbox)
    finite = lib.isfinite(bbox)
    if not bool(finite.all()):
        raise ValueError(f"{name} contains a non-finite value: {_first_bad(~finite, bbox)}")
    south, north = bbox[..., 1], bbox[..., 3]
    bad = (south >= north) | (lib.abs(south) > 90) | (lib.abs(north) > 90)
    if bool(bad.any()):
        idx = np.argwhere(np.asarray(bad.cpu() if lib is not np else bad))[0]
        raise ValueError(
            f"{name}: need -90 <= south < north <= 90, got {bbox[tuple(idx)].tolist()}"
        )
    width = bbox_width_deg(bbox)
    if bool((width <= 0).any()):
        raise ValueError(f"{name}: west and east must differ, got {bbox.tolist()}")
    return bbox


def bbox_width_deg(bbox: Array) -> Array:
    """East-west extent in degrees of longitude, correct across the antimeridian. In (0, 360]."""
    width = (bbox[..., 2] - bbox[..., 0]) % 360.0
    return width


def to_chip_coords(latlon: Array, bbox: Array) -> Array:
    """Map (lat, lon) to chip coordinates (x, y) in [-1, 1] for a bbox.

    Args:
        latlon: (..., 2) degrees in (lat, lon) order.
        bbox: (..., 4) (west, south, east, north) degrees, broadcastable against latlon[..., 0].
    Returns:
        (..., 2) chip coordinates (x, y): x = -1 west edge -> +1 east edge, y = -1 north edge ->
        +1 south edge. Points outside the bbox map outside [-1, 1]; longitudes are compared on the
        circle, so a bbox crossing the antimeridian works.
    """
    lib = _lib(latlon)
    lat, lon = latlon[..., 0], latlon[..., 1]
    west, south, north = bbox[..., 0], bbox[..., 1], bbox[..., 3]
    width = bbox_width_deg(bbox)
    centre = west + width / 2.0
    dlon = wrap_lon(lon - centre)  # signed offset from the bbox centre, in (-180, 180]
    x = 2.0 * dlon / width
    y = 2.0 * (north - lat) / (north - south) - 1.0
    return lib.stack([x, y], -1)


def from_chip_coords(xy: Array, bbox: Array) -> Array:
    """Inverse of `to_chip_coords`: (..., 2) chip (x, y) -> (..., 2) (lat, lon), lon in [-180, 180)."""
    lib = _lib(xy)
    x, y = xy[..., 0], xy[..., 1]
    west, south, north = bbox[..., 0], bbox[..., 1], bbox[..., 3]
    width = bbox_width_deg(bbox)
    lon = wrap_lon(west + (x + 1.0) / 2.0 * width)
    lat = north - (y + 1.0) / 2.0 * (north - south)
    return lib.stack([lat, lon], -1)


def haversine_km(latlon_a: Array, latlon_b: Array) -> Array:
    """Great-circle distance in km between (..., 2) (lat, lon) arrays (broadcasting)."""
    lib = _lib(latlon_a)
    lat1, lon1 = lib.deg2rad(latlon_a[..., 0]), lib.deg2rad(latlon_a[..., 1])
    lat2, lon2 = lib.deg2rad(latlon_b[..., 0]), lib.deg2rad(latlon_b[..., 1])
    a = (
        lib.sin((lat2 - lat1) / 2) ** 2
        + lib.cos(lat1) * lib.cos(lat2) * lib.sin((lon2 - lon1) / 2) ** 2
    )
    a = lib.clip(a, 0.0, 1.0)
    return 2 * EARTH_RADIUS_KM * lib.arcsin(lib.sqrt(a))


def bbox_around(latlon: Array, half_width_deg: Array, half_height_deg: Array) -> Array:
    """Bbox (..., 4) centred on each point; latitudes clamp at +-90, longitudes wrap."""
    lib = _lib(latlon)
    lat, lon = latlon[..., 0], latlon[..., 1]
    south = lib.clip(lat - half_height_deg, -90.0, 90.0)
    north = lib.clip(lat + half_height_deg, -90.0, 90.0)
    west = wrap_lon(lon - half_width_deg)
    east = wrap_lon(lon + half_width_deg)
    parts = [west, south, east, north]
    return lib.stack(parts, -1)
