"""The street-view gallery of an index.

Two kinds, each embedded with `Embedder.street_view`:
- rendered: ground views rendered at the demo world's street-view locations (`embed_gallery`);
- images: real photographs, from a Global Streetscapes-style CSV (`gallery_from_csv`) or the
  street views of `gair data prepare` triples (`gallery_from_prepared`), embedded by
  `embed_image_gallery`, which also writes a JPEG thumbnail of each view into the index dir.

Every image goes to the model through `gair.images.square_resize` (centred square crop,
antialiased resize to the SV input size), whatever its source or size. A gallery may be empty:
an index without street views is valid.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gair.atomic import atomic_dir
from gair.data.rows import (
    BAD_COORDS,
    CORRUPT_IMAGE,
    DUPLICATE_ID,
    IMAGE_COLUMNS,
    MISSING_IMAGE,
    N_EXAMPLES,
    _Report,
)
from gair.images import read_image, square_resize
from gair.spread import spread_choice

log = logging.getLogger(__name__)

GALLERY_SEED = 20260101
ID_COLUMNS = ("id", "sv_id", "uuid")  # optional; without one a view's id is its image path
MISSING_ID = "missing_id"
THUMB_DIR = "streetviews"  # thumbnails: <index dir>/streetviews/<safe id>.jpg
THUMB_PX = 256  # long side of a thumbnail (aspect kept, never enlarged)
THUMB_QUALITY = 85
# helper columns of the frames given to `embed_image_gallery`, not stored in the index
INTERNAL_COLUMNS = ("image_file", "csv_row", "_row")


# -- rendered (demo world) ---------------------------------------------------------------------
def gallery_views(world, size: int) -> pd.DataFrame:
    """A deterministic subset of the world's street-view locations, spread over the land they
    cover (`gair.spread.spread_choice`: each H3 resolution-2 cell weighs the same, so the
    crowded regions do not fill the gallery), each with a heading and a render seed: columns
    sv_id, lat, lon, split, heading_deg, seed."""
    table = world.streetviews
    frame = pd.DataFrame(
        {
            "sv_id": np.asarray(table["id"]),
            "lat": np.asarray(table["lat"]),
            "lon": np.asarray(table["lon"]),
        }
    )
    frame["split"] = np.asarray(table["split"]) if "split" in table else "unknown"
    rng = np.random.default_rng(GALLERY_SEED)
    if size < len(frame):
        rows = spread_choice(frame[["lat", "lon"]].to_numpy(np.float64), size, rng)
        frame = frame.iloc[rows].reset_index(drop=True)
    frame["heading_deg"] = rng.uniform(0, 360, len(frame)).round(1)
    frame["seed"] = np.arange(len(frame), dtype=np.int64) + GALLERY_SEED
    return frame


def render_views(world, frame: pd.DataFrame, size: int) -> np.ndarray:
    """Rendered views of gallery rows, uint8 [N, size, size, 3] (batched renderer)."""
    latlon = frame[["lat", "lon"]].to_numpy(np.float64)
    return world.render_views(
        latlon, frame["heading_deg"].to_numpy(), frame["seed"].to_numpy(), size=size
    )


def embed_gallery(embedder, world, size: int, progress: bool = True, batch: int = 256):
    """Gallery table and its SV embeddings [N, E] (float32, L2-normalised)."""
    frame = gallery_views(world, size)
    px = embedder.config["sv"]["img_size"]
    chunks = []
    for start in tqdm(
        range(0, len(frame), batch), desc="embedding street views", disable=not progress
    ):
        part = frame.iloc[start : start + batch]
        chunks.append(embedder.street_view(render_views(world, part, px)))
    vecs = np.concatenate(chunks) if chunks else np.zeros((0, embedder.dim), np.float32)
    frame["source"] = "rendered"
    return frame, vecs


# -- real images: a CSV of photographs -----------------------------------------------------
def gallery_from_csv(
    csv_path: str | Path,
    images_root: str | Path | None = None,
    decode: bool = True,
    limit: int | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Street views listed in a CSV with columns lat, lon, an image path (one of IMAGE_COLUMNS,
    any case; relative to `images_root`, default the CSV's folder) and optionally an id (one of
    ID_COLUMNS; else the id is the image path as written).

    Returns (frame, report). frame: sv_id (str), lat, lon (float64), image_file (the image's
    path), csv_row (0-based data row); load an image with `load_csv_image(row)`. Bad rows
    are skipped, counted by reason in report["skipped"] with up to N_EXAMPLES examples each in
    report["examples"]: bad_coordinates (missing, NaN, out of range), missing_id (an empty id),
    duplicate_id (an id of an earlier kept row), missing_image, corrupt_image (not decodable by
    `gair.images.read_image`; checked only with `decode`, else found when embedding). With
    `limit`, only the first `limit` usable rows are kept; later rows are not read
    (report["not_read"]). No usable row gives an empty frame, not an error.

    FileNotFoundError when the CSV or `images_root` is missing; ValueError when the CSV cannot
    be read or lacks those columns (naming the columns it has).
    """
    csv_path = Path(csv_path)
    root = Path(images_root) if images_root is not None else csv_path.parent
    if not csv_path.is_file():
        raise FileNotFoundError(f"gallery CSV not found: {csv_path}")
    if not root.is_dir():
        raise FileNotFoundError(f"gallery images folder not found: {root}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except Exception as err:  # noqa: BLE001 - any unreadable CSV is reported the same way
        raise ValueError(f"cannot read gallery CSV {csv_path}: {_first_line(err)}") from err
    cols = {str(c).strip().lower(): c for c in table.columns}
    lat_col, lon_col, path_col, id_col = (
        next((cols[c] for c in names if c in cols), None)
        for names in (("lat",), ("lon",), IMAGE_COLUMNS, ID_COLUMNS)
    )
    if lat_col is None or lon_col is None or path_col is None:
        raise ValueError(
            f"gallery CSV {csv_path} needs columns lat, lon and an image path column (one of "
            f"{', '.join(IMAGE_COLUMNS)}); it has {[str(c) for c in table.columns]}"
        )
    report = _Report(rows=len(table))
    seen: set[str] = set()
    kept: list[dict] = []
    lats, lons = table[lat_col].tolist(), table[lon_col].tolist()
    rels = table[path_col].tolist()
    ids = table[id_col].tolist() if id_col is not None else None
    n_read = 0
    for row_no, (lat_s, lon_s, rel) in enumerate(zip(lats, lons, rels)):
        if limit is not None and len(kept) >= limit:
            break
        n_read += 1
        rel = str(rel).strip()
        ident = str(ids[row_no]).strip() if ids is not None else rel
        try:
            lat, lon = float(lat_s), float(lon_s)
            ok = math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180
        except (TypeError, ValueError):
            ok = False
        if not ok:
            report.skip(BAD_COORDS, row_no, ident, f"lat={lat_s!r}, lon={lon_s!r}")
            continue
        if not ident:  # an empty id, or no id column and an empty path
            why = MISSING_ID if id_col is not None else MISSING_IMAGE
            report.skip(why, row_no, None, f"empty {id_col or path_col!r}")
            continue
        if ident in seen:
            report.skip(DUPLICATE_ID, row_no, ident, "id of an earlier row")
            continue
        path = root / rel
        if not rel or not path.is_file():
            report.skip(MISSING_IMAGE, row_no, ident, f"{path} not found")
            continue
        if decode:
            try:
                read_image(path)
            except Exception as err:  # noqa: BLE001 - any undecodable image is a bad row
                report.skip(CORRUPT_IMAGE, row_no, ident, _first_line(err))
                continue
        seen.add(ident)
        kept.append(
            {"sv_id": ident, "lat": lat, "lon": lon, "image_file": str(path), "csv_row": row_no}
        )
    frame = pd.DataFrame(kept, columns=["sv_id", "lat", "lon", "image_file", "csv_row"])
    frame = frame.astype({"sv_id": str, "lat": np.float64, "lon": np.float64, "csv_row": np.int64})
    report.kept = len(frame)
    out = {
        "csv": str(csv_path),
        "images_root": str(root),
        "rows": report.rows,
        "kept": report.kept,
        "skipped": dict(sorted(report.skipped.items())),
        "skipped_total": int(sum(report.skipped.values())),
        "examples": report.examples,
        "not_read": report.rows - n_read,
    }
    if report.skipped:
        counts = (report.kept, n_read, out["skipped"])
        log.warning("gallery CSV %s: kept %d of %d rows; skipped %s", csv_path, *counts)
    return frame, out


def load_csv_image(row) -> np.ndarray:
    """The image of a `gallery_from_csv` row (a dict or Series): uint8 [H, W, 3]."""
    return read_image(row["image_file"])


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


# -- real images: prepared triples --------------------------------------------------------
class PreparedViews:
    """The street views of prepared triples, read a shard at a time: len(), views[i] -> uint8
    [H, W, 3], and `load(row)` for a `gallery_from_prepared` row (for `embed_image_gallery`).
    Sequential reads hold one shard's views in memory."""

    def __init__(self, path: Path, shards: list[dict]):
        self.path, self.shards = path, shards
        self._starts = np.concatenate([[0], np.cumsum([s["count"] for s in shards])]).astype(int)
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, i: int) -> np.ndarray:
        n = len(self)
        if not -n <= int(i) < n:
            raise IndexError(f"view {i} out of range for {n} views")
        i = int(i) % n
        k = int(np.searchsorted(self._starts, i, side="right") - 1)
        if self._cached is None or self._cached[0] != k:
            self._cached = (k, _read_shard(self.path / self.shards[k]["file"], ("sv",))["sv"])
        return self._cached[1][i - self._starts[k]]

    def load(self, row) -> np.ndarray:
        return self[int(row["_row"])]


def _read_shard(path: Path, names: tuple[str, ...]) -> dict:
    """Tensors `names` and "ids" (from the metadata) of one prepared shard."""
    from safetensors import safe_open

    if not path.is_file():
        raise FileNotFoundError(f"prepared shard {path} is missing")
    try:
        with safe_open(str(path), framework="np") as f:
            out = {name: f.get_tensor(name) for name in names}
            out["ids"] = json.loads(f.metadata()["ids"])
    except Exception as err:  # noqa: BLE001 - a damaged shard: one line naming it
        raise ValueError(f"prepared shard {path} cannot be read ({_first_line(err)})") from err
    return out


def gallery_from_prepared(prepared_dir: str | Path) -> tuple[pd.DataFrame, PreparedViews]:
    """The street views of `gair data prepare` output: (frame, views). frame: sv_id, lat, lon,
    _row (position in `views`); views: `PreparedViews`, uint8 [H, W, 3] each (the
    prepared sv_px squares). Embed with
    `embed_image_gallery(embedder, frame, views.load, out_dir)`.

    FileNotFoundError when there is no prepared output at the path; ValueError when it is of
    another format or version, or a shard disagrees with the manifest."""
    from gair.data.shards import PREPARED_FORMAT, PREPARED_FORMAT_VERSION

    path = Path(prepared_dir)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"no prepared triples at {path} (manifest.json missing); run `gair data prepare`"
        ) from err
    except (OSError, ValueError) as err:
        raise ValueError(f"{path / 'manifest.json'} cannot be read ({_first_line(err)})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != PREPARED_FORMAT:
        raise ValueError(f"{path} is not a `gair data prepare` output")
    if manifest.get("format_version") != PREPARED_FORMAT_VERSION:
        raise ValueError(
            f"{path}: prepared format version {manifest.get('format_version')}, this code "
            f"reads {PREPARED_FORMAT_VERSION}"
        )
    shards = list(manifest.get("shards") or [])
    ids: list[str] = []
    latlon = [np.zeros((0, 2))]
    for shard in shards:
        data = _read_shard(path / shard["file"], ("latlon",))
        if not len(data["ids"]) == len(data["latlon"]) == int(shard["count"]):
            raise ValueError(
                f"prepared shard {path / shard['file']} holds {len(data['ids'])} ids and "
                f"{len(data['latlon'])} locations; the manifest says {shard['count']}"
            )
        ids += [str(i) for i in data["ids"]]
        latlon.append(np.asarray(data["latlon"], np.float64).reshape(-1, 2))
    ll = np.concatenate(latlon)
    frame = pd.DataFrame(
        {
            "sv_id": pd.Series(ids, dtype=str),
            "lat": ll[:, 0],
            "lon": ll[:, 1],
            "_row": np.arange(len(ids), dtype=np.int64),
        }
    )
    return frame, PreparedViews(path, shards)


# -- embedding real images ----------------------------------------------------------------
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def thumbnail_names(sv_ids) -> list[str]:
    """A file name (without folder) per id, distinct even on case-insensitive file systems:
    the id itself when it is a plain name (letters, digits, . _ -, starting with a letter or
    digit, at most 100 characters), else a slug of it plus a hash of the id."""
    names, taken = [], set()
    for sv_id in sv_ids:
        sv_id = str(sv_id)
        stem = sv_id
        if _SAFE.search(stem) or not stem[:1].isalnum() or len(stem) > 100 or stem.lower() in taken:
            slug = _SAFE.sub("_", sv_id).strip("._-")[:64] or "view"
            stem = f"{slug}-{hashlib.sha256(sv_id.encode('utf-8')).hexdigest()[:12]}"
        taken.add(stem.lower())
        names.append(f"{stem}.jpg")
    return names


def _thumbnail_jpeg(image: np.ndarray) -> bytes:
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image))
    im.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=THUMB_QUALITY)
    return buf.getvalue()


def embed_image_gallery(
    embedder,
    frame: pd.DataFrame,
    load_image,
    out_dir: str | Path,
    progress: bool = True,
    batch: int = 64,
    report: dict | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Embed a gallery of real images and write their thumbnails.

    `load_image(row)` (row: a dict of the frame's columns) -> uint8 [H, W, 3]. Each image is
    cropped and resized by `square_resize` to the model's SV input size and embedded with
    `embedder.street_view`; its thumbnail (JPEG, long side <= THUMB_PX, aspect kept) goes to
    out_dir/streetviews/<safe id>.jpg. The folder is written beside its place and renamed
    into it when complete (`gair.atomic.atomic_dir`, replacing any older one), so no thumbnail
    is ever seen half-written; it is not created for an empty frame.

    Returns (frame, vecs): the views that loaded, with `path` (thumbnail, relative to out_dir)
    and source "images" added and INTERNAL_COLUMNS dropped; vecs float32 [N, E],
    L2-normalised. Images that fail to load or are not RGB images are skipped (missing_image /
    corrupt_image) and, when `report` (a `gallery_from_csv` report) is given, counted in it.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    missing = [c for c in ("sv_id", "lat", "lon") if c not in frame]
    if missing:
        raise ValueError(f"a gallery frame needs columns sv_id, lat, lon; it lacks {missing}")
    px = int(embedder.config["sv"]["img_size"])
    rows = frame.reset_index(drop=True)
    names = thumbnail_names(rows["sv_id"])
    keep: list[int] = []
    chunks: list[np.ndarray] = []
    skipped: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_dir(Path(out_dir) / THUMB_DIR)) if len(rows) else None
        steps = range(0, len(rows), batch)
        for start in tqdm(steps, desc="embedding street views", disable=not progress):
            inputs = []
            for i, row in enumerate(rows.iloc[start : start + batch].to_dict("records"), start):
                try:
                    image = load_image(row)
                    view, thumb = square_resize(image, px), _thumbnail_jpeg(image)
                except Exception as err:  # noqa: BLE001 - a bad image skips its view
                    why = MISSING_IMAGE if isinstance(err, FileNotFoundError) else CORRUPT_IMAGE
                    skipped[why] = skipped.get(why, 0) + 1
                    _add_skip(report, why, row.get("csv_row", i), row["sv_id"], err)
                    continue
                (tmp / names[i]).write_bytes(thumb)  # inside the temp folder: see atomic_dir
                inputs.append(view)
                keep.append(i)
            if inputs:
                chunks.append(embedder.street_view(np.stack(inputs), batch_size=batch))
    if skipped:
        log.warning(
            "gallery: skipped %d views (image failed to load): %s", len(rows) - len(keep), skipped
        )
    out = rows.iloc[keep].reset_index(drop=True)
    out["path"] = [f"{THUMB_DIR}/{names[i]}" for i in keep]
    out["source"] = "images"
    front = ["sv_id", "lat", "lon", "path", "source"]
    out = out[front + [c for c in out if c not in front and c not in INTERNAL_COLUMNS]]
    vecs = np.concatenate(chunks) if chunks else np.zeros((0, embedder.dim), np.float32)
    return out, vecs.astype(np.float32, copy=False)


def _add_skip(report: dict | None, reason: str, row_no, ident, err: Exception) -> None:
    if report is None:
        return
    report["skipped"][reason] = report["skipped"].get(reason, 0) + 1
    report["skipped"] = dict(sorted(report["skipped"].items()))
    report["skipped_total"] = int(report.get("skipped_total", 0)) + 1
    report["kept"] = int(report.get("kept", 0)) - 1
    ex = report["examples"].setdefault(reason, [])
    if len(ex) < N_EXAMPLES:
        ex.append({"row": int(row_no), "id": str(ident), "detail": _first_line(err)})
