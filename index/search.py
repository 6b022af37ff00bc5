"""Open an index dir and answer queries: nearest places (cells) and nearest street views for a
point, a street-view image or a cell. The app and `gair index query` both call this."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gair import geo
from index import integrity, vectors
from index.integrity import IndexDamagedError, recorded_path  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from gair.embed import Embedder

FORMAT_VERSION = (
    3  # 2: file sizes/digests, id-order digests, relative paths; 3: float16 + int8 codes
)
MAX_K = 1000  # most neighbours one query returns (the CLI's JSON stays small)


class IndexMismatchError(ValueError):
    """The index was built with another checkpoint than the one given."""


def check_k(k) -> int:
    """A neighbour count: an integer in [1, MAX_K] (ValueError naming it otherwise)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return int(k)


def _require(manifest: dict, path: Path, key: str | tuple, kind: type):
    """manifest[key] (dotted, or a tuple of keys), checked to be a `kind`; ValueError naming
    the key otherwise."""
    parts = tuple(key.split(".")) if isinstance(key, str) else key
    key = ".".join(parts)
    value = manifest
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            raise ValueError(f"{path} lacks {key!r}: not a complete GAIR index manifest")
        value = value[part]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ValueError(f"{path}: {key!r} should be {kind.__name__}, got {value!r}")
    return value


def read_manifest(index_dir: str | Path) -> dict:
    """Parse and check an index's manifest.json. FileNotFoundError when there is none,
    ValueError (naming the key) when it is not a manifest this code reads."""
    path = Path(index_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no index at {index_dir} (manifest.json missing): build one with `gair index build`"
        )
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} holds a {type(manifest).__name__}, not a manifest object")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"{path}: format_version {version!r} is not an integer")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: index format_version {version}, this code reads {FORMAT_VERSION}"
            + ("; rebuild it with `gair index build`" if version < FORMAT_VERSION else "")
        )
    for key, kind in (
        ("checkpoint_hash", str),
        ("checkpoint", str),
        ("grid.spec", str),
        ("dim", int),
        ("files", dict),
    ):
        _require(manifest, path, key, kind)
    if manifest.get("source") is None or manifest.get("world") is not None:
        _require(manifest, path, "world.path", str)  # a demo-world index
    if manifest.get("source") is not None:
        _require(manifest, path, "source.kind", str)
        _require(manifest, path, "source.path", list)
    for table in integrity.TABLES:
        _require(manifest, path, f"{table}.count", int)
        _require(manifest, path, f"{table}.ids_sha256", str)
    for name in integrity.FILES:
        _require(manifest, path, ("files", name, "bytes"), int)
        _require(manifest, path, ("files", name, "sha256"), str)
    return manifest


class GridIndex:
    """A built index plus the Embedder of its checkpoint (or a `gair.deferred.DeferredEmbedder`
    standing in for it). Thread-safe for concurrent queries.

    Opening checks the index against its manifest (`index.integrity.check_on_open`: sizes,
    counts, id order, FAISS agreement) and raises `IndexDamagedError` on any mismatch;
    `verify()` also hashes every file."""

    def __init__(self, index_dir: str | Path, embedder: Embedder):
        self.dir = Path(index_dir)
        self.manifest = read_manifest(self.dir)
        if embedder.checkpoint_hash != self.manifest["checkpoint_hash"]:
            raise IndexMismatchError(
                f"index {self.dir} was built with checkpoint {self.manifest['checkpoint_hash'][:12]}..., "
                f"but {embedder.run_dir} is {embedder.checkpoint_hash[:12]}...: rebuild the index "
                "with this checkpoint or open it with the one it was built with"
            )
        self.embedder = embedder
        integrity.check_sizes(self.dir, self.manifest)
        # the tables without their point geometry (lat/lon columns hold it): at millions of
        # cells the WKB objects alone would take hundreds of MB
        self.cells = _read_table(self.dir / "cells.parquet")
        self.streetviews = _read_table(self.dir / "streetviews.parquet")
        # read on demand, nothing kept mapped (`vectors.StoredVectors`)
        self.cell_vectors = vectors.StoredVectors(self.dir / "cells.npy")
        self.cell_location = vectors.StoredVectors(self.dir / "cells_location.npy")
        self.sv_vectors = vectors.StoredVectors(self.dir / "streetviews.npy")
        vectors.configure_for_single_queries()
        self.cell_index = vectors.read_index(self.dir / "cells.faiss")
        self.sv_index = vectors.read_index(self.dir / "streetviews.faiss")
        for name, idx in (("cells", self.cell_index), ("streetviews", self.sv_index)):
            nprobe = self.manifest[name].get("nprobe")
            if nprobe:
                vectors.set_search_params(idx, nprobe=nprobe, ef_search=max(64, 2 * nprobe))
        self.cell_searcher = vectors.Searcher(
            self.cell_index, self.cell_vectors, self.manifest["cells"].get("rerank", 0)
        )
        self.sv_searcher = vectors.Searcher(
            self.sv_index, self.sv_vectors, self.manifest["streetviews"].get("rerank", 0)
        )
        integrity.check_on_open(
            self.dir,
            self.manifest,
            {"cells": self.cells, "streetviews": self.streetviews},
            {
                "cells": [
                    ("cells.npy", self.cell_vectors),
                    ("cells_location.npy", self.cell_location),
                ],
                "streetviews": [("streetviews.npy", self.sv_vectors)],
            },
            {"cells": self.cell_index, "streetviews": self.sv_index},
        )
        self._ids: dict[str, pd.Index] = {}  # id -> row lookups, built on first use
        self._lock = vectors.SearchLock()
        self._embed_lock = threading.Lock()  # torch modules: one query embeds at a time
        self._cell_latlon = self._cell_location = None  # tensors for locate_view, on first use

    @classmethod
    def open(
        cls,
        index_dir: str | Path,
        checkpoint: str | Path | None = None,
        world=None,
    ) -> GridIndex:
        """Open with the checkpoint and RS source recorded in the manifest, or the ones given
        (`world`: an RS source object or a path: a demo world dir, rasters, prepared triples)."""
        from gair.embed import Embedder
        from index.sources import open_index_source

        manifest = read_manifest(index_dir)
        run_dir = checkpoint or recorded_path(index_dir, manifest, "checkpoint")
        source = open_index_source(index_dir, manifest, override=world, run_dir=run_dir)
        return cls(index_dir, Embedder(run_dir, source))

    def verify(self, progress=None) -> None:
        """Hash every file of the index against the manifest (IndexDamagedError if not)."""
        integrity.verify_digests(self.dir, self.manifest, progress)

    # -- searches -------------------------------------------------------------------------
    def _search(
        self, searcher, table: pd.DataFrame, vec: np.ndarray, k: int, origin=None
    ) -> pd.DataFrame:
        k = check_k(k)
        vec = self._check_vec(vec)
        if len(table) == 0:  # an empty gallery (FAISS refuses k = 0): no hits, same columns
            scores, ids = np.zeros((1, 0), np.float32), np.zeros((1, 0), np.int64)
        else:
            with self._lock:
                scores, ids = searcher.search(vec[None], min(k, len(table)))
        keep = ids[0] >= 0
        hits = (
            table.iloc[ids[0][keep]]
            .drop(columns=["geometry"], errors="ignore")
            .reset_index(drop=True)
        )
        hits.insert(0, "similarity", scores[0][keep].astype(float))
        hits.insert(0, "rank", np.arange(1, len(hits) + 1))
        if origin is not None:
            hits["distance_km"] = geo.haversine_km(
                np.asarray(origin)[None], hits[["lat", "lon"]].to_numpy()
            )
        return hits

    def _rows(self, table: str, id_col: str, ids) -> np.ndarray:
        with self._embed_lock:
            if table not in self._ids:
                self._ids[table] = pd.Index(getattr(self, table)[id_col].astype(str))
        return np.asarray(self._ids[table].get_indexer([str(i) for i in ids]), np.int64)

    def cell_rows(self, cell_ids) -> np.ndarray:
        """Row positions [n] int64 of cell ids in `cells` (-1 where unknown)."""
        return self._rows("cells", "cell_id", cell_ids)

    def sv_rows(self, sv_ids) -> np.ndarray:
        """Row positions [n] int64 of gallery view ids in `streetviews` (-1 where unknown)."""
        return self._rows("streetviews", "sv_id", sv_ids)

    def _check_vec(self, vec) -> np.ndarray:
        """An embedding [E] (float32, finite) of this index's dimension."""
        vec = np.asarray(vec, np.float32)
        if vec.shape != (self.manifest["dim"],):
            raise ValueError(
                f"an embedding of this index has shape ({self.manifest['dim']},), got {vec.shape}"
            )
        if not np.isfinite(vec).all():
            raise ValueError("the embedding contains a non-finite value")
        return np.ascontiguousarray(vec)

    def search_cells(self, vec: np.ndarray, k: int = 10, origin=None) -> pd.DataFrame:
        return self._search(self.cell_searcher, self.cells, vec, k, origin)

    def search_streetviews(self, vec: np.ndarray, k: int = 10, origin=None) -> pd.DataFrame:
        return self._search(self.sv_searcher, self.streetviews, vec, k, origin)

    def embed_point(self, lat: float, lon: float) -> np.ndarray:
        lat, lon = geo.validate_point(lat, lon)
        with self._embed_lock:
            return self.embedder.point(np.array([[lat, lon]]))[0]

    @property
    def streetview_weight(self) -> float:
        """The location weight of a place's street-view query (`gair.place_query`) that
        `gair eval` chose for the checkpoint (0, the INR embedding alone, when it has none),
        from the config.json its embedder read when it was opened."""
        from gair.place_query import config_weight

        return config_weight(self.embedder.run_config)

    def query_point(self, lat: float, lon: float, k: int = 10) -> dict:
        """Nearest cells to the INR embedding of (lat, lon); nearest street views to the
        place's query (`gair.place_query`: INR + the run's weight x location embedding)."""
        from gair.place_query import place_query

        lat, lon = geo.validate_point(lat, lon)
        vec = self.embed_point(lat, lon)
        with self._embed_lock:
            loc = self.embedder.location(np.array([[lat, lon]]))[0]
        query = place_query(vec, loc, self.streetview_weight)
        return {
            "query": {"kind": "point", "lat": lat, "lon": lon},
            "embedding": vec,
            "cells": self.search_cells(vec, k, origin=(lat, lon)),
            "streetviews": self.search_streetviews(query, k, origin=(lat, lon)),
        }

    def query_image(self, image: np.ndarray, k: int = 10) -> dict:
        """Places and street views nearest to a street-view image (uint8 [H, W, 3])."""
        with self._embed_lock:
            vec = self.embedder.street_view([image])[0]
        return {
            "query": {"kind": "sv_image"},
            "embedding": vec,
            "cells": self.search_cells(vec, k),
            "streetviews": self.search_streetviews(vec, k),
        }

    def query_cell(self, cell_id: str, k: int = 10) -> dict:
        """Neighbours of a stored cell, by its stored embedding."""
        i = int(self.cell_rows([cell_id])[0])
        if i < 0:
            raise ValueError(
                f"cell {cell_id!r} is not in this index ({self.manifest['grid']['spec']})"
            )
        from gair.place_query import place_query

        row = self.cells.iloc[i]
        vec = np.asarray(self.cell_vectors[i], np.float32)
        loc = np.asarray(self.cell_location[i], np.float32)
        origin = (row["lat"], row["lon"])
        return {
            "query": {
                "kind": "cell",
                "cell_id": cell_id,
                "lat": float(row["lat"]),
                "lon": float(row["lon"]),
            },
            "embedding": vec,
            "cells": self.search_cells(vec, k, origin=origin),
            "streetviews": self.search_streetviews(
                place_query(vec, loc, self.streetview_weight), k, origin=origin
            ),
        }

    def locate_view(self, vec: np.ndarray) -> tuple[float, float]:
        """Where a street view (its SV embedding [E]) was most likely taken: the posterior
        geometric median of its location-encoder scores over every cell (`gair.geolocate`),
        as (lat, lon). The cells are the prior: every place of the grid is equally likely (at
        most `LOCATE_PRIOR_CELLS` of them, evenly strided: the grid's cells are equal-area, so a
        stride keeps the prior uniform while memory stays bounded at any grid size)."""
        import torch

        from gair.geolocate import locate

        with self._embed_lock:
            if self._cell_latlon is None:  # the first call reads the location embeddings once
                step = max(1, -(-len(self.cells) // LOCATE_PRIOR_CELLS))
                latlon = self.cells[["lat", "lon"]].to_numpy(np.float64)[::step]
                self._cell_latlon = torch.from_numpy(np.ascontiguousarray(latlon))
                self._cell_location = torch.from_numpy(
                    np.asarray(self.cell_location[::step], np.float32)
                )
            scale = self.embedder.logit_scale
        where = locate(self._check_vec(vec)[None], self._cell_location, self._cell_latlon, scale)
        return float(where[0, 0]), float(where[0, 1])

    def similarity_to_all_cells(self, vec: np.ndarray, block: int = 1 << 16) -> np.ndarray:
        """Cosine similarity of `vec` to every cell [N] float32 (heatmaps, label sets), from the
        stored float16 vectors read in blocks of `block` rows (`vectors.StoredVectors`): memory
        stays bounded at any N, and the pages read are not kept mapped."""
        vec = self._check_vec(vec)
        out = np.empty(len(self.cell_vectors), np.float32)
        for start in range(0, len(out), block):  # each slice is read and unmapped by itself
            rows = self.cell_vectors[start : start + block]
            np.matmul(rows.astype(np.float32), vec, out=out[start : start + len(rows)])
        return out

    def similarity_to_rows(self, vec: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosine similarity of `vec` to the cells at row positions `rows` [n] -> [n] float32."""
        vec = self._check_vec(vec)
        rows = np.asarray(rows, np.int64)
        return np.asarray(self.cell_vectors[rows], np.float32) @ vec


ID_COLUMNS = ("cell_id", "sv_id", "path")  # unique per row: kept as plain text
LOCATE_PRIOR_CELLS = 250_000  # cells scored by locate_view (strided when the grid is larger)


def _read_table(path: Path) -> pd.DataFrame:
    """A parquet table without its `geometry` column, its repetitive text columns (country,
    class names: a few hundred values over millions of rows) held as categoricals."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    names = [c for c in schema.names if c != "geometry"]

    def is_text(kind) -> bool:
        return pa.types.is_string(kind) or pa.types.is_large_string(kind)

    text = [c for c in names if c not in ID_COLUMNS and is_text(schema.field(c).type)]
    table = pq.read_table(path, columns=names, read_dictionary=text)  # text -> categorical
    return table.to_pandas()
