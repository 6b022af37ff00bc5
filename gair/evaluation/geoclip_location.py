"""GeoCLIP's pretrained location encoder, as an evaluation baseline (`gair eval`).

The weights ship inside the `geoclip` PyPI package (`geoclip/model/weights/
location_encoder_weights.pth`); importing that package needs `transformers` for its image
encoder, so the location encoder is rebuilt here from its published architecture (Vivanco et al.,
2023): lat/lon -> Equal Earth projection -> for each of three random-Fourier-feature scales
(sigma 1, 16, 256) a 3-layer ReLU MLP and a linear head to 512 -> the sum of the three. The
weights are read with `torch.load(weights_only=True)` (a plain state dict, no code).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

SIGMAS = (2.0**0, 2.0**4, 2.0**8)
_A1, _A2, _A3, _A4, _SCALE = 1.340264, -0.081106, 0.000893, 0.003796, 66.50336


def weights_path() -> Path:
    """The package's weight file, found without importing the package."""
    spec = importlib.util.find_spec("geoclip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the geoclip package is not installed (requirements-data.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / "model/weights"
    path = path / "location_encoder_weights.pth"
    if not path.is_file():
        raise FileNotFoundError(f"GeoCLIP location weights not found at {path}")
    return path


def equal_earth(latlon: torch.Tensor) -> torch.Tensor:
    """[N, 2] degrees -> [N, 2] Equal Earth x, y scaled as GeoCLIP scales them."""
    lat, lon = torch.deg2rad(latlon[:, 0]), torch.deg2rad(latlon[:, 1])
    theta = torch.asin(math.sqrt(3.0) / 2.0 * torch.sin(lat))
    den = 3.0 * (9 * _A4 * theta**8 + 7 * _A3 * theta**6 + 3 * _A2 * theta**2 + _A1)
    x = 2.0 * math.sqrt(3.0) * lon * torch.cos(theta) / den
    y = _A4 * theta**9 + _A3 * theta**7 + _A2 * theta**3 + _A1 * theta
    return torch.stack([x, y], 1) * _SCALE / 180.0


class _Scale(nn.Module):
    """One Fourier-feature scale: b [256, 2] -> cos/sin [512] -> MLP -> [512]."""

    def __init__(self):
        super().__init__()
        self.b = nn.Parameter(torch.zeros(256, 2), requires_grad=False)
        self.mlp = nn.Sequential(
            nn.Linear(512, 1024),
            nn.ReLU(),
            nn.Linear(1024, 1024),
            nn.ReLU(),
            nn.Linear(1024, 1024),
            nn.ReLU(),
            nn.Linear(1024, 512),
        )

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        proj = 2.0 * math.pi * xy @ self.b.T
        return self.mlp(torch.cat([torch.cos(proj), torch.sin(proj)], -1))


class GeoCLIPLocation(nn.Module):
    """latlon [N, 2] degrees -> [N, 512] GeoCLIP location features (unnormalised)."""

    def __init__(self):
        super().__init__()
        self.scales = nn.ModuleList(_Scale() for _ in SIGMAS)

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        xy = equal_earth(latlon)
        return sum(s(xy) for s in self.scales)

    @classmethod
    def pretrained(cls, path: str | Path | None = None) -> GeoCLIPLocation:
        state = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
        model = cls()
        mapped = {}
        for i in range(len(SIGMAS)):  # the release's names -> ours
            p = f"LocEnc{i}."
            mapped[f"scales.{i}.b"] = state[p + "capsule.0.b"]
            for ours, theirs in ((0, 1), (2, 3), (4, 5)):
                for t in ("weight", "bias"):
                    mapped[f"scales.{i}.mlp.{ours}.{t}"] = state[f"{p}capsule.{theirs}.{t}"]
            for t in ("weight", "bias"):
                mapped[f"scales.{i}.mlp.6.{t}"] = state[f"{p}head.0.{t}"]
        model.load_state_dict(mapped, strict=True)
        return model.eval()


@torch.no_grad()
def geoclip_features(latlon: np.ndarray, batch: int = 8192) -> np.ndarray:
    """GeoCLIP location features [N, 512] float32 of points [N, 2] (lat, lon degrees)."""
    model = GeoCLIPLocation.pretrained()
    ll = torch.as_tensor(np.asarray(latlon, np.float32).reshape(-1, 2))
    return torch.cat([model(ll[i : i + batch]) for i in range(0, len(ll), batch)]).numpy()
