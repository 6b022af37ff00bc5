"""Geographic maths and coordinate validation.

Conventions (DESIGN.md): coordinates are WGS84 degrees, arrays `latlon` have shape (..., 2) in
(lat, lon) order; a bbox is (west, south, east, north) and may cross the antimeridian
(west > east). Chip coordinates: x = -1 at the west edge, +1 at the east edge; y = -1 at the
north edge, +1 at the south edge (image row order).

Every public function validates its inputs before it computes and raises a one-line ValueError
naming the argument, the first bad value and what is expected: shapes, finiteness, latitudes in
[-90, 90], longitudes in [-540, 540] (one wrap either way covers any real input, e.g. 181 from a
map panned past the antimeridian; 1e308 is a mistake, not a longitude), south < north,
west != east. Bools and complex numbers are not coordinates. The checks are vectorised (one
device sync per array in the good case on a GPU tensor) and skip broadcast (stride-0) copies.

Every function accepts numpy arrays or torch tensors and returns the same kind (of its first
argument). torch is not imported here (a tensor can only exist once something else imported
it), so numpy-only users such as the app's first page do not pay for it.
"""

from __future__ import annotations

import math
import sys

import numpy as np

EARTH_RADIUS_KM = 6371.0088
LAT_LIMIT = 90.0
LON_LIMIT = 540.0  # |lon| accepted and wrapped: one wrap either way

Array = np.ndarray  # or a torch.Tensor: every function here works on both


def _is_tensor(x) -> bool:
    # getattr: torch may be half-imported by another thread (the app loads it in the background)
    tensor = getattr(sys.modules.get("torch"), "Tensor", None)
    return tensor is not None and isinstance(x, tensor)


def _lib(x: Array):
    return sys.modules["torch"] if _is_tensor(x) else np


def _as_numeric(x, name: str) -> Array:
    """`x` as a float array (numpy float64 unless already a floating tensor). Refuses bools,
    complex numbers and anything non-numeric with a ValueError naming `name`."""
    if _is_tensor(x):
        torch = sys.modules["torch"]
        if x.dtype == torch.bool or x.dtype.is_complex:
            raise ValueError(f"{name} must be real numbers, got a {x.dtype} tensor")
        return x if x.dtype.is_floating_point else x.to(torch.float64)
    if isinstance(x, list | tuple):
        # a Python sequence: numpy would silently turn True into 1.0 next to floats
        try:
            obj = np.asarray(x, dtype=object)
        except ValueError as err:
            raise ValueError(f"{name} is not a numeric array: {_short(x)}") from err
        if obj.size:
            flags = _NOT_REAL(obj).astype(bool)
            if flags.any():
                idx = _first(flags)
                raise ValueError(f"{name} must be real numbers, got {_short(obj[idx])}{_at(idx)}")
    try:
        arr = np.asarray(x)
    except ValueError as err:
        raise ValueError(f"{name} is not a numeric array: {_short(x)}") from err
    if arr.dtype.kind in "bc":
        raise ValueError(f"{name} must be real numbers, got {arr.dtype} values: {_short(x)}")
    try:
        return arr.astype(np.float64, copy=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} is not numeric: {_short(x)}") from err


_NOT_REAL = np.frompyfunc(
    lambda v: isinstance(v, bool | np.bool_ | complex | np.complexfloating), 1, 1
)  # elementwise in C over an object array


def _short(x) -> str:
    """A one-line repr of at most 200 characters, for messages."""
    text = " ".join(repr(x).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _compact(x: Array) -> Array:
    """A view of `x` without its broadcast (stride-0) dimensions: the same distinct values,
    so an `expand`ed [Q, G, 2] tensor is checked at the cost of its [Q, 1, 2] source."""
    if not math.prod(x.shape):  # empty: numpy may report any strides
        return x
    strides = x.stride() if _is_tensor(x) else x.strides
    index = tuple(
        slice(0, 1) if s == 0 and n > 1 else slice(None)
        for s, n in zip(strides, x.shape, strict=True)
    )
    return x[index] if index else x


def _at(idx: tuple) -> str:
    return f" at index {idx}" if idx else ""


def _first(mask: Array) -> tuple:
    """Index of the first True entry of `mask` (which has at least one)."""
    m = np.asarray(mask.cpu() if _is_tensor(mask) else mask)
    return tuple(int(i) for i in np.argwhere(m)[0]) if m.ndim else ()


def _item(values: Array, idx: tuple):
    val = values[idx]
    return val.item() if hasattr(val, "item") else val


def _first_bad(mask: Array, values: Array) -> str:
    """Describe the first offending entry of `values` where `mask` is True."""
    idx = _first(mask)
    return f"{_item(values, idx)!r}{_at(idx)}"


def _shape(x: Array, last: int, name: str, what: str) -> None:
    if x.ndim == 0 or x.shape[-1] != last:
        raise ValueError(f"{name} must have shape (..., {last}) = {what}, got {tuple(x.shape)}")


def _like(x, ref: Array, name: str) -> Array:
    """`x` as a numeric array of the same kind (numpy / torch, device) as `ref`."""
    x = _as_numeric(x, name)
    if _is_tensor(ref) and not _is_tensor(x):
        return sys.modules["torch"].as_tensor(x, device=ref.device)
    if _is_tensor(x) and not _is_tensor(ref):
        return x.detach().cpu().numpy().astype(np.float64, copy=False)
    if _is_tensor(x) and x.device != ref.device:
        return x.to(ref.device)
    return x


def _broadcast(a: tuple, b: tuple, what: str) -> None:
    try:
        np.broadcast_shapes(tuple(a), tuple(b))
    except ValueError as err:
        raise ValueError(f"{what} do not broadcast: {tuple(a)} vs {tuple(b)}") from err


def _check_latlon(latlon, name: str) -> Array:
    """Validated (not wrapped) (..., 2) (lat, lon) array: see `validate_latlon`."""
    latlon = _as_numeric(latlon, name)
    _shape(latlon, 2, name, "(lat, lon) pairs")
    c = _compact(latlon)
    lib = _lib(c)
    lat, lon = c[..., 0], c[..., 1]
    bad = ~(lib.abs(lat) <= LAT_LIMIT) | ~(lib.abs(lon) <= LON_LIMIT)  # NaN compares False
    if bool(bad.any()):
        finite = lib.isfinite(c)
        if not bool(finite.all()):
            raise ValueError(
                f"{name} contains a non-finite value: {_first_bad(~finite, c)}; "
                "expected finite (lat, lon) degrees"
            )
        bad_lat = lib.abs(lat) > LAT_LIMIT
        if bool(bad_lat.any()):
            raise ValueError(f"{name}: latitude {_first_bad(bad_lat, lat)} is outside [-90, 90]")
        raise ValueError(
            f"{name}: longitude {_first_bad(lib.abs(lon) > LON_LIMIT, lon)} is outside "
            f"[-{LON_LIMIT:g}, {LON_LIMIT:g}] (longitudes are wrapped once either way, no further)"
        )
    return latlon


def validate_latlon(latlon: Array, name: str = "latlon") -> Array:
    """Check an array of (lat, lon) pairs; return it with longitudes wrapped to [-180, 180).

    Accepts (..., 2) numpy arrays, torch tensors (floating dtype kept, integers become float64)
    or nested sequences (-> float64 numpy). Raises ValueError naming `name` and the first bad
    value: wrong last dimension, bool/complex/non-numeric, NaN/inf, |lat| > 90, |lon| > 540.
    """
    latlon = _check_latlon(latlon, name)
    return _lib(latlon).stack([latlon[..., 0], _wrap(latlon[..., 1])], -1)


def _scalar(value, what: str) -> float:
    """One coordinate given as a number or numeric string; bools and complex are refused."""
    if isinstance(value, bool | np.bool_ | complex | np.complexfloating):
        raise ValueError(f"{what} must be a real number, got {_short(value)}")
    if isinstance(value, np.ndarray | list | tuple) or _is_tensor(value):
        arr = _as_numeric(value, what)
        if arr.ndim != 0 and tuple(arr.shape) != (1,):
            raise ValueError(f"{what} must be one number, got shape {tuple(arr.shape)}")
        value = arr.reshape(()).item() if _is_tensor(arr) else arr.reshape(())[()]
    try:
        return float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be a number, got {_short(value)}") from err


def validate_point(lat: float, lon: float) -> tuple[float, float]:
    """Validate one named point; return (lat, lon) floats with lon wrapped to [-180, 180).

    Takes numbers or numeric strings (the CLI's --lat/--lon). Raises ValueError for non-numbers,
    bools, complex numbers, NaN/inf, a latitude outside [-90, 90] or a longitude outside
    [-540, 540] (181 from a map panned past the antimeridian wraps to -179; 1e308 is refused).
    """
    lat_f, lon_f = _scalar(lat, "latitude"), _scalar(lon, "longitude")
    if not (math.isfinite(lat_f) and abs(lat_f) <= LAT_LIMIT):
        raise ValueError(f"latitude must be a finite number in [-90, 90], got {_short(lat)}")
    if not (math.isfinite(lon_f) and abs(lon_f) <= LON_LIMIT):
        raise ValueError(
            f"longitude must be a finite number in [-{LON_LIMIT:g}, {LON_LIMIT:g}] "
            f"(wrapped to [-180, 180)), got {_short(lon)}"
        )
    return lat_f, float(_wrap(np.float64(lon_f)))


def _wrap(lon: Array) -> Array:
    return (lon + 180.0) % 360.0 - 180.0


def wrap_lon(lon: Array) -> Array:
    """Wrap longitudes (degrees, |lon| <= 540: one wrap either way) into [-180, 180).

    Any shape; a number gives a numpy float64. ValueError for NaN/inf, bools, complex numbers
    or |lon| > 540.
    """
    arr = _as_numeric(lon, "lon")
    c = _compact(arr)
    lib = _lib(c)
    bad = ~(lib.abs(c) <= LON_LIMIT)
    if bool(bad.any()):
        raise ValueError(
            f"lon: longitude {_first_bad(bad, c)} is not a finite number in "
            f"[-{LON_LIMIT:g}, {LON_LIMIT:g}]"
        )
    out = _wrap(arr)
    return out[()] if isinstance(out, np.ndarray) and out.ndim == 0 else out


def _width(bbox: Array) -> Array:
    """East-west extent in (0, 360] of checked bboxes; 0 only when west == east exactly."""
    west, east = bbox[..., 0], bbox[..., 2]
    width = (east - west) % 360.0
    full = (width == 0) & (east != west)  # e.g. (-180, 180): the whole circle
    return _lib(bbox).where(full, width * 0.0 + 360.0, width)


def validate_bbox(bbox: Array, name: str = "rs_bbox") -> Array:
    """Check bboxes (..., 4) = (west, south, east, north); west > east means it crosses 180.

    Needs finite values, -90 <= south < north <= 90, |west|, |east| <= 540 and west != east
    (-180, 180 is the whole circle). Returns the bbox as a float array (not wrapped). Raises a
    ValueError naming `name`, the first bad bbox and what is expected.
    """
    bbox = _as_numeric(bbox, name)
    _shape(bbox, 4, name, "(west, south, east, north)")
    c = _compact(bbox)
    lib = _lib(c)
    west, south, east, north = c[..., 0], c[..., 1], c[..., 2], c[..., 3]
    ok = (
        (south >= -LAT_LIMIT)
        & (north <= LAT_LIMIT)
        & (south < north)
        & (lib.abs(west) <= LON_LIMIT)
        & (lib.abs(east) <= LON_LIMIT)
        & (west != east)
    )  # NaN fails every comparison but !=, and |NaN| <= 540 catches that
    if bool((~ok).any()):
        finite = lib.isfinite(c)
        if not bool(finite.all()):
            raise ValueError(
                f"{name} contains a non-finite value: {_first_bad(~finite, c)}; expected finite "
                "(west, south, east, north) degrees"
            )
        lat_bad = ~((south >= -LAT_LIMIT) & (north <= LAT_LIMIT) & (south < north))
        if bool(lat_bad.any()):
            idx = _first(lat_bad)
            raise ValueError(
                f"{name}: need -90 <= south < north <= 90, got south={_item(south, idx)!r}, "
                f"north={_item(north, idx)!r} in {c[idx].tolist()}{_at(idx)}"
            )
        lon_bad = ~((lib.abs(west) <= LON_LIMIT) & (lib.abs(east) <= LON_LIMIT))
        if bool(lon_bad.any()):
            idx = _first(lon_bad)
            raise ValueError(
                f"{name}: west and east must be in [-{LON_LIMIT:g}, {LON_LIMIT:g}], got "
                f"{c[idx].tolist()}{_at(idx)}"
            )
        idx = _first(west == east)
        raise ValueError(
            f"{name}: west and east must differ (zero width; the whole circle is -180, 180), "
            f"got {c[idx].tolist()}{_at(idx)}"
        )
    return bbox


def bbox_width_deg(bbox: Array) -> Array:
    """East-west extent in degrees of longitude, correct across the antimeridian. In (0, 360]
    ((-180, 180) is 360). ValueError for an invalid bbox (see `validate_bbox`)."""
    return _width(validate_bbox(bbox, "bbox"))


def to_chip_coords(latlon: Array, bbox: Array) -> Array:
    """Map (lat, lon) to chip coordinates (x, y) in [-1, 1] for a bbox.

    Args:
        latlon: (..., 2) degrees in (lat, lon) order (validated as in `validate_latlon`).
        bbox: (..., 4) (west, south, east, north) degrees (validated as in `validate_bbox`),
            broadcastable against latlon[..., 0].
    Returns:
        (..., 2) chip coordinates (x, y): x = -1 west edge -> +1 east edge, y = -1 north edge ->
        +1 south edge. Points outside the bbox map outside [-1, 1]; longitudes are compared on the
        circle, so a bbox crossing the antimeridian works.
    Raises:
        ValueError naming `latlon` or `bbox` and the first bad value, or shapes that do not
        broadcast.
    """
    latlon = _check_latlon(latlon, "latlon")
    bbox = validate_bbox(_like(bbox, latlon, "bbox"), "bbox")
    _broadcast(latlon.shape[:-1], bbox.shape[:-1], "latlon[..., 0] and bbox[..., 0] shapes")
    lib = _lib(latlon)
    lat, lon = latlon[..., 0], latlon[..., 1]
    west, south, north = bbox[..., 0], bbox[..., 1], bbox[..., 3]
    width = _width(bbox)
    centre = west + width / 2.0
    dlon = _wrap(lon - centre)  # signed offset from the bbox centre, in (-180, 180]
    x = 2.0 * dlon / width
    y = 2.0 * (north - lat) / (north - south) - 1.0
    return lib.stack([x, y], -1)


def from_chip_coords(xy: Array, bbox: Array) -> Array:
    """Inverse of `to_chip_coords`: (..., 2) chip (x, y) -> (..., 2) (lat, lon), lon in [-180, 180).

    ValueError for non-finite or wrongly shaped xy, an invalid bbox, shapes that do not
    broadcast, or a y so far outside [-1, 1] that the latitude leaves [-90, 90].
    """
    xy = _as_numeric(xy, "xy")
    _shape(xy, 2, "xy", "chip (x, y)")
    c = _compact(xy)
    finite = _lib(c).isfinite(c)
    if not bool(finite.all()):
        raise ValueError(f"xy contains a non-finite value: {_first_bad(~finite, c)}")
    bbox = validate_bbox(_like(bbox, xy, "bbox"), "bbox")
    _broadcast(xy.shape[:-1], bbox.shape[:-1], "xy[..., 0] and bbox[..., 0] shapes")
    lib = _lib(xy)
    x, y = xy[..., 0], xy[..., 1]
    west, south, north = bbox[..., 0], bbox[..., 1], bbox[..., 3]
    width = _width(bbox)
    lon = _wrap(west + (x + 1.0) / 2.0 * width)
    lat = north - (y + 1.0) / 2.0 * (north - south)
    bad = ~(lib.abs(lat) <= LAT_LIMIT)
    if bool(bad.any()):
        idx = _first(bad)
        raise ValueError(f"xy: y maps to latitude {_item(lat, idx)!r}{_at(idx)}, outside [-90, 90]")
    return lib.stack([lat, lon], -1)


def haversine_km(latlon_a: Array, latlon_b: Array) -> Array:
    """Great-circle distance in km between (..., 2) (lat, lon) arrays (broadcasting).

    Both are validated as in `validate_latlon` (ValueError naming `latlon_a` / `latlon_b`);
    the result has the kind of `latlon_a`.
    """
    latlon_a = _check_latlon(latlon_a, "latlon_a")
    latlon_b = _check_latlon(_like(latlon_b, latlon_a, "latlon_b"), "latlon_b")
    _broadcast(latlon_a.shape[:-1], latlon_b.shape[:-1], "latlon_a and latlon_b point shapes")
    lib = _lib(latlon_a)
    lat1, lon1 = lib.deg2rad(latlon_a[..., 0]), lib.deg2rad(latlon_a[..., 1])
    lat2, lon2 = lib.deg2rad(latlon_b[..., 0]), lib.deg2rad(latlon_b[..., 1])
    a = (
        lib.sin((lat2 - lat1) / 2) ** 2
        + lib.cos(lat1) * lib.cos(lat2) * lib.sin((lon2 - lon1) / 2) ** 2
    )
    a = lib.clip(a, 0.0, 1.0)
    return 2 * EARTH_RADIUS_KM * lib.arcsin(lib.sqrt(a))


def _half_extent(value, ref: Array, name: str, upper: float, inclusive: bool):
    """A checked half extent in (0, upper] (or (0, upper)): a float for a number, else an array
    of `ref`'s kind."""
    arr = _as_numeric(value, name)
    if arr.ndim == 0:
        arr = float(arr)
        if not (arr > 0 and (arr <= upper if inclusive else arr < upper)):
            raise ValueError(
                f"{name} must be in (0, {upper:g}{']' if inclusive else ')'} degrees, got {_short(value)}"
            )
        return arr
    arr = _like(arr, ref, name)
    c = _compact(arr)
    bad = ~((c > 0) & ((c <= upper) if inclusive else (c < upper)))
    if bool(bad.any()):
        raise ValueError(
            f"{name} must be in (0, {upper:g}{']' if inclusive else ')'} degrees, got "
            f"{_first_bad(bad, c)}"
        )
    return arr


def bbox_around(latlon: Array, half_width_deg: Array, half_height_deg: Array) -> Array:
    """Bbox (..., 4) centred on each point; latitudes clamp at +-90, longitudes wrap.

    latlon is validated as in `validate_latlon`; half_width_deg must be in (0, 180) (180 would
    make west == east) and half_height_deg in (0, 180], both broadcastable against
    latlon[..., 0]. ValueError naming the argument otherwise.
    """
    latlon = _check_latlon(latlon, "latlon")
    hw = _half_extent(half_width_deg, latlon, "half_width_deg", 180.0, inclusive=False)
    hh = _half_extent(half_height_deg, latlon, "half_height_deg", 180.0, inclusive=True)
    shape = latlon.shape[:-1]
    for value, what in ((hw, "half_width_deg"), (hh, "half_height_deg")):
        _broadcast(shape, getattr(value, "shape", ()), f"latlon[..., 0] and {what} shapes")
    lib = _lib(latlon)
    lat, lon = latlon[..., 0], latlon[..., 1]
    south = lib.clip(lat - hh, -90.0, 90.0)
    north = lib.clip(lat + hh, -90.0, 90.0)
    west = _wrap(lon - hw)
    east = _wrap(lon + hw)
    parts = [west, south, east, north]
    parts = np.broadcast_arrays(*parts) if lib is np else lib.broadcast_tensors(*parts)
    return lib.stack(parts, -1)
