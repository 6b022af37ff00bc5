"""The CSV side of `gair data prepare`: reading the table, decoding the street-view images,
and the skip reasons and report of bad rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

IMAGE_COLUMNS = ("image", "image_path", "path", "file", "filename", "sv_image", "img")
N_EXAMPLES = 5

# skip reasons (report keys)
BAD_COORDS = "bad_coordinates"
MISSING_IMAGE = "missing_image"
CORRUPT_IMAGE = "corrupt_image"
OUTSIDE = "outside_rasters"
BAND_COUNT = "wrong_band_count"
RASTER_ERROR = "raster_read_error"
LOW_COVERAGE = "insufficient_raster_coverage"
DUPLICATE_ID = "duplicate_id"


def read_table(csv: Path) -> tuple[pd.DataFrame, str]:
    """The CSV as strings and the name of its image path column; ValueError when it cannot be
    read or lacks the id, lat, lon or image path (one of IMAGE_COLUMNS, any case) columns."""
    import pandas as pd

    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"cannot read CSV {csv}: {err}") from err
    cols = {c.strip().lower(): c for c in table.columns}
    image_col = next((cols[c] for c in IMAGE_COLUMNS if c in cols), None)
    missing = [c for c in ("id", "lat", "lon") if c not in cols]
    if missing or image_col is None:
        raise ValueError(
            f"CSV {csv} needs columns id, lat, lon and an image path column (one of "
            f"{', '.join(IMAGE_COLUMNS)}); it has {list(table.columns)}"
        )
    return table, image_col


def read_image(path: Path, size: int) -> np.ndarray:
    """Decode, centre-crop to a square, resize to size x size: uint8 [size, size, 3]."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        if s < 2:
            raise ValueError(f"image of {w}x{h} px")
        left, top = (w - s) // 2, (h - s) // 2
        im = im.crop((left, top, left + s, top + s)).resize(
            (size, size), Image.Resampling.BICUBIC, reducing_gap=3.0
        )
        return np.asarray(im, dtype=np.uint8)


@dataclass
class _Report:
    rows: int = 0
    kept: int = 0
    skipped: dict = field(default_factory=dict)
    examples: dict = field(default_factory=dict)

    def skip(self, reason: str, row: int, ident, detail: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < N_EXAMPLES:
            ex.append({"row": row, "id": None if ident is None else str(ident), "detail": detail})
