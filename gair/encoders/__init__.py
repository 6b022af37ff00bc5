"""Encoders, registered by name (see `registry`). Importing this package registers the built-ins."""

from gair.encoders import location, vit  # noqa: F401  (registration side effects)
from gair.encoders.registry import build_encoder, register, registered

__all__ = ["build_encoder", "register", "registered"]
