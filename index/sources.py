"""An index's RS source in its manifest: what the build records (`source_record`) and how a
reader reopens it (`open_index_source`): the demo World for demo indexes, else the recorded
rasters or prepared triples, each path found relative to the index dir first, then absolute
(the rule `index.integrity.recorded_path` applies to the checkpoint and the world)."""

from __future__ import annotations

from pathlib import Path

from gair.sources import open_source
from index.integrity import recorded_path, recorded_source_paths


def source_record(source, index_dir: Path, relative_to) -> dict:
    """The manifest's `source` entry for a source used by an index at `index_dir`."""
    paths = [getattr(source, "path", None)] if hasattr(source, "path") else source.paths
    paths = [str(Path(p).resolve()) for p in paths]
    record = {
        "kind": source.kind,
        "path": [relative_to(p, index_dir) for p in paths],
        "path_absolute": paths,
        "fingerprint": source.fingerprint,
        "bounds": [round(float(v), 9) for v in source.bounds4326],
    }
    if hasattr(source, "describe"):
        record["describe"] = source.describe()
    if source.kind == "rasters":
        record["chip_km"] = source.chip_km
        record["min_coverage"] = source.min_coverage
    return record


def open_index_source(index_dir, manifest: dict, override=None, run_dir=None):
    """The RS source an index was built from (or `override`, a path or a source object): the
    demo World for demo indexes (a manifest with only `world`), else the recorded rasters or
    prepared triples, resolved relative to the index dir first, then absolute."""
    if override is not None and not isinstance(override, str | Path):
        return override
    record = manifest.get("source")
    if override is not None:
        paths = [Path(override)]
    elif record is None or record.get("kind") == "world":
        from gair.world import World

        return World.open(recorded_path(index_dir, manifest, "world"))
    else:
        paths = recorded_source_paths(index_dir, record)
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(
                f"the index's RS source is gone: {', '.join(missing)} (pass --source PATH)"
            )
    if run_dir is None:
        run_dir = recorded_path(index_dir, manifest, "checkpoint")
    kwargs = {}
    if record is not None and record.get("kind") == "rasters":
        kwargs = {"chip_km": record.get("chip_km"), "min_coverage": record.get("min_coverage")}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return open_source(paths if len(paths) > 1 else paths[0], run_dir, **kwargs)
