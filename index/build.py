"""Build a grid index: embed every grid cell centre (and the street-view gallery) with a
checkpoint through `gair.embed.Embedder`, then write FAISS indexes + GeoParquet metadata.

Crash safety: shards of cell embeddings are written atomically into a work dir beside the
output (`.NAME.building/`); a re-run with the same inputs resumes from the completed shards;
the finished index directory replaces the output in one rename.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from gair.atomic import atomic_dir, atomic_path, write_json
from gair.embed import Embedder
from gair.heads import Heads
from gair.run_dir import heads_sha256
from gair.sources import DEFAULT_MIN_COVERAGE
from gair.world.world import LABELS
from index import grid as grids
from index import integrity, vectors
from index.aoi import aoi_from_geojson
from index.galleries import build_gallery
from index.sources import source_record

FOOTPRINT = "footprint"  # --aoi footprint: the union of the RS source's imagery footprints

log = logging.getLogger(__name__)

FORMAT_VERSION = 3  # index.search reads this version only


@dataclass
class BuildSpec:
    """What to build. The RS source is `source` (raster files/folders/STAC JSON, a prepared
    dir, or a demo world dir; see gair.sources.open_source) or, for the demo, `world`."""

    checkpoint: str
    world: str | None = None
    grid: str = "h3:2"
    land_only: bool = False
    bbox: tuple[float, float, float, float] | None = None
    gallery_size: int = 20000
    shard_size: int = 4096  # cells per resumable shard (tiles at shard borders are encoded twice)
    engine: str = "local"
    workers: int = 2
    aoi: str | None = None  # a GeoJSON file, or "footprint" (of the source's imagery)
    source: list[str] | None = None  # RS source paths (None: the demo world `world`)
    chip_km: float | None = None  # overrides the checkpoint's recorded rs_chip.km
    min_coverage: float = DEFAULT_MIN_COVERAGE
    gallery_csv: str | None = None  # a street-view CSV (lon, lat, path); None: the source's own

    _footprint: grids.Aoi | None = field(default=None, repr=False, compare=False)

    def open_source(self):
        """The RS source (gair.sources) this spec names."""
        from gair.sources import open_source

        if self.source:
            spec = self.source if len(self.source) > 1 else self.source[0]
            return open_source(spec, self.checkpoint, self.chip_km, self.min_coverage)
        if self.world is None:
            raise ValueError("give an RS source (--source PATH ...) or a demo world (--world DIR)")
        return open_source(self.world)

    def use_footprint(self, source) -> None:
        """Resolve `--aoi footprint`: the union of the source's imagery footprints."""
        if self.aoi == FOOTPRINT and callable(getattr(source, "footprint", None)):
            import shapely.geometry

            geometry = shapely.geometry.mapping(source.footprint())
            self._footprint = aoi_from_geojson(geometry, FOOTPRINT)

    def load_aoi(self) -> grids.Aoi | None:
        """The area of interest, read and validated (cached per file version)."""
        if self.aoi == FOOTPRINT:
            if self._footprint is None:
                raise ValueError("--aoi footprint needs an RS source with imagery footprints")
            return self._footprint
        return grids.load_aoi(self.aoi) if self.aoi is not None else None

    def identity(self, checkpoint_hash: str, world_fingerprint: str) -> dict:
        """What a resumable work dir must agree on."""
        aoi = self.load_aoi()
        return {
            "checkpoint_hash": checkpoint_hash,
            "world": world_fingerprint,
            "grid": self.grid,
            "land_only": self.land_only,
            "bbox": list(self.bbox) if self.bbox is not None else None,
            "aoi": aoi.sha256 if aoi is not None else None,
            "shard_size": self.shard_size,
            "min_coverage": self.min_coverage,
            "chip_km": self.chip_km,
        }

    def grid_record(self) -> dict:
        """The manifest's `grid` entry: the spec, and the bbox / AOI it was limited to."""
        aoi = self.load_aoi()
        return {
            "spec": self.grid,
            "land_only": self.land_only,
            "bbox": self.bbox,
            "aoi": aoi.as_dict() if aoi is not None else None,
        }


def select_cells(spec: BuildSpec, world) -> pd.DataFrame:
    """The grid cells to embed with their world labels; ValueError when none remain. With an
    AOI (and/or a bbox) the cells are filled from that area, never listed over the globe.
    --land-only keeps the cells whose centre is on land, and the coastal cells whose centre is
    at sea, at the land point inside them nearest the centre (`grid.coastal_anchors`): their
    lat/lon is that point, where they are embedded and labelled."""
    bbox = np.asarray(spec.bbox, dtype=np.float64) if spec.bbox is not None else None
    aoi = spec.load_aoi()
    cells = grids.grid_cells(spec.grid, bbox, aoi)
    latlon = cells[["lat", "lon"]].to_numpy()
    if getattr(world, "has_labels", False):
        labels = world.labels(latlon)
        for name in LABELS:
            cells[name] = np.asarray(labels[name])
    elif spec.land_only:
        raise ValueError(
            f"--land-only needs the demo world's land mask; the RS source {world.kind!r} has "
            "no labels (drop --land-only: cells without imagery are left out anyway)"
        )
    if spec.land_only:
        land = cells["is_land"].astype(bool).to_numpy()
        coast = grids.coastal_anchors(cells, land, lambda q: world.labels(q)["is_land"])
        cells = cells[land]
        if len(coast):  # labelled at their land anchor (the point they are embedded at)
            labels = world.labels(coast[["lat", "lon"]].to_numpy())
            coast = coast.assign(**{name: np.asarray(labels[name]) for name in LABELS})
            cells = pd.concat([cells, coast[cells.columns]]).sort_values("cell_id")
        cells = cells.reset_index(drop=True)
        log.info(
            "land-only: %d cells (%d coastal, embedded at a land point)", len(cells), len(coast)
        )
    if cells.empty:
        where = f" inside bbox {list(spec.bbox)}" if spec.bbox is not None else ""
        where += f" inside the AOI {spec.aoi}" if aoi is not None else ""
        widen = "use a finer --grid, widen the area" if aoi is not None else "widen the bbox"
        raise ValueError(
            f"the grid {spec.grid}{where} has no cells{' on land' if spec.land_only else ''}: "
            f"nothing to index ({widen} or drop --land-only)"
        )
    return cells


def order_by_tile(cells: pd.DataFrame, embedder: Embedder) -> pd.DataFrame:
    """Sort cells by their first tile (or fixed chip), so a shard touches few tiles (one RS
    encoder pass answers every cell inside a tile)."""
    latlon = cells[["lat", "lon"]].to_numpy()
    if embedder.tiling is None:
        key = embedder.world.locate(latlon)
        return cells.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)
    rows, cols, _ = embedder.tiling.tiles_of(latlon)
    key = rows[:, 0] * embedder.tiling.n_cols + cols[:, 0]
    return cells.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)


def embed_shard(embedder: Embedder, latlon: np.ndarray, on_chips=None) -> dict[str, np.ndarray]:
    """Embeddings of one shard of cell centres: INR point and location, each [n, E] float32
    (point rows NaN where `covered` [n] is False: no imagery there). `on_chips(done, total)`:
    progress within the shard."""
    passes = embedder.encoder_passes
    point, covered = embedder.point_coverage(latlon, on_chips)
    return {
        "point": point,
        "covered": covered,
        "location": embedder.location(latlon),
        "encoder_passes": np.array(embedder.encoder_passes - passes),
    }


def _shard_path(work: Path, i: int) -> Path:
    return work / f"shard_{i:05d}.npz"


def _save_shard(path: Path, arrays: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def _prepare_work_dir(work: Path, identity: dict) -> None:
    ident_path = work / "identity.json"
    if work.exists():
        try:
            same = json.loads(ident_path.read_text()) == identity
        except (OSError, json.JSONDecodeError):
            same = False
        if not same:
            log.info("discarding a stale work dir %s (different inputs)", work)
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    if not ident_path.exists():
        write_json(ident_path, identity)


def _shard_ok(path: Path, rows: int) -> bool:
    """A shard file that reads completely (the npz members' CRCs are checked on read) and holds
    `rows` finite embeddings of each kind."""
    try:
        with np.load(path) as shard:
            arrays = {k: shard[k] for k in ("point", "location", "encoder_passes", "covered")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("shard %s is unreadable (%s): embedding it again", path.name, err)
        return False
    covered = arrays["covered"]
    if covered.shape != (rows,) or covered.dtype != bool:
        log.warning("shard %s holds a bad coverage mask: embedding it again", path.name)
        return False
    for key in ("point", "location"):
        a = arrays[key]
        finite = a[covered] if key == "point" and a.ndim == 2 and len(a) == rows else a
        if a.ndim != 2 or len(a) != rows or not np.isfinite(finite).all():
            log.warning("shard %s holds bad %r embeddings: embedding it again", path.name, key)
            return False
    return True


def pending_shards(work: Path, n: int, shard_size: int) -> list[int]:
    """Shards still to embed: missing ones and damaged ones (which are deleted). A resumed
    build reuses only shards that read back whole."""
    n_shards = (n + shard_size - 1) // shard_size
    todo = []
    for i in range(n_shards):
        path = _shard_path(work, i)
        rows = min(shard_size, n - i * shard_size)
        if path.exists() and _shard_ok(path, rows):
            continue
        path.unlink(missing_ok=True)
        todo.append(i)
    if len(todo) < n_shards:
        log.info("resuming: %d of %d shards already done", n_shards - len(todo), n_shards)
    return todo


def run_local(
    embedder: Embedder, latlon: np.ndarray, work: Path, shard_size: int, progress: bool = True
) -> None:
    todo = pending_shards(work, len(latlon), shard_size)
    total = sum(len(latlon[i * shard_size : (i + 1) * shard_size]) for i in todo)
    with tqdm(total=total, desc="embedding grid cells", disable=not progress, unit="cell") as bar:
        for i in todo:
            part = latlon[i * shard_size : (i + 1) * shard_size]
            start, size = bar.n, len(part)

            def advance(done: int, chips: int, start=start, size=size) -> None:
                bar.update(start + size * done // max(chips, 1) - bar.n)  # cells, pro rata

            arrays = embed_shard(embedder, part, advance)
            _save_shard(_shard_path(work, i), arrays)
            bar.update(start + len(part) - bar.n)


def load_shards(work: Path, n: int, shard_size: int) -> dict[str, np.ndarray]:
    """The shards' arrays joined in cell order, read one shard at a time into arrays allocated
    once (4 M cells hold 8 GB of float32 vectors: joining a list of them would need twice that)."""
    n_shards = (n + shard_size - 1) // shard_size
    out, passes = {}, 0
    for i in range(n_shards):
        rows = slice(i * shard_size, min(n, (i + 1) * shard_size))
        with np.load(_shard_path(work, i)) as shard:
            for key in ("point", "location", "covered"):
                part = shard[key]
                if key not in out:
                    out[key] = np.empty((n, *part.shape[1:]), part.dtype)
                out[key][rows] = part
            passes += int(shard["encoder_passes"])
    return {**out, "encoder_passes": passes}


def write_geoparquet(frame: pd.DataFrame, path: Path) -> None:
    import geopandas as gpd

    gdf = gpd.GeoDataFrame(
        frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs="EPSG:4326"
    )
    with atomic_path(path) as tmp:
        gdf.to_parquet(tmp, index=False)


def write_vectors(out: Path, name: str, vecs: np.ndarray) -> dict:
    """One table's vectors [N, E] (L2-normalised float32): the FAISS index of int8 codes
    (`{name}.faiss`) and the unit vectors as float16 (`{name}.npy`, memory-mapped by readers,
    re-scoring FAISS's shortlist); recall@10 of the two together against exact float32."""
    factory = vectors.choose_factory(len(vecs), vecs.shape[1])
    stored = np.asarray(vecs, vectors.STORED_DTYPE)
    # FAISS indexes the stored values, so every score it gives is a stored vector's cosine
    index = vectors.build_index(stored.astype(np.float32), factory)
    rerank = vectors.rerank_size(factory)
    nprobe, recall, recall_ties = vectors.tune_nprobe(vectors.Searcher(index, stored, rerank), vecs)
    vectors.write_index(index, out / f"{name}.faiss")
    write_npy(out / f"{name}.npy", stored)
    return {
        "count": int(len(vecs)),
        "factory": factory,
        "nprobe": nprobe,
        "rerank": rerank,
        "stored_dtype": np.dtype(vectors.STORED_DTYPE).name,
        "recall_at_10": recall,
        "recall_at_10_near_ties": recall_ties,  # found within TIE_TOLERANCE of the 10th cosine
        "tie_tolerance": vectors.TIE_TOLERANCE,
        "bytes_per_vector": vectors.bytes_per_vector(index, len(vecs)),
    }


def write_npy(path: Path, array: np.ndarray) -> None:
    """np.save to a temp file renamed into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def _relative_to(path: str | Path, index_dir: Path) -> str:
    """`path` as the manifest records it: relative to the index dir when both lie under a
    common folder other than the root (the index then opens from any working directory and moves
    with its checkpoint and world, as in a project checkout), else absolute."""
    target, index_dir = Path(path).resolve(), index_dir.resolve()
    try:
        common = Path(os.path.commonpath([target, index_dir]))
    except ValueError:  # another drive (Windows): no relative path exists
        return str(target)
    if common == Path(common.anchor):
        return str(target)
    return os.path.relpath(target, index_dir)


def _coverage_record(cells: pd.DataFrame, covered: np.ndarray) -> dict:
    """What the build left out for lack of imagery: a count and a few example cells."""
    missing = cells.loc[~covered, ["cell_id", "lat", "lon"]]
    return {
        "cells_listed": int(len(cells)),
        "cells_indexed": int(covered.sum()),
        "cells_without_imagery": int(len(missing)),
        "examples_without_imagery": missing.head(5).round(6).to_dict("records"),
    }


def build_index(spec: BuildSpec, out: str | Path, world=None, progress: bool = True) -> dict:
    """Build the index dir at `out`; returns its manifest. `world`: an already open RS source
    (else `spec.open_source()`). Cells without imagery under them are left out and counted
    (manifest `coverage`); ValueError when no cell has imagery."""
    out = Path(out)
    started = time.time()
    source = world or spec.open_source()
    if source.kind != "world" and spec.aoi is None and spec.bbox is None:
        log.info("no --aoi or --bbox: the grid fills the footprint of the imagery")
        spec = replace(spec, aoi=FOOTPRINT)
    spec.use_footprint(source)
    embedder = Embedder(spec.checkpoint, source)
    cells = order_by_tile(select_cells(spec, source), embedder)
    latlon = cells[["lat", "lon"]].to_numpy()
    log.info("embedding %d grid cells of %s", len(cells), spec.grid)

    work = out.with_name(f".{out.name}.building")
    _prepare_work_dir(work, spec.identity(embedder.checkpoint_hash, source.fingerprint))
    if spec.engine == "ray":
        from index.ray_engine import run_ray

        run_ray(spec, latlon, work)
    elif spec.engine == "local":
        run_local(embedder, latlon, work, spec.shard_size, progress)
    else:
        raise ValueError(f"--engine must be 'local' or 'ray', got {spec.engine!r}")
    shards = load_shards(work, len(cells), spec.shard_size)
    covered = shards["covered"]
    coverage = _coverage_record(cells, covered)
    if coverage["cells_without_imagery"]:
        log.warning(
            "%d of %d cells have no imagery under them and are left out (e.g. %s)",
            coverage["cells_without_imagery"],
            len(cells),
            coverage["examples_without_imagery"][:2],
        )
    if not covered.any():
        raise ValueError(
            f"none of the {len(cells)} cells of {spec.grid} has imagery under it: the grid and "
            f"the RS source do not overlap (source bounds W,S,E,N {list(source.bounds4326)})"
        )
    point, location = shards.pop("point"), shards.pop("location")
    if not covered.all():  # (a copy: skipped when every cell has imagery, as in the demo world)
        cells = cells[covered].reset_index(drop=True)
        point, location = point[covered], location[covered]
    heads = Heads.load(spec.checkpoint)
    if heads is not None:  # per-cell downstream predictions from the run's trained heads
        for name, values in heads.predict_table({"inr": point, "location": location}).items():
            cells[name] = values
    location = np.asarray(location, vectors.STORED_DTYPE)  # as stored; frees the float32 copy

    with atomic_dir(out) as tmp:
        gallery, sv_vecs, sv_source = build_gallery(
            embedder, source, spec.gallery_size, spec.gallery_csv, tmp, progress
        )
        cell_stats = write_vectors(tmp, "cells", point)
        write_npy(tmp / "cells_location.npy", location)
        write_geoparquet(cells, tmp / "cells.parquet")
        sv_stats = write_vectors(tmp, "streetviews", sv_vecs)
        write_geoparquet(gallery, tmp / "streetviews.parquet")
        is_world = source.kind == "world"
        manifest = {
            "format_version": FORMAT_VERSION,
            "checkpoint_hash": embedder.checkpoint_hash,
            "checkpoint": _relative_to(spec.checkpoint, out),
            "checkpoint_absolute": str(Path(spec.checkpoint).resolve()),
            "world": (
                {"path": _relative_to(source.path, out), "fingerprint": source.fingerprint}
                if is_world
                else None
            ),
            "world_absolute": str(Path(source.path).resolve()) if is_world else None,
            "source": source_record(source, out, _relative_to),
            "grid": spec.grid_record(),
            "tiling": embedder.tiling.as_dict() if embedder.tiling is not None else None,
            "coverage": coverage,
            "dim": embedder.dim,
            "metric": "inner_product (cosine on L2-normalised vectors)",
            "cells": {**cell_stats, "ids_sha256": integrity.ids_sha256(cells["cell_id"])},
            "streetviews": {
                **sv_stats,
                "ids_sha256": integrity.ids_sha256(gallery["sv_id"]),
                "source": sv_source,
            },
            "predictions": sorted(heads.tasks) if heads is not None else [],
            "heads_sha256": heads_sha256(spec.checkpoint) if heads is not None else None,
            "encoder_passes_per_point": shards["encoder_passes"] / max(len(cells), 1),
            "engine": spec.engine,
            "build_seconds": round(time.time() - started, 2),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": integrity.record(tmp),
        }
        write_json(tmp / "manifest.json", manifest)
    shutil.rmtree(work, ignore_errors=True)
    return manifest
