"""Named preprocessing presets (the `preprocess` section of a model config), as plain data.

Torch-free on purpose: gair.config imports it to build its presets, and light tools (the CLI's
help) must not pay for torch. The normalizers that apply these settings are in gair.preprocess.
"""

from __future__ import annotations

import copy

# -- the official GAIR release's preprocessing (GAIR-NOTES.md) --------------------------------
# Sentinel-2 L2A bands of the release's 12-band chips (B10 is not an L2A band).
S2_L2A_BANDS = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12"]
# The 10 bands the release's RS encoder takes (the same list as gair.config.S2_GAIR_BANDS).
OFFICIAL_RS_BANDS = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
OFFICIAL_RS_MEAN = [
    1172.9397, 1378.0846, 1509.3327, 1750.0275, 2073.2758,
    2207.3283, 2245.1629, 2284.6384, 2231.7283, 1899.1932,
]  # fmt: skip
OFFICIAL_RS_STD = [
    706.6250, 720.1862, 783.1424, 707.1962, 714.2782,
    748.1827, 852.3585, 762.0849, 690.0165, 669.9036,
]  # fmt: skip
OFFICIAL_SV_MEAN = [135.4718, 142.2862, 145.1227]  # RGB, in 0..255 units
OFFICIAL_SV_STD = [59.1998, 59.3528, 72.0230]

PREPROCESS_PRESETS: dict[str, dict] = {
    # RS: 12-band L2A (or already 10-band) chips -> B2..B8A, B11, B12 -> quantised to k/255 ->
    # bicubic to the model's size. SV: (RGB 0..255 - mean) / std, then bicubic to the model's
    # size. Resizes use align_corners=False and no antialiasing.
    "official": {
        "rs": {
            "kind": "s2-quantize",
            "source_bands": S2_L2A_BANDS,
            "mean": OFFICIAL_RS_MEAN,
            "std": OFFICIAL_RS_STD,
            "resize": "bicubic",
        },
        "sv": {
            "scale": 1.0,
            "mean": OFFICIAL_SV_MEAN,
            "std": OFFICIAL_SV_STD,
            "resize": "bicubic",
        },
    },
}


def preprocess_preset(name: str) -> dict:
    """A copy of a named preprocessing preset (the `preprocess` section of a model config)."""
    if name not in PREPROCESS_PRESETS:
        raise ValueError(
            f"unknown preprocessing preset {name!r}; known: {sorted(PREPROCESS_PRESETS)}"
        )
    return copy.deepcopy(PREPROCESS_PRESETS[name])
