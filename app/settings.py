"""The app's configuration: where the index, the imagery and the checkpoint are, and which
device runs the model. First found wins:

- index dir:  `--index` after `streamlit run app/main.py --`, env `GAIR_INDEX`, `data/index`
- imagery:    `--world`, env `GAIR_WORLD`, the index manifest's source (or `world.path`)
- checkpoint: `--checkpoint`, env `GAIR_CHECKPOINT`, the index manifest's `checkpoint`
- device:     `--device`, env `GAIR_DEVICE`, "auto" (CUDA when torch sees a GPU, else the CPU)

Nothing here imports torch or Streamlit.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

DEFAULT_INDEX = "data/index"
DEVICES = ("auto", "cpu", "cuda")


class SetupError(RuntimeError):
    """Something the app needs is missing or inconsistent; `command` builds/fixes it."""

    def __init__(self, message: str, command: str | None = None):
        super().__init__(message)
        self.message = message
        self.command = command


def check_device(device: str | None) -> str:
    """ "auto", "cpu" or "cuda" (also "cuda:N"); SetupError naming the choices otherwise."""
    name = str(device or "auto").strip().lower()
    if name in DEVICES or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise SetupError(
        f"Unknown device {device!r}: use one of {', '.join(DEVICES)} (--device or GAIR_DEVICE).",
        "gair app --device auto",
    )


def embedder_device(device: str) -> str | None:
    """What to hand the Embedder: None for "auto" (`gair.embed.resolve_device` picks CUDA when
    available, once torch is imported in the background), else the device itself."""
    device = check_device(device)
    return None if device == "auto" else device


@dataclass(frozen=True)
class Settings:
    index: str
    world: str | None = None
    checkpoint: str | None = None
    device: str = "auto"

    @classmethod
    def from_env(cls, argv: list[str] | None = None, environ: dict | None = None) -> Settings:
        env = os.environ if environ is None else environ
        parser = argparse.ArgumentParser(
            prog="streamlit run app/main.py --", add_help=False, allow_abbrev=False
        )
        parser.add_argument("--index")
        parser.add_argument("--world")
        parser.add_argument("--checkpoint")
        parser.add_argument("--device")
        args, _ = parser.parse_known_args(argv or [])
        return cls(
            index=args.index or env.get("GAIR_INDEX") or DEFAULT_INDEX,
            world=args.world or env.get("GAIR_WORLD") or None,
            checkpoint=args.checkpoint or env.get("GAIR_CHECKPOINT") or None,
            device=(args.device or env.get("GAIR_DEVICE") or "auto").strip().lower(),
        )
