"""Index integrity: what a manifest records about its files, and the checks that catch a
damaged or mixed-up index before it answers anything.

Recorded at build time (`record`):
- `files`: every data file's size in bytes and SHA-256;
- per table (`cells`, `streetviews`): the row count (`count`) and the SHA-256 of its ids in
  row order (`ids_sha256`).

Checked on every open (`check_on_open`, cheap: no file is hashed):
- each file exists with its recorded size (catches truncation before a reader trips on it);
- parquet rows, `.npy` rows and FAISS `ntotal` all equal the recorded count (a dropped row);
- the ids in row order hash to the recorded digest (shuffled or replaced rows);
- a few stored vectors searched in FAISS come back with scores equal to their dot products with
  the stored vectors of the ids FAISS returns (a FAISS file of another build).

Checked by `gair index verify` and by the app in the background (`verify_digests`): every
file's SHA-256. Any mismatch raises `IndexDamagedError` naming the file and the command that
rebuilds the index.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from gair.run_dir import file_sha256

# table name -> (id column, files that belong to it)
TABLES = {
    "cells": ("cell_id", ("cells.parquet", "cells.npy", "cells_location.npy", "cells.faiss")),
    "streetviews": ("sv_id", ("streetviews.parquet", "streetviews.npy", "streetviews.faiss")),
}
FILES = tuple(f for _, files in TABLES.values() for f in files)
N_PROBES = 8  # stored vectors searched in FAISS on open
SCORE_TOLERANCE = 0.02  # |FAISS score - exact dot product|; SQfp16/SQ8 error is ~1e-3


class IndexDamagedError(ValueError):
    """An index file is missing, truncated, altered or from another build."""


def ids_sha256(ids: Iterable, chunk: int = 1 << 16) -> str:
    """SHA-256 of ids in row order (one per line, as text); joined a chunk at a time, so 4 M
    ids take ~1 s rather than ~17 s one by one."""
    digest = hashlib.sha256()
    if not hasattr(ids, "astype"):
        ids = [str(v) for v in ids]
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]  # a Series: by position (its index is a RangeIndex)
        part = part.astype(str).tolist() if hasattr(part, "astype") else part
        digest.update(("\n".join(part) + "\n").encode("utf-8"))
    return digest.hexdigest()


def record(index_dir: Path) -> dict:
    """The `files` entry of a manifest for the data files in `index_dir`."""
    return {
        name: {"bytes": (index_dir / name).stat().st_size, "sha256": file_sha256(index_dir / name)}
        for name in FILES
    }


def recorded_path(index_dir: str | Path, manifest: dict, what: str) -> Path:
    """The checkpoint or world dir (`what`) the manifest records. The build records each path
    relative to the index dir (found when the index moves with them, from any working
    directory) and absolute (found when the index alone was copied elsewhere); the relative one
    wins when both exist."""
    if what != "checkpoint" and not manifest.get("world"):
        kind = (manifest.get("source") or {}).get("kind", "another source")
        raise ValueError(f"index {index_dir} was built from {kind}, not from a demo world")
    entry = manifest["checkpoint"] if what == "checkpoint" else manifest["world"]["path"]
    absolute = manifest.get("checkpoint_absolute" if what == "checkpoint" else "world_absolute")
    p = Path(entry).expanduser()
    candidate = p if p.is_absolute() else Path(index_dir) / p
    if not candidate.exists() and absolute and Path(absolute).exists():
        return Path(absolute)
    return candidate


def recorded_source_paths(index_dir: str | Path, record: dict) -> list[Path]:
    """The RS source paths a manifest's `source` entry records, each relative to the index dir
    when it exists there, else absolute (as `recorded_path`)."""
    paths = []
    for rel, absolute in zip(record.get("path", []), record.get("path_absolute", [])):
        here = (Path(index_dir) / rel).resolve()
        paths.append(here if here.exists() else Path(absolute))
    return paths


def _shown(path: Path) -> str:
    """A path as a command line shows it: relative to the working directory when below it."""
    path = Path(os.path.normpath(path.absolute()))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _source_args(index_dir: Path, manifest: dict) -> str:
    """`--world DIR` for a demo index, else `--source PATH ...` (and its options)."""
    source = manifest.get("source") or {"kind": "world"}
    if source.get("kind") == "world":
        return f"--world {shlex.quote(_shown(recorded_path(index_dir, manifest, 'world')))}"
    paths = [shlex.quote(_shown(p)) for p in recorded_source_paths(index_dir, source)]
    args = "--source " + " ".join(paths)
    if source.get("kind") == "rasters":
        args += f" --min-coverage {source.get('min_coverage', 0.9):g}"
    return args


def rebuild_command(manifest: dict, index_dir: Path) -> str:
    """The `gair index build` command that rebuilds this index, from its manifest."""
    grid = manifest.get("grid") or {}
    parts = [
        "gair index build",
        f"--checkpoint {shlex.quote(_shown(recorded_path(index_dir, manifest, 'checkpoint')))}",
        _source_args(index_dir, manifest),
        f"--grid {grid.get('spec', 'h3:4')}",
    ]
    if grid.get("land_only"):
        parts.append("--land-only")
    if grid.get("bbox"):
        parts.append("--bbox " + ",".join(f"{v:g}" for v in grid["bbox"]))
    if (grid.get("aoi") or {}).get("source"):
        parts.append(f"--aoi {shlex.quote(str(grid['aoi']['source']))}")
    if manifest.get("streetviews", {}).get("count"):
        parts.append(f"--gallery-size {manifest['streetviews']['count']}")
    parts.append(f"--out {shlex.quote(_shown(Path(index_dir)))}")
    return " ".join(parts)


def _damaged(index_dir: Path, manifest: dict, what: str) -> IndexDamagedError:
    return IndexDamagedError(
        f"index {index_dir} is damaged: {what}; rebuild it with `"
        f"{rebuild_command(manifest, index_dir)}`"
    )


def check_sizes(index_dir: Path, manifest: dict) -> None:
    """Every recorded file exists with its recorded size."""
    for name, rec in manifest["files"].items():
        path = index_dir / name
        if not path.is_file():
            raise _damaged(index_dir, manifest, f"{name} is missing")
        size = path.stat().st_size
        if size != rec["bytes"]:
            raise _damaged(
                index_dir, manifest, f"{name} is {size:,} bytes, the build wrote {rec['bytes']:,}"
            )


def check_on_open(
    index_dir: Path,
    manifest: dict,
    tables: dict,
    arrays: dict[str, list[tuple[str, np.ndarray]]],
    faiss_indexes: dict,
) -> None:
    """Counts, id order and FAISS agreement of an opened index (sizes are checked before the
    files are read, by `check_sizes`).

    Args:
        tables: table name -> DataFrame read from its parquet file.
        arrays: table name -> [(file name, array [N, E])] memory-mapped vectors; the first is
            the one its FAISS index holds.
        faiss_indexes: table name -> FAISS index.
    """
    for table, (id_col, _) in TABLES.items():
        want = int(manifest[table]["count"])
        frame = tables[table]
        if len(frame) != want:
            raise _damaged(
                index_dir,
                manifest,
                f"{table}.parquet has {len(frame):,} rows, the build wrote {want:,}",
            )
        if id_col not in frame:
            raise _damaged(index_dir, manifest, f"{table}.parquet has no {id_col!r} column")
        if ids_sha256(frame[id_col]) != manifest[table]["ids_sha256"]:
            raise _damaged(
                index_dir,
                manifest,
                f"the rows of {table}.parquet are not in the order the build wrote them "
                "(shuffled, replaced or edited)",
            )
        for name, vecs in arrays[table]:
            if vecs.ndim != 2 or len(vecs) != want:
                raise _damaged(
                    index_dir,
                    manifest,
                    f"{name} holds {tuple(vecs.shape)} vectors, the build wrote {want:,} rows",
                )
        index = faiss_indexes[table]
        if index.ntotal != want:
            raise _damaged(
                index_dir,
                manifest,
                f"{table}.faiss holds {index.ntotal:,} vectors, the build wrote {want:,}",
            )
        _check_faiss_agrees(index_dir, manifest, table, index, arrays[table][0][1])


def _check_faiss_agrees(index_dir, manifest, table, index, vecs) -> None:
    """FAISS scores of a few stored vectors equal their exact dot products with the stored
    vectors of the ids returned: true of the build's own FAISS file, false of another's."""
    n = len(vecs)
    if n == 0:
        return
    rows = np.unique(np.linspace(0, n - 1, min(N_PROBES, n)).astype(np.int64))
    queries = np.ascontiguousarray(vecs[rows], dtype=np.float32)
    scores, ids = index.search(queries, min(5, n))
    for q, row_ids, row_scores in zip(queries, ids, scores):
        keep = row_ids >= 0
        if not keep.any():
            continue
        exact = np.asarray(vecs[row_ids[keep]], np.float32) @ q
        err = np.abs(exact - row_scores[keep]).max()
        if not np.isfinite(err) or err > SCORE_TOLERANCE:
            raise _damaged(
                index_dir,
                manifest,
                f"{table}.faiss does not hold the vectors of {table}.npy (score off by {err:.3f}): "
                "it comes from another build",
            )


def verify_digests(
    index_dir: Path, manifest: dict, progress: Callable[[str], None] | None = None
) -> None:
    """Hash every recorded file and compare with the manifest (seconds per GB)."""
    check_sizes(index_dir, manifest)
    for name, rec in manifest["files"].items():
        if progress:
            progress(name)
        if file_sha256(index_dir / name) != rec["sha256"]:
            raise _damaged(
                index_dir, manifest, f"{name} does not match its SHA-256 in the manifest"
            )
