"""The official GAIR release's location encoder: our GeoCLIP-style `LocationEncoder` (same
modules, same state dict) with the Equal Earth projection evaluated in GeoCLIP's float32
order of operations.

Why a variant: the sigma = 2^8 branch multiplies the projected coordinates by random Fourier
frequencies of magnitude up to ~1000, so a one-ulp difference in the projected (x, y) moves the
cos/sin features by ~1e-4. Evaluating the projection's polynomial in the same order as the
release (x = 2 sqrt(3) lon cos(theta) / (3 (9 A4 theta^8 + 7 A3 theta^6 + 3 A2 theta^2 + A1)),
y = A4 theta^9 + A3 theta^7 + A2 theta^3 + A1 theta, sqrt(3) as a float32 tensor) keeps our
location embeddings on the release's to float32 round-off rather than ~2e-5 away.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gair.encoders.location import A1, A2, A3, A4, EQUAL_EARTH_SCALE, LocationEncoder
from gair.encoders.registry import register


def equal_earth_release_order(latlon: torch.Tensor) -> torch.Tensor:
    """(..., 2) (lat, lon) degrees -> (..., 2) Equal Earth (x, y) * 66.50336/180, computed in
    the release's (GeoCLIP's) order of floating-point operations."""
    lat = torch.deg2rad(latlon[..., 0])
    lon = torch.deg2rad(latlon[..., 1])
    sqrt3 = torch.sqrt(torch.tensor(3.0, dtype=latlon.dtype, device=latlon.device))
    theta = torch.asin((sqrt3 / 2) * torch.sin(lat))
    denominator = 3 * (9 * A4 * theta**8 + 7 * A3 * theta**6 + 3 * A2 * theta**2 + A1)
    x = (2 * sqrt3 * lon * torch.cos(theta)) / denominator
    y = A4 * theta**9 + A3 * theta**7 + A2 * theta**3 + A1 * theta
    return (torch.stack((x, y), -1) * EQUAL_EARTH_SCALE) / 180


class ReleaseLocationEncoder(LocationEncoder):
    """(..., 2) (lat, lon) degrees -> (..., E); the branches' sum, as in `LocationEncoder`."""

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        v = equal_earth_release_order(latlon.to(self.branches[0].b.dtype))
        out = self.branches[0](v)
        for branch in self.branches[1:]:
            out = out + branch(v)
        return out


@register("location", "geoclip_release")
def build_release_location(cfg: dict, embed_dim: int) -> nn.Module:
    if cfg.get("init") == "geoclip":
        raise ValueError(
            "location.encoder='geoclip_release' takes its weights from an imported release "
            "checkpoint (gair import-official); location.init must be null"
        )
    return ReleaseLocationEncoder(cfg, embed_dim)
