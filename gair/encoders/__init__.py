"""Encoders, registered by name (see `registry`). Importing this package registers the built-ins."""

from gair.encoders import (  # noqa: F401  (registration side effects)
    croma,
    hf_vit,
    location,
    release_location,
    vit,
)
from gair.encoders.registry import build_encoder, register, registered

__all__ = ["build_encoder", "register", "registered"]
