"""The GAIR module: RS, SV and location encoders, the INR point query and the losses.

Raw outputs here are not normalised (they match the official release's tensors); the
`gair.embed.Embedder` is what hands L2-normalised embeddings to the rest of the product.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gair import geo
from gair.config import resolve_config
from gair.encoders import build_encoder
from gair.inr import build_point_query
from gair.losses import GAIRLoss

# Query points may sit this far outside their chip (in chip units) before it is an error;
# float round-off at the edge of a bbox is not the caller's fault.
CHIP_TOLERANCE = 1e-3


class GAIR(nn.Module):
    """GAIR. Build with `gair.build_model(config)`; `self.config` is the full resolved config."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        embed_dim = config["embed_dim"]
        self.rs_encoder = build_encoder("rs", config["rs"], embed_dim)
        self.sv_encoder = build_encoder("sv", config["sv"], embed_dim)
        self.location_encoder = build_encoder("location", config["location"], embed_dim)
        self.point_query = build_point_query(config["inr"], self.rs_encoder.width, embed_dim)
        # SV backbone width -> E, then the release's `optical_proj` (E -> E) when comparing.
        sv_width = self.sv_encoder.width
        self.sv_head = nn.Identity() if sv_width == embed_dim else nn.Linear(sv_width, embed_dim)
        self.sv_proj = nn.Linear(embed_dim, embed_dim) if config["sv_proj"] else nn.Identity()
        self.criterion = GAIRLoss(config["loss"])

    # -- shapes and validation -------------------------------------------------------------
    @property
    def rs_bands(self) -> int:
        return len(self.config["rs"]["bands"])

    def _check_image(self, x: torch.Tensor, name: str, channels: int, size: int) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise ValueError(
                f"{name} must be a float tensor [B, {channels}, {size}, {size}], got {shape}"
            )
        if x.shape[1] != channels:
            raise ValueError(
                f"{name} has {x.shape[1]} bands/channels, this model expects {channels}"
                + (f" ({self.config['rs']['bands']})" if name == "rs" else "")
            )
        if x.shape[2] != size or x.shape[3] != size:
            raise ValueError(
                f"{name} is {x.shape[2]}x{x.shape[3]} px, this model expects {size}x{size}"
            )
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf values")

    # -- public API (DESIGN.md) -------------------------------------------------------------
    def encode_rs(self, rs: torch.Tensor) -> torch.Tensor:
        """RS chips [B, C, H, W] (normalised) -> token grid [B, D, h, w]."""
        self._check_image(rs, "rs", self.rs_bands, self.config["rs"]["img_size"])
        return self.rs_encoder(rs)

    def query_rs(
        self, tokens: torch.Tensor, rs_bbox: torch.Tensor, latlon: torch.Tensor
    ) -> torch.Tensor:
        """INR point query: tokens [B, D, h, w], rs_bbox [B, 4] (W, S, E, N), latlon [B, N, 2]
        -> [B, N, E]. Every point must lie inside its chip's bbox."""
        if tokens.ndim != 4:
            raise ValueError(f"tokens must be [B, D, h, w], got {tuple(tokens.shape)}")
        rs_bbox = torch.as_tensor(rs_bbox, dtype=torch.float64, device=tokens.device)
        latlon = torch.as_tensor(latlon, dtype=torch.float64, device=tokens.device)
        if rs_bbox.shape != (tokens.shape[0], 4):
            raise ValueError(
                f"rs_bbox must be [B={tokens.shape[0]}, 4], got {tuple(rs_bbox.shape)}"
            )
        if latlon.ndim != 3 or latlon.shape[0] != tokens.shape[0] or latlon.shape[2] != 2:
            raise ValueError(
                f"latlon must be [B={tokens.shape[0]}, N, 2], got {tuple(latlon.shape)}"
            )
        geo.validate_bbox(rs_bbox)
        latlon = geo.validate_latlon(latlon)
        xy = geo.to_chip_coords(latlon, rs_bbox.unsqueeze(1))  # float64 for precision near edges
        outside = xy.abs() > 1 + CHIP_TOLERANCE
        if bool(outside.any()):
            b, n, _ = torch.nonzero(outside)[0].tolist()
            raise ValueError(
                f"point {latlon[b, n].tolist()} (lat, lon) lies outside its chip bbox {rs_bbox[b].tolist()}"
            )
        return self.point_query(tokens, xy.clamp(-1, 1).to(tokens.dtype))

    def encode_sv(self, sv: torch.Tensor) -> torch.Tensor:
        """SV images [B, 3, H, W] (normalised) -> [B, E] (before `sv_proj`)."""
        self._check_image(sv, "sv", 3, self.config["sv"]["img_size"])
        return self.sv_head(self.sv_encoder(sv))

    def project_sv(self, sv_embedding: torch.Tensor) -> torch.Tensor:
        """Map `encode_sv` output into the space shared with INR and location embeddings."""
        return self.sv_proj(sv_embedding)

    def encode_location(self, latlon: torch.Tensor) -> torch.Tensor:
        """(lat, lon) degrees [..., 2] -> [..., E]."""
        # validate and wrap in float64, then let the encoder cast: wrapping after a float32 cast
        # moves longitudes by an ulp
        latlon = geo.validate_latlon(torch.as_tensor(latlon, dtype=torch.float64))
        device = next(self.location_encoder.parameters()).device
        return self.location_encoder(latlon.to(device))

    def logit_scale(self) -> float:
        """1 / tau: the temperature the contrastive losses were trained with (used to read
        location scores as a posterior, see `gair.geolocate`)."""
        return float(self.criterion.logit_scale())

    def encode_rs_global(self, rs: torch.Tensor) -> torch.Tensor:
        """Global RS embedding: mean of the token grid, [B, D] (the release's RS embedding)."""
        return self.encode_rs(rs).mean((2, 3))

    def forward(self, batch: dict) -> dict:
        """Loss terms for a batch of samples: keys rs [B,C,H,W], rs_bbox [B,4], sv [B,3,H,W],
        latlon [B,2]. Returns {"incl", "secl_sv", "secl_rs", "loss"} plus the embeddings
        "z" (RS-INR) and "s" (projected SV), each [B, E], detached."""
        missing = [k for k in ("rs", "rs_bbox", "sv", "latlon") if k not in batch]
        if missing:
            raise ValueError(f"batch is missing keys {missing}")
        latlon = geo.validate_latlon(batch["latlon"])
        tokens = self.encode_rs(batch["rs"])
        z = self.query_rs(tokens, batch["rs_bbox"], latlon.unsqueeze(1))[:, 0]
        s = self.project_sv(self.encode_sv(batch["sv"]))
        out = self.criterion(z, s, latlon.to(z.dtype), self.location_encoder)
        out["z"], out["s"] = z.detach(), s.detach()
        return out


def build_model(config: str | dict = "tiny") -> GAIR:
    """An untrained GAIR from a preset name ("tiny", "paper") or a config dict."""
    return GAIR(resolve_config(config))
