"""The index's RS source (the imagery its cells were embedded from), opened for the app.

A demo index reads the demo world (`gair.world.World`): ground-truth labels, rendered street
views, the Blue Marble basemap. An index built from the user's own imagery (manifest
`"world": null` and a `"source"` entry) reads a `gair.sources` source: rasters (with a basemap
rendered from them) or prepared chips; it has no labels. Problems become `SetupError`s naming
the path and the fix.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app.settings import SetupError

log = logging.getLogger("gair.app")


def manifest_kind(manifest: dict) -> str:
    """ "world" for a demo index (also an older manifest with only "world"), else the source
    kind the manifest records ("rasters", "prepared"; "unknown" when it records none)."""
    source = manifest.get("source") or {}
    if source.get("kind"):
        return str(source["kind"])
    return "world" if manifest.get("world") else "unknown"


def source_kind(source) -> str:
    """kind of an opened source; a `gair.world.World` without the attribute is "world"."""
    return str(getattr(source, "kind", None) or "world")


def open_source(
    index_dir: Path, manifest: dict, override: Path | None, index_name: str, run_dir: Path
):
    """The index's RS source, or SetupError. `override`: the `--world` / GAIR_WORLD path;
    `run_dir`: the checkpoint (a raster source reads its bands and chip size from it)."""
    kind = manifest_kind(manifest)
    if kind == "world":
        return _open_demo(index_dir, manifest, override)
    from index.sources import open_index_source

    fix = f"gair app --index {index_name} --world PATH   # where the imagery is now"
    try:
        source = open_index_source(index_dir, manifest, override=override, run_dir=run_dir)
    except FileNotFoundError as err:
        raise SetupError(
            f"The imagery of the index at `{index_name}` is missing: {err}", fix
        ) from err
    except (ValueError, OSError) as err:
        raise SetupError(
            f"The imagery of the index at `{index_name}` cannot be read: {err}", fix
        ) from err
    _warn_on_other_fingerprint(manifest, source)
    return source


def _open_demo(index_dir: Path, manifest: dict, override: Path | None):
    """The demo world of a demo index (`override` when given, else the recorded one)."""
    from gair.world import World
    from index.search import recorded_path

    path = override if override is not None else recorded_path(index_dir, manifest, "world")
    try:
        world = World.open(path)
    except FileNotFoundError as err:
        raise SetupError(
            f"No demo world at `{path}`.", f"gair world build --out {path}   # or: make world"
        ) from err
    except ValueError as err:
        raise SetupError(
            f"The world at `{path}` cannot be read: {err}", f"gair world build --out {path}"
        ) from err
    _warn_on_other_fingerprint(manifest, world)
    return world


def _warn_on_other_fingerprint(manifest: dict, source) -> None:
    expected = (manifest.get("source") or {}).get("fingerprint") or (
        manifest.get("world") or {}
    ).get("fingerprint")
    got = getattr(source, "fingerprint", None)
    if expected and got and expected != got:
        log.warning(
            "the imagery %r has fingerprint %s, the index was built on %s", source, got, expected
        )


def demo_world(source):
    """The `gair.world.World` behind a demo index's source, else None."""
    return source if source_kind(source) == "world" else None


def source_has_labels(source) -> bool:
    """Whether the source carries ground truth (only the demo world does)."""
    return bool(getattr(source, "has_labels", source_kind(source) == "world"))
