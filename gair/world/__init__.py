"""The embedded demo world: a global RS raster, label layers, street-view locations, spatial
splits and a ground-level view renderer, built by `gair world build` only from data shipped in
PyPI packages (docs/WORLD.md, DATA.md).

    from gair.world import World
    world = World.open("data/world")
    rs, rs_bbox = world.chip(latlon, 32)
    world.labels(latlon); world.render_view(latlon, heading_deg=90, seed=0)
"""

from gair.world.build import DEFAULT_WORLD_DIR, WORLD_FORMAT_VERSION, build_world
from gair.world.world import IGBP_CLASSES, KOPPEN_CLASSES, World, WorldNotFoundError

__all__ = [
    "DEFAULT_WORLD_DIR",
    "IGBP_CLASSES",
    "KOPPEN_CLASSES",
    "WORLD_FORMAT_VERSION",
    "World",
    "WorldNotFoundError",
    "build_world",
]


def __getattr__(name):  # WorldTriples imports torch; load it only when asked for
    if name == "WorldTriples":
        from gair.world.dataset import WorldTriples

        return WorldTriples
    raise AttributeError(f"module 'gair.world' has no attribute {name!r}")
