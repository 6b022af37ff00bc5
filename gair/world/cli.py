"""`gair world build` and `gair world info`."""

from __future__ import annotations

import json
import logging
import time

from gair.world.build import DEFAULT_WORLD_DIR

log = logging.getLogger("gair.world")


def register(subparsers) -> None:
    p = subparsers.add_parser("world", help="the embedded demo world (build it, describe it)")
    sub = p.add_subparsers(dest="world_command", metavar="WORLD_COMMAND")
    b = sub.add_parser(
        "build",
        help="build the demo world from the data packages of requirements-data.txt",
        description="Build the embedded demo world (RS raster, labels, street-view locations, "
        "splits) from data shipped in PyPI packages. A complete world already at --out is kept "
        "(a no-op) unless --force.",
    )
    b.add_argument("--out", default=str(DEFAULT_WORLD_DIR), help="output directory (%(default)s)")
    b.add_argument("--force", action="store_true", help="rebuild even if a complete world exists")
    b.add_argument("--json", action="store_true", help="print the manifest summary as JSON")
    b.set_defaults(func=_build)
    i = sub.add_parser("info", help="describe a built world")
    i.add_argument(
        "--path", "--world", dest="path", default=str(DEFAULT_WORLD_DIR), help="(%(default)s)"
    )
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=_info)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _build(args) -> int:
    from gair.world.build import build_world
    from gair.world.world import World

    t0 = time.perf_counter()
    manifest = build_world(args.out, force=args.force)
    if args.json:
        info = World(args.out, manifest).info()
        info["seconds"] = round(time.perf_counter() - t0, 2)
        print(json.dumps(info, indent=2))
    return 0


def _info(args) -> int:
    from gair.world.world import World

    info = World.open(args.path).info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    sv = info["streetviews"]
    sp = info["splits"]
    print(
        f"demo world at {info['path']} (format v{info['format_version']}, fingerprint {info['fingerprint']})"
    )
    print(
        f"  built {info['created']} in {info['build_seconds']} s, {info['size_bytes'] / 1e6:.0f} MB"
    )
    g = info["grid"]
    print(
        f"  grid {g['width']} x {g['height']} px, {g['deg_per_px']:.4f} deg/px; RS bands {info['bands']}"
    )
    for name, layer in info["layers"].items():
        print(f"  layer {name:<11} {layer['dtype']:<6} {layer['shape']}")
    print(f"  street views: {sv['count']} {sv['by_source']}")
    print(f"  splits: {sv['by_split']}")
    print(
        f"    {sp['scheme']}; training chips up to {sp['chip_px']} px placed clear of held-out "
        f"blocks; land area by split {sp['land_area_share']}"
    )
    for key, src in info["sources"].items():
        print(f"  source {key:<21} {src}")
    return 0
