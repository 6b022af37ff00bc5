"""Label sets: positive and negative examples for "find more places like these" (issue 16).

An example is a clicked point, an index cell, a gallery street view or an uploaded street-view
photo. Its vector is an L2-normalised embedding [E] float32 in the shared space: a point's INR
embedding (`Embedder.point`), a cell's stored vector (`GridIndex.cell_vectors`), a street
view's SV embedding (`GridIndex.sv_vectors`, or `Embedder.street_view` for an upload).

On disk a label set is GeoJSON: a FeatureCollection of Point features (lon, lat, WGS84) whose
property `label` is `positive` or `negative`; optional properties: `kind` (point, cell,
streetview, upload), `cell_id`, `sv_id`, `name`, `checkpoint` (the SHA-256 of the weights the
example was embedded with) and, for uploads only, `embedding` (the photo itself is not kept,
so its vector is; an upload has no location, so its geometry is null). The collection's `name`
member names the set.

Loading against an index (`embed_labelset`): points, cells and gallery views are (re)embedded
with the index's checkpoint from their coordinates / ids, whatever checkpoint they came from;
an upload is kept only when it was embedded with the index's checkpoint, and refused
otherwise. Every bad input raises ValueError naming the feature and the bad value.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from gair.atomic import write_text

LABELS = ("positive", "negative")
KINDS = ("point", "cell", "streetview", "upload")
MAX_LABELSET_BYTES = 5 * 1024 * 1024  # a GeoJSON upload over this is refused
MAX_EXAMPLES = 5000
MAX_NAME = 80


@dataclass(frozen=True)
class Example:
    """One labelled example.

    label: "positive" | "negative"; kind: one of KINDS; lat/lon: degrees (None for an upload);
    cell_id / sv_id: the index cell or gallery view it is; name: an upload's file name;
    checkpoint: SHA-256 of the weights `vector` was computed with (None: not embedded yet);
    vector: embedding [E] float32, L2-normalised, or None until `embed_labelset`.
    """

    label: str
    kind: str
    lat: float | None = None
    lon: float | None = None
    cell_id: str | None = None
    sv_id: str | None = None
    name: str | None = None
    checkpoint: str | None = None
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        """A short human description, e.g. "cell 8428309ffffffff" or "point 48.850, 2.350"."""
        if self.kind == "cell":
            return f"cell {self.cell_id}"
        if self.kind == "streetview":
            return f"street view {self.sv_id}"
        if self.kind == "upload":
            return f"uploaded photo {self.name or ''}".strip()
        return f"point {self.lat:.3f}, {self.lon:.3f}"


@dataclass(frozen=True)
class LabelSet:
    """A named, ordered, immutable collection of examples (order = the order they were added,
    which the learning curve follows). Every edit returns a new set."""

    name: str = "labels"
    examples: tuple[Example, ...] = ()

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def n_positive(self) -> int:
        return sum(e.label == "positive" for e in self.examples)

    @property
    def n_negative(self) -> int:
        return sum(e.label == "negative" for e in self.examples)

    def add(self, example: Example) -> LabelSet:
        """The set with `example` appended (an example equal to one already in it, i.e. the
        same place or view, replaces it: its label may have changed)."""
        check_label(example.label)
        kept = tuple(e for e in self.examples if not _same_place(e, example))
        if len(kept) >= MAX_EXAMPLES:
            raise ValueError(f"a label set holds at most {MAX_EXAMPLES} examples")
        return replace(self, examples=(*kept, example))

    def remove(self, i: int) -> LabelSet:
        """The set without example `i` (0-based)."""
        if not 0 <= int(i) < len(self.examples):
            raise ValueError(f"no example #{i} in a set of {len(self.examples)}")
        return replace(self, examples=self.examples[: int(i)] + self.examples[int(i) + 1 :])

    def renamed(self, name: str) -> LabelSet:
        return replace(self, name=check_name(name))

    def labels(self) -> np.ndarray:
        """1 for positives, 0 for negatives: [n] int8, in order."""
        return np.array([e.label == "positive" for e in self.examples], np.int8)

    def vectors(self) -> np.ndarray:
        """Embeddings [n, E] float32 (ValueError if the set is not embedded)."""
        missing = [i for i, e in enumerate(self.examples) if e.vector is None]
        if missing:
            raise ValueError(f"examples {missing[:5]} are not embedded yet (embed_labelset)")
        if not self.examples:
            return np.zeros((0, 0), np.float32)
        return np.stack([np.asarray(e.vector, np.float32) for e in self.examples])

    def key(self) -> str:
        """A digest of the content (labels, places, vectors): equal sets, equal keys."""
        h = hashlib.sha256(self.name.encode())
        for e in self.examples:
            h.update(repr((e.label, e.kind, e.lat, e.lon, e.cell_id, e.sv_id, e.name)).encode())
            h.update(b"-" if e.vector is None else np.asarray(e.vector, np.float32).tobytes())
        return h.hexdigest()[:24]

    def frame(self) -> pd.DataFrame:
        """One row per example: #, label, kind, what, lat, lon (for tables)."""
        return pd.DataFrame(
            [
                {
                    "#": i + 1,
                    "label": e.label,
                    "kind": e.kind,
                    "what": e.describe(),
                    "lat": e.lat,
                    "lon": e.lon,
                }
                for i, e in enumerate(self.examples)
            ],
            columns=["#", "label", "kind", "what", "lat", "lon"],
        )


def _same_place(a: Example, b: Example) -> bool:
    if a.kind != b.kind:
        return False
    if a.kind == "cell":
        return a.cell_id == b.cell_id
    if a.kind == "streetview":
        return a.sv_id == b.sv_id
    if a.kind == "upload":
        return (
            a.vector is not None
            and b.vector is not None
            and np.array_equal(np.asarray(a.vector), np.asarray(b.vector))
        )
    return a.lat == b.lat and a.lon == b.lon


def check_label(label) -> str:
    text = str(label).strip().lower() if isinstance(label, str) else label
    if text not in LABELS:
        raise ValueError(f"label must be 'positive' or 'negative', got {label!r}")
    return text


def check_name(name) -> str:
    """A set name: 1..80 printable characters."""
    text = str(name).strip() if isinstance(name, str) else ""
    if not text or len(text) > MAX_NAME or not text.isprintable():
        raise ValueError(
            f"a label set name must be 1 to {MAX_NAME} printable characters, got {name!r}"
        )
    return text


# --------------------------------------------------------------------------- GeoJSON


def to_geojson(labelset: LabelSet) -> dict:
    """The set as a GeoJSON FeatureCollection (dict; see the module docstring)."""
    features = []
    for e in labelset.examples:
        props: dict = {"label": e.label, "kind": e.kind}
        for key in ("cell_id", "sv_id", "name", "checkpoint"):
            if getattr(e, key) is not None:
                props[key] = getattr(e, key)
        if e.kind == "upload" and e.vector is not None:
            props["embedding"] = [round(float(v), 7) for v in np.asarray(e.vector, np.float32)]
        geometry = (
            None
            if e.lat is None
            else {"type": "Point", "coordinates": [round(e.lon, 7), round(e.lat, 7)]}
        )
        features.append({"type": "Feature", "geometry": geometry, "properties": props})
    return {"type": "FeatureCollection", "name": labelset.name, "features": features}


def to_geojson_bytes(labelset: LabelSet) -> bytes:
    return json.dumps(to_geojson(labelset)).encode("utf-8")


def write_labelset(path: str | os.PathLike, labelset: LabelSet) -> Path:
    """Write the set as GeoJSON, atomically."""
    write_text(path, json.dumps(to_geojson(labelset)) + "\n")
    return Path(path)


def read_labelset(path: str | os.PathLike, max_bytes: int = MAX_LABELSET_BYTES) -> LabelSet:
    """Read a GeoJSON label set file (not embedded: see `embed_labelset`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label set {path} does not exist")
    size = path.stat().st_size
    _check_size(size, max_bytes, str(path))
    return parse_labelset(path.read_bytes(), name=path.stem, max_bytes=max_bytes)


def _check_size(size: int, max_bytes: int, what: str) -> None:
    if size > max_bytes:
        raise ValueError(
            f"{what} is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit for a label set"
        )


def parse_labelset(
    data: bytes | str, name: str = "labels", max_bytes: int = MAX_LABELSET_BYTES
) -> LabelSet:
    """GeoJSON bytes -> LabelSet (vectors only for uploads). ValueError naming the problem:
    too large, not JSON, not a FeatureCollection, no features, or a bad feature."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    _check_size(len(raw), max_bytes, f"{name!r}")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{name!r} is not UTF-8 text, so not GeoJSON") from err
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{name!r} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from err
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        got = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"{name!r} must be a GeoJSON FeatureCollection, got type {got!r}")
    feats = doc.get("features")
    if not isinstance(feats, list):
        raise ValueError(f"{name!r}: 'features' must be a list, got {type(feats).__name__}")
    if not feats:
        raise ValueError(f"{name!r} has no features: a label set needs at least one example")
    if len(feats) > MAX_EXAMPLES:
        raise ValueError(f"{name!r} has {len(feats)} features, over the {MAX_EXAMPLES} limit")
    set_name = doc.get("name") if isinstance(doc.get("name"), str) and doc["name"].strip() else name
    examples = tuple(_feature(f, i) for i, f in enumerate(feats))
    out = LabelSet(name=check_name(str(set_name)[:MAX_NAME]))
    for e in examples:
        out = out.add(e)
    return out


def _feature(f, i: int) -> Example:
    where = f"feature #{i}"
    if not isinstance(f, dict) or f.get("type") != "Feature":
        raise ValueError(f"{where} is not a GeoJSON Feature")
    props = f.get("properties") or {}
    if not isinstance(props, dict):
        raise ValueError(f"{where}: properties must be an object")
    if "label" not in props:
        raise ValueError(f"{where} has no 'label' property (positive or negative)")
    try:
        label = check_label(props["label"])
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    cell_id = _opt_str(props, "cell_id", where)
    sv_id = _opt_str(props, "sv_id", where)
    checkpoint = _opt_str(props, "checkpoint", where)
    fname = _opt_str(props, "name", where)
    embedding = props.get("embedding")
    kind = props.get("kind")
    if kind is None:
        kind = (
            "cell"
            if cell_id
            else "streetview"
            if sv_id
            else "upload"
            if embedding is not None
            else "point"
        )
    if kind not in KINDS:
        raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "cell" and not cell_id:
        raise ValueError(f"{where}: a cell example needs a 'cell_id'")
    if kind == "streetview" and not sv_id:
        raise ValueError(f"{where}: a street-view example needs an 'sv_id'")
    lat = lon = None
    geom = f.get("geometry")
    if geom is None:
        if kind != "upload":
            raise ValueError(f"{where} has no geometry (only an uploaded photo may have none)")
    else:
        lat, lon = _point(geom, where)
    vector = None
    if kind == "upload":
        vector = _embedding(embedding, where)
    return Example(label, kind, lat, lon, cell_id, sv_id, fname, checkpoint, vector)


def _opt_str(props: dict, key: str, where: str) -> str | None:
    value = props.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError(f"{where}: {key} must be a string, got {value!r}")
    return str(value)


def _point(geom, where: str) -> tuple[float, float]:
    if not isinstance(geom, dict) or geom.get("type") != "Point":
        got = geom.get("type") if isinstance(geom, dict) else geom
        raise ValueError(f"{where}: geometry must be a Point, got {got!r}")
    coords = geom.get("coordinates")
    if not isinstance(coords, list | tuple) or len(coords) < 2:
        raise ValueError(f"{where}: Point coordinates must be [lon, lat], got {coords!r}")
    try:
        lon, lat = float(coords[0]), float(coords[1])
    except (TypeError, ValueError):
        raise ValueError(f"{where}: coordinates must be numbers, got {coords!r}") from None
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        raise ValueError(
            f"{where}: coordinates [lon, lat] = {coords!r} are outside [-180, 180] x [-90, 90]"
        )
    return lat, lon


def _embedding(value, where: str) -> np.ndarray:
    if value is None:
        raise ValueError(
            f"{where}: an uploaded photo needs its 'embedding' (the photo itself is not stored)"
        )
    try:
        vec = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: embedding must be a list of numbers") from None
    if vec.ndim != 1 or not len(vec) or not np.isfinite(vec).all():
        raise ValueError(f"{where}: embedding must be a non-empty list of finite numbers")
    norm = float(np.linalg.norm(vec))
    if norm == 0:
        raise ValueError(f"{where}: embedding is all zeros")
    return (vec / norm).astype(np.float32)


# --------------------------------------------------------------------------- embedding


def cell_positions(index, cell_ids: Iterable[str]) -> np.ndarray:
    """Row positions [n] int64 of cell ids in `index.cells` (-1 where unknown)."""
    return index.cell_rows(cell_ids)


def _refuse_unknown(ids: list, pos: np.ndarray, what: str) -> None:
    """ValueError naming the ids whose position is -1 (at most five of them)."""
    bad = [i for i, p in zip(ids, pos) if p < 0]
    if bad:
        raise ValueError(
            f"{len(bad)} {what}: {', '.join(map(repr, bad[:5]))}{' ...' if len(bad) > 5 else ''}"
        )


def index_checkpoint(index) -> str:
    return str(index.manifest["checkpoint_hash"])


def embed_labelset(
    index,
    labelset: LabelSet,
    embed_points: Callable[[np.ndarray], np.ndarray] | None = None,
) -> LabelSet:
    """The set with every example's vector from `index`'s checkpoint.

    Cells take their stored vector (by cell id), gallery views their stored SV embedding (by
    sv_id), points the INR embedding of their coordinates (`embed_points(latlon [n, 2]) ->
    [n, E]`, default `index.embedder.point`; examples already embedded with this checkpoint
    are kept as they are). Uploads keep their vector only when it was computed with this
    checkpoint. ValueError naming the examples otherwise (unknown cell or view ids, uploads
    from another checkpoint, wrong dimension)."""
    ckpt = index_checkpoint(index)
    dim = int(index.cell_vectors.shape[1])
    ex = list(labelset.examples)
    cells = [i for i, e in enumerate(ex) if e.kind == "cell"]
    if cells:
        ids = [ex[i].cell_id for i in cells]
        pos = index.cell_rows(ids)
        grid = (index.manifest.get("grid") or {}).get("spec", "its grid")
        _refuse_unknown(ids, pos, f"cell id(s) are not in this index ({grid})")
        vecs = np.asarray(index.cell_vectors[pos], np.float32)
        for i, p, v in zip(cells, pos, vecs):
            row = index.cells.iloc[int(p)]
            lat, lon = float(row["lat"]), float(row["lon"])
            ex[i] = replace(ex[i], lat=lat, lon=lon, checkpoint=ckpt, vector=v)
    views = [i for i, e in enumerate(ex) if e.kind == "streetview"]
    if views:
        ids = [ex[i].sv_id for i in views]
        pos = index.sv_rows(ids)
        _refuse_unknown(ids, pos, "street view(s) are not in this index's gallery")
        for i, p in zip(views, pos):
            row = index.streetviews.iloc[int(p)]
            ex[i] = replace(
                ex[i],
                lat=float(row["lat"]),
                lon=float(row["lon"]),
                checkpoint=ckpt,
                vector=np.asarray(index.sv_vectors[int(p)], np.float32),
            )
    uploads = [i for i, e in enumerate(ex) if e.kind == "upload"]
    foreign = [i for i in uploads if ex[i].checkpoint != ckpt]
    if foreign:
        other = {str(ex[i].checkpoint)[:12] for i in foreign}
        raise ValueError(
            f"{len(foreign)} uploaded photo(s) (examples {', '.join(f'#{i + 1}' for i in foreign[:5])}) "
            f"were embedded with checkpoint {', '.join(sorted(other))}..., not this index's "
            f"{ckpt[:12]}...: a photo cannot be re-embedded from the file; remove them or open "
            "the index built with that checkpoint"
        )
    points = [
        i
        for i, e in enumerate(ex)
        if e.kind == "point" and (e.vector is None or e.checkpoint != ckpt)
    ]
    if points:
        latlon = np.array([[ex[i].lat, ex[i].lon] for i in points], np.float64)
        embed = embed_points or index.embedder.point
        vecs = np.asarray(embed(latlon), np.float32)
        for i, v in zip(points, vecs):
            ex[i] = replace(ex[i], checkpoint=ckpt, vector=v)
    for i, e in enumerate(ex):
        if e.vector is None or np.asarray(e.vector).shape != (dim,):
            shape = None if e.vector is None else np.asarray(e.vector).shape
            raise ValueError(
                f"example #{i + 1} ({e.describe()}) has an embedding of shape {shape}, "
                f"this index's are ({dim},)"
            )
    return replace(labelset, examples=tuple(ex))
