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

How an index records its source and reopens it is the index's business: `index.sources`.
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
