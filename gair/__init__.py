"""GAIR: geo-aligned implicit representations of remote-sensing, street-view and location data.

Public API (DESIGN.md): `build_model`, `save_model`, `load_model`; model methods `encode_rs`,
`query_rs`, `encode_sv`, `encode_location`; `gair.geo.to_chip_coords`.
Names are imported lazily so that `gair --help` and light tools do not pay for torch/timm.
"""

__version__ = "0.1.0"

_LAZY = {
    "GAIR": "gair.model",
    "build_model": "gair.model",
    "load_model": "gair.checkpoint",
    "save_model": "gair.checkpoint",
}

__all__ = ["GAIR", "build_model", "load_model", "save_model", "__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gair' has no attribute {name!r}")
