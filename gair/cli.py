"""The `gair` command line. Subcommands register themselves:
- library commands (world, data, import-official) are listed in BUILTIN below;
- train/index/eval/app/demo live in their own packages and register through the
  "gair.commands" entry-point group (pyproject.toml), so `gair` never imports them directly.

Each command module exposes `register(subparsers)`, which adds a parser whose default `func`
takes the parsed args and returns an exit code. Exit codes: 0 success, 2 bad input.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from importlib.metadata import entry_points

BUILTIN: list[str] = [
    "gair.world.cli",
    "gair.data.cli",
    "gair.evaluation.cli",
    "gair.official_cli",
]

EXIT_OK, EXIT_BAD_INPUT = 0, 2

# The documented failures: bad input, a missing, unreadable or damaged file, a wrong checkpoint.
# Loaders raise these with one line naming the thing and the fix (exit 2); any other exception
# is a bug and keeps its traceback (exit 1).
EXPECTED_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gair", description="GAIR Explorer command line")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in BUILTIN:
        importlib.import_module(module).register(sub)
    for ep in sorted(entry_points(group="gair.commands"), key=lambda e: e.name):
        try:
            register = ep.load()
        except ImportError as err:  # a broken plugin must not take the whole CLI down
            logging.getLogger(__name__).warning("command %r unavailable: %s", ep.name, err)
            continue
        register(sub)
    return parser


def fail(message: str, as_json: bool = False) -> int:
    """Report bad input on stderr (and as JSON on stdout with --json); return exit code 2."""
    if as_json:
        print(json.dumps({"error": message}))
    print(f"gair: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except EXPECTED_ERRORS as err:
        return fail(str(err) or type(err).__name__, getattr(args, "json", False))


if __name__ == "__main__":
    sys.exit(main())
