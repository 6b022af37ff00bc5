"""GAIR: geo-aligned implicit representations of remote-sensing, street-view and location data.

Public API (DESIGN.md): `build_model`, `save_model`, `load_model`; model methods `encode_rs`,
`query_rs`, `encode_sv`, `encode_location`; `gair.geo.to_chip_coords`.
"""

__version__ = "0.1.0"

from gair.checkpoint import load_model, save_model  # noqa: E402
from gair.model import GAIR, build_model  # noqa: E402

__all__ = ["GAIR", "build_model", "load_model", "save_model", "__version__"]
