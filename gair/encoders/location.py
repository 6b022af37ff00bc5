"""GeoCLIP-style location encoder: Equal Earth projection -> random Fourier features at several
scales -> one MLP per scale -> summed. Optionally initialised from the weights that the `geoclip`
PyPI package ships (read with `weights_only=True`; geoclip's own classes are never imported).
"""

from __future__ import annotations

import math
from importlib import util as importlib_util
from pathlib import Path

import torch
import torch.nn as nn

from gair.encoders.registry import register

# Equal Earth projection constants (Savric, Patterson & Jenny 2018) and GeoCLIP's scale factor.
A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
EQUAL_EARTH_SCALE = 66.50336


def equal_earth(latlon: torch.Tensor) -> torch.Tensor:
    """(..., 2) (lat, lon) degrees -> (..., 2) Equal Earth (x, y), scaled by 66.50336/180.

    x grows with longitude, y with latitude; both lie in about [-1, 1] for the whole globe.
    """
    lat = torch.deg2rad(latlon[..., 0])
    lon = torch.deg2rad(latlon[..., 1])
    theta = torch.asin(math.sqrt(3.0) / 2.0 * torch.sin(lat))
    t2 = theta * theta
    t6 = t2 * t2 * t2
    denom = 3.0 * (9.0 * A4 * t6 * t2 + 7.0 * A3 * t6 + 3.0 * A2 * t2 + A1)
    x = 2.0 * math.sqrt(3.0) * lon * torch.cos(theta) / denom
    y = A1 * theta + A2 * theta**3 + A3 * theta**7 + A4 * theta**9
    return torch.stack([x, y], -1) * (EQUAL_EARTH_SCALE / 180.0)


class FourierBranch(nn.Module):
    """One scale: fixed Gaussian RFF matrix `b` [F, 2] -> [cos, sin] (2F) -> MLP -> head."""

    def __init__(self, sigma: float, n_freq: int, hidden: int, depth: int, out_dim: int, seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("b", torch.randn(n_freq, 2, generator=gen) * sigma)
        layers: list[nn.Module] = []
        width = 2 * n_freq
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.mlp = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, out_dim)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        # Phases reach ~1e3 rad at sigma 256: under bf16 autocast they would be random, so the
        # Fourier features are computed in float32 with autocast off; the MLP may run in bf16.
        with torch.autocast(device_type=v.device.type, enabled=False):
            proj = 2.0 * math.pi * v.float() @ self.b.float().T
            feats = torch.cat([torch.cos(proj), torch.sin(proj)], -1)
        return self.head(self.mlp(feats))


class LocationEncoder(nn.Module):
    """(..., 2) (lat, lon) degrees -> (..., E) location embedding (not normalised)."""

    def __init__(self, cfg: dict, embed_dim: int):
        super().__init__()
        self.branches = nn.ModuleList(
            FourierBranch(
                float(s), cfg["n_freq"], cfg["hidden"], cfg["depth"], embed_dim, cfg["seed"] + i
            )
            for i, s in enumerate(cfg["sigmas"])
        )

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        v = equal_earth(latlon.to(self.branches[0].b.dtype))
        out = self.branches[0](v)
        for branch in self.branches[1:]:
            out = out + branch(v)
        return out


def geoclip_weights_path() -> Path:
    """Path of the pretrained location-encoder weights inside the installed `geoclip` package."""
    spec = importlib_util.find_spec("geoclip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "location.init='geoclip' needs the geoclip package's files: pip install --no-deps geoclip==1.3.0"
        )
    path = (
        Path(next(iter(spec.submodule_search_locations)))
        / "model/weights/location_encoder_weights.pth"
    )
    if not path.is_file():
        raise FileNotFoundError(f"GeoCLIP location weights not found at {path}")
    return path


def load_geoclip_weights(encoder: LocationEncoder, path: Path | None = None) -> list[str]:
    """Copy GeoCLIP's branch weights (`LocEnc{i}.capsule.*`, `.head.0.*`) into `encoder`.

    RFF matrices and MLPs must match GeoCLIP's shapes (256 frequencies, hidden 1024, depth 3);
    the head is copied only when the embedding size is GeoCLIP's 512. Returns the names of our
    parameters that kept their fresh initialisation (the heads, when E != 512).
    """
    state = torch.load(path or geoclip_weights_path(), map_location="cpu", weights_only=True)
    kept_fresh: list[str] = []
    with torch.no_grad():
        for i, branch in enumerate(encoder.branches):
            prefix = f"LocEnc{i}."
            pairs = [(branch.b, state[prefix + "capsule.0.b"], f"branches.{i}.b")]
            linears = [m for m in branch.mlp if isinstance(m, nn.Linear)]
            for j, lin in enumerate(linears):
                idx = 1 + 2 * j  # capsule = [rff, Linear, ReLU, Linear, ReLU, Linear, ReLU]
                pairs.append(
                    (
                        lin.weight,
                        state[f"{prefix}capsule.{idx}.weight"],
                        f"branches.{i}.mlp.{2 * j}.weight",
                    )
                )
                pairs.append(
                    (
                        lin.bias,
                        state[f"{prefix}capsule.{idx}.bias"],
                        f"branches.{i}.mlp.{2 * j}.bias",
                    )
                )
            for ours, theirs, name in pairs:
                if ours.shape != theirs.shape:
                    raise ValueError(
                        f"GeoCLIP tensor for {name} has shape {tuple(theirs.shape)}, ours {tuple(ours.shape)}: "
                        "use location.n_freq=256, hidden=1024, depth=3 with init='geoclip'"
                    )
                ours.copy_(theirs)
            head_w, head_b = state[prefix + "head.0.weight"], state[prefix + "head.0.bias"]
            if branch.head.weight.shape == head_w.shape:
                branch.head.weight.copy_(head_w)
                branch.head.bias.copy_(head_b)
            else:
                kept_fresh += [f"branches.{i}.head.weight", f"branches.{i}.head.bias"]
    return kept_fresh


@register("location", "geoclip")
def build_location(cfg: dict, embed_dim: int) -> nn.Module:
    encoder = LocationEncoder(cfg, embed_dim)
    if cfg.get("init") == "geoclip":
        load_geoclip_weights(encoder)
    return encoder
