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
from index import vectors

if TYPE_CHECKING:
    from gair.embed import Embedder

SUPPORTED_FORMATS = (1,)


class IndexMismatchError(ValueError):
    """The index was built with another checkpoint than the one given."""


def read_manifest(index_dir: str | Path) -> dict:
    path = Path(index_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no index at {index_dir} (manifest.json missing): build one with `gair index build`"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format_version") not in SUPPORTED_FORMATS:
        raise ValueError(
            f"{path}: unsupported index format_version {manifest.get('format_version')!r}"
        )
    return manifest


class GridIndex:
    """A built index plus the Embedder of its checkpoint (or a `gair.deferred.DeferredEmbedder`
    standing in for it). Thread-safe for concurrent queries."""

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
        self.cells = pd.read_parquet(self.dir / "cells.parquet")
        self.streetviews = pd.read_parquet(self.dir / "streetviews.parquet")
        self.cell_vectors = np.load(self.dir / "cells.npy", mmap_mode="r")
        self.cell_location = np.load(self.dir / "cells_location.npy", mmap_mode="r")
        self.sv_vectors = np.load(self.dir / "streetviews.npy", mmap_mode="r")
        vectors.configure_for_single_queries()
        self.cell_index = vectors.read_index(self.dir / "cells.faiss")
        self.sv_index = vectors.read_index(self.dir / "streetviews.faiss")
        for name, idx in (("cells", self.cell_index), ("streetviews", self.sv_index)):
            nprobe = self.manifest[name].get("nprobe")
            if nprobe:
                vectors.set_search_params(idx, nprobe=nprobe, ef_search=max(64, 2 * nprobe))
        self._cell_pos = {cid: i for i, cid in enumerate(self.cells["cell_id"])}
        self._lock = vectors.SearchLock()
        self._embed_lock = threading.Lock()  # torch modules: one query embeds at a time
        self._cell_latlon = self._cell_location = None  # tensors for locate_view, on first use

    @classmethod
    def open(
        cls, index_dir: str | Path, checkpoint: str | Path | None = None, world=None
    ) -> GridIndex:
        """Open with the checkpoint recorded in the manifest (or `checkpoint`) and its world."""
        from gair.embed import Embedder
        from gair.world import World

        manifest = read_manifest(index_dir)
        world = world or World.open(manifest["world"]["path"])
        return cls(index_dir, Embedder(checkpoint or manifest["checkpoint"], world))

    # -- searches -------------------------------------------------------------------------
    def _search(
        self, index, table: pd.DataFrame, vec: np.ndarray, k: int, origin=None
    ) -> pd.DataFrame:
        k = int(k)
        if k <= 0:
            raise ValueError(f"k must be a positive integer, got {k}")
        with self._lock:
            scores, ids = index.search(
                np.asarray(vec, np.float32).reshape(1, -1), min(k, len(table))
            )
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

    def search_cells(self, vec: np.ndarray, k: int = 10, origin=None) -> pd.DataFrame:
        return self._search(self.cell_index, self.cells, vec, k, origin)

    def search_streetviews(self, vec: np.ndarray, k: int = 10, origin=None) -> pd.DataFrame:
        return self._search(self.sv_index, self.streetviews, vec, k, origin)

    def embed_point(self, lat: float, lon: float) -> np.ndarray:
        lat, lon = geo.validate_point(lat, lon)
        with self._embed_lock:
            return self.embedder.point(np.array([[lat, lon]]))[0]

    def query_point(self, lat: float, lon: float, k: int = 10) -> dict:
        """Nearest cells and street views to the INR embedding of (lat, lon)."""
        lat, lon = geo.validate_point(lat, lon)
        vec = self.embed_point(lat, lon)
        return {
            "query": {"kind": "point", "lat": lat, "lon": lon},
            "embedding": vec,
            "cells": self.search_cells(vec, k, origin=(lat, lon)),
            "streetviews": self.search_streetviews(vec, k, origin=(lat, lon)),
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
        if cell_id not in self._cell_pos:
            raise ValueError(
                f"cell {cell_id!r} is not in this index ({self.manifest['grid']['spec']})"
            )
        i = self._cell_pos[cell_id]
        row = self.cells.iloc[i]
        vec = np.asarray(self.cell_vectors[i])
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
            "streetviews": self.search_streetviews(vec, k, origin=origin),
        }

    def locate_view(self, vec: np.ndarray) -> tuple[float, float]:
        """Where a street view (its SV embedding [E]) was most likely taken: the posterior
        geometric median of its location-encoder scores over every cell (`gair.geolocate`),
        as (lat, lon). The cells are the prior: every place of the grid is equally likely."""
        import torch

        from gair.geolocate import locate

        with self._embed_lock:
            if self._cell_latlon is None:  # the first call reads the location embeddings once
                self._cell_latlon = torch.from_numpy(
                    np.array(self.cells[["lat", "lon"]], np.float64)  # a writable copy
                )
                self._cell_location = torch.from_numpy(np.array(self.cell_location, np.float32))
            scale = self.embedder.logit_scale
        where = locate(
            np.asarray(vec, np.float32)[None], self._cell_location, self._cell_latlon, scale
        )
        return float(where[0, 0]), float(where[0, 1])

    def similarity_to_all_cells(self, vec: np.ndarray) -> np.ndarray:
        """Cosine similarity of `vec` to every cell [N] (for heatmaps); exact, vectorised."""
        return np.asarray(self.cell_vectors) @ np.asarray(vec, np.float32)
