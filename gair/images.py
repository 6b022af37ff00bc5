"""Image decoding for every boundary that accepts user images (CLI `--sv-image`, app uploads).

`decode_image` / `read_image` return the image as a person sees it in a viewer, as uint8 RGB
[H, W, 3]:

- orientation: the EXIF Orientation tag is applied (all 8 values), so an upright phone photo is
  upright; an unreadable EXIF block is ignored, as viewers do;
- frames: the first frame of an animation or multi-page file;
- colour: an embedded ICC profile (RGB or CMYK) is converted to sRGB; without one, CMYK is
  converted naively (CMYK JPEGs follow Adobe's inverted convention, as Pillow assumes);
  palette, 1-bit and greyscale images become RGB;
- transparency (alpha channel, palette or tRNS transparency) is composited over white, as
  browsers and most viewers show it on their default page;
- deep images are scaled to 0..255 by their real range: 16-bit integers by 0..65535 (a 16-bit
  copy of an 8-bit image, values x257, decodes equal to it, and a dark scene stays dark) unless
  no value exceeds 255 (8-bit data in a 16-bit container, taken as is); 32-bit integers outside
  0..65535 by their min..max; floats within [0, 1] as 0..1, others by their finite min..max;
  NaN and +-inf become 0 (black), and an image without a finite value is refused;
- size: the long side is at most MAX_SIDE px, aspect kept (JPEGs are decoded reduced with
  `draft`, then every image is resized with Lanczos, which antialiases); the model resizes to
  its input size (224 px) anyway.

`square_resize(image, size)` is the model's view of a decoded image: its centred square crop
resized (antialiased) to the SV input size; every street-view path to the model uses it.

Refused with a one-line ValueError naming the file: more than MAX_BYTES, more than MAX_PIXELS
by the header (before any pixel is decoded), a format outside FORMATS, a truncated or corrupt
file. `read_image` raises FileNotFoundError for a missing path.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

MAX_BYTES = 20 * 2**20  # 20 MB on disk / upload (the app's upload limit, app/.streamlit)
# Width x height by the header. Covers 48 Mpx phone photos; a non-JPEG this large decodes to
# ~200 MB (4 bytes/px: RGBA, 16-bit, float; ~3x that while deep images are scaled). Pillow's own
# guard is ~89 Mpx.
MAX_PIXELS = 50_000_000
# Long side of the decoded image: ~9x the model's 224 px input, and enough to look at.
MAX_SIDE = 2048
# Raster formats read; others (EPS runs Ghostscript, PSD, ICO, ...) are refused.
FORMATS = ("JPEG", "PNG", "WEBP", "AVIF", "GIF", "TIFF", "BMP")

_DEEP_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


def _deep_to_uint8(a: np.ndarray, is_float: bool) -> np.ndarray:
    """16/32-bit integer or float [H, W] -> uint8 [H, W], by the rules in the module docstring."""
    a = a.astype(np.float32)
    if is_float:
        finite = np.isfinite(a)
        if not finite.any():
            raise ValueError("no pixel value is finite (all NaN or infinite)")
        lo, hi = float(a[finite].min()), float(a[finite].max())
        a[~finite] = lo
        if lo >= 0 and hi <= 1:
            lo, hi = 0.0, 1.0
    else:
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0 and hi <= 65535:
            lo, hi = 0.0, 255.0 if hi <= 255 else 65535.0
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.clip(np.rint((a - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def _to_srgb(im: Image.Image, icc: bytes) -> Image.Image:
    """RGB or CMYK with an ICC profile -> sRGB; unchanged when the profile is unusable."""
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception:  # no LittleCMS, a broken profile or one for another colour space
        return im


def _decode(im: Image.Image) -> np.ndarray:
    """An opened image (first frame) -> uint8 RGB [H, W, 3], long side <= MAX_SIDE."""
    icc = im.info.get("icc_profile")
    if max(im.size) > MAX_SIDE:  # JPEG: decode at 1/2, 1/4 or 1/8 size, still >= MAX_SIDE
        s = MAX_SIDE / max(im.size)
        im.draft(im.mode, (max(1, round(im.width * s)), max(1, round(im.height * s))))
    im.load()
    with contextlib.suppress(Exception):  # unreadable EXIF: shown as stored
        ImageOps.exif_transpose(im, in_place=True)
    if im.mode in _DEEP_MODES:
        im = Image.fromarray(_deep_to_uint8(np.asarray(im), im.mode == "F"))  # mode L
    elif im.mode in _ALPHA_MODES or "transparency" in im.info:
        im = im.convert("RGBA")
    elif im.mode not in ("L", "RGB", "CMYK"):
        im = im.convert("RGB")
    if max(im.size) > MAX_SIDE:
        s = MAX_SIDE / max(im.size)
        size = (max(1, round(im.width * s)), max(1, round(im.height * s)))
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if icc and im.mode in ("RGB", "CMYK"):
        im = _to_srgb(im, icc)
    if im.mode == "RGBA":
        im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Bytes of an image file -> uint8 RGB [H, W, 3] as a person sees it, long side at most
    MAX_SIDE px (see the module docstring). ValueError with one line naming `name` otherwise."""
    if not data:
        raise ValueError(f"{name} is empty")
    if len(data) > MAX_BYTES:
        raise ValueError(
            f"{name} is {len(data) / 2**20:.1f} MB; the limit is {MAX_BYTES / 2**20:.0f} MB"
        )
    Image.init()
    try:
        im = Image.open(io.BytesIO(data), formats=[f for f in FORMATS if f in Image.OPEN])
    except Image.DecompressionBombError as err:
        raise ValueError(
            f"{name} is over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} Mpx; "
            f"the limit is {MAX_PIXELS / 1e6:.0f} Mpx"
        ) from err
    except Exception as err:
        raise ValueError(
            f"{name} is not a readable image (not a {'/'.join(FORMATS)} file, or a damaged one)"
        ) from err
    with im:
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise ValueError(
                f"{name} is {w}x{h} px ({w * h / 1e6:.1f} Mpx); "
                f"the limit is {MAX_PIXELS / 1e6:.0f} Mpx"
            )
        try:
            return _decode(im)
        except Exception as err:
            why = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"{name} is not a readable image: {why}") from err


def read_image(path: str | Path) -> np.ndarray:
    """An image file -> uint8 RGB [H, W, 3] as `decode_image` returns it.
    FileNotFoundError for a missing path, ValueError (naming the path) for the rest."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"image {path} is a directory, not an image file")
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ValueError(
            f"image {path} is {size / 2**20:.1f} MB; the limit is {MAX_BYTES / 2**20:.0f} MB"
        )
    return decode_image(path.read_bytes(), f"image {path}")


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """The model's view of a street-view image: its centred square crop (the long side is
    trimmed evenly, odd pixel at the end) resized to size x size, uint8 [size, size, 3].

    Pillow's bicubic resize, which antialiases when shrinking (its kernel widens with the
    factor), with `reducing_gap=3.0` as `gair data prepare` resizes; an image already of the
    size is returned as is. Every path that feeds street views to the model (index galleries,
    the app's query images) calls this, so one photo gives one embedding whatever its size.
    ValueError unless `image` is a non-empty uint8 [H, W, 3] array and `size` a positive int."""
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or 0 in a.shape:
        raise ValueError(
            f"square_resize: image must be a non-empty uint8 [H, W, 3] array, "
            f"got shape {a.shape} dtype {a.dtype}"
        )
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"square_resize: size must be a positive integer, got {size!r}")
    h, w = a.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = np.ascontiguousarray(a[top : top + side, left : left + side])
    if side == size:
        return crop
    im = Image.fromarray(crop).resize(
        (int(size), int(size)), Image.Resampling.BICUBIC, reducing_gap=3.0
    )
    return np.asarray(im, dtype=np.uint8)
