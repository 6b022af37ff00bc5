"""Input checks: typed and clicked coordinates, the number of results, uploaded images.

The checks raise ValueError with a message for people on bad input.
"""

from __future__ import annotations

import math
import re

import numpy as np

K_DEFAULT = 8
K_MAX = 50

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


def decode_upload(data: bytes, name: str = "upload") -> np.ndarray:
    """Bytes of an uploaded image -> uint8 RGB, or ValueError with a message (not an image,
    too large, decompression bomb)."""
    from gair.images import decode_image

    return decode_image(data, name)
