"""RS sources: where the Embedder, the index build, evaluation and the app get RS chips.

Three kinds, one interface (`kind`, `fingerprint`, `bounds4326`, `has_labels`, `describe()`):
- "world": the synthetic demo world (`gair.world.World`), chips on its global plate carree
  raster, with ground-truth labels and rendered street views;
- "rasters": the user's GeoTIFF/COG/VRT/JP2 files or a local STAC item collection
  (`gair.sources.raster.RasterSource`), chips cut as ground squares and mosaicked on the fly;
- "prepared": the fixed chips of `gair data prepare` (`gair.sources.prepared.PreparedSource`).

Tiled sources (`tiled = True`: world, rasters) give `chips(latlon, size_px)`; rasters also give
`chips_with_coverage`, so a point without imagery under it is refused (`NotCoveredError`),
never embedded from a zero-filled chip. Fixed-chip sources give `locate` and `read`.
"""

from __future__ import annotations

from pathlib import Path

from gair.sources.raster import DEFAULT_MIN_COVERAGE


class NotCoveredError(ValueError):
    """Points that no imagery of the RS source covers. `latlon` holds them [n, 2]."""

    def __init__(self, message: str, latlon=None):
        super().__init__(message)
        self.latlon = latlon


def chip_read_px(run_config: dict) -> int:
    """Pixels across an RS chip as read from rasters: the recorded source window (224 for the
    official release), else the model's input size."""
    chip = run_config.get("rs_chip") or {}
    return int(chip.get("source_px") or run_config["model"]["rs"]["img_size"])


def open_source(
    spec,
    run_dir: str | Path | None = None,
    chip_km: float | None = None,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
):
    """The RS source that `spec` names: a demo world dir, a prepared-triples dir, or raster
    files / folders / STAC JSON (a path or a list; rasters need `run_dir` for the bands and the
    chip's ground size, or `chip_km`). Errors are one line naming the path."""
    from gair.data.shards import _looks_prepared
    from gair.run_dir import read_run_config, rs_chip_km
    from gair.world.manifest import check_complete

    paths = [Path(p) for p in ([spec] if isinstance(spec, str | Path) else list(spec))]
    if len(paths) == 1 and paths[0].is_dir():
        if check_complete(paths[0])[0] is not None:
            from gair.world import World

            return World.open(paths[0])
        if _looks_prepared(paths[0]):
            from gair.sources.prepared import PreparedSource

            return PreparedSource(paths[0])
    if run_dir is None:
        raise ValueError("a raster source needs the checkpoint (its bands and chip size)")
    from gair.sources.raster import RasterSource

    run_config = read_run_config(run_dir)
    return RasterSource(
        paths,
        bands=list(run_config["model"]["rs"]["bands"]),
        chip_km=rs_chip_km(run_config, chip_km, where=str(run_dir)),
        read_px=chip_read_px(run_config),
        model_px=int(run_config["model"]["rs"]["img_size"]),
        min_coverage=min_coverage,
    )


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
        from index.integrity import recorded_path

        return World.open(recorded_path(index_dir, manifest, "world"))
    else:
        index_dir = Path(index_dir)
        paths = []
        for rel, absolute in zip(record["path"], record["path_absolute"]):
            here = (index_dir / rel).resolve()
            paths.append(here if here.exists() else Path(absolute))
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(
                f"the index's RS source is gone: {', '.join(missing)} (pass --source PATH)"
            )
    if run_dir is None:
        from index.integrity import recorded_path

        run_dir = recorded_path(index_dir, manifest, "checkpoint")
    kwargs = {}
    if record is not None and record.get("kind") == "rasters":
        kwargs = {"chip_km": record.get("chip_km"), "min_coverage": record.get("min_coverage")}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return open_source(paths if len(paths) > 1 else paths[0], run_dir, **kwargs)
