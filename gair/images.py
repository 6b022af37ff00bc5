"""Safe image reading for every boundary that accepts user images (CLI, app, data prepare)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_BYTES = 20 * 1024 * 1024  # 20 MB on disk / upload
MAX_PIXELS = 40_000_000  # decompression-bomb guard (PIL's own limit is ~89 Mpx)


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Bytes of a JPEG/PNG/... -> uint8 RGB [H, W, 3]. ValueError for anything else."""
    if len(data) > MAX_BYTES:
        raise ValueError(
            f"{name} is {len(data) / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB"
        )
    if not data:
        raise ValueError(f"{name} is empty")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ValueError(
                    f"{name} is {im.width}x{im.height} px; the limit is {MAX_PIXELS / 1e6:.0f} Mpx"
                )
            im.draft("RGB", (1024, 1024))  # JPEG: decode at reduced size when much larger
            rgb = im.convert("RGB")
            rgb.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise ValueError(
            f"{name} is not a readable image ({err.__class__.__name__}: {err})"
        ) from err
    return np.asarray(rgb, dtype=np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ValueError(
            f"image {path} is {size / 1e6:.1f} MB; the limit is {MAX_BYTES / 1e6:.0f} MB"
        )
    return decode_image(path.read_bytes(), str(path))
