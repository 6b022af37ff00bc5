"""GAIR's contrastive losses.

- INCL: symmetric InfoNCE between the INR-queried RS embedding z and the SV embedding s.
- SECL: InfoNCE of s (and of z) against its own location embedding, with negatives from the
  other locations of the batch and from a queue of the last K coordinates, re-encoded by the
  location encoder at every step (GeoCLIP's GPS queue), so the negatives track the encoder.
All embeddings are L2-normalised inside; shapes [B, E].
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def info_nce(query: torch.Tensor, keys: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of query i against keys, positive = key i. query [B, E], keys [M>=B, E]."""
    logits = logit_scale * F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).T
    return F.cross_entropy(logits, torch.arange(query.shape[0], device=query.device))


def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Mean of InfoNCE a->b and b->a over the batch (CLIP's loss)."""
    return 0.5 * (info_nce(a, b, logit_scale) + info_nce(b, a, logit_scale))


class CoordinateQueue(nn.Module):
    """FIFO of the last `size` raw (lat, lon) coordinates seen in training, [size, 2].

    Only filled slots are returned, so early steps use fewer negatives rather than zeros.
    """

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.register_buffer("latlon", torch.zeros(size, 2))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def filled(self) -> torch.Tensor:
        return self.latlon[: int(self.count)]

    @torch.no_grad()
    def push(self, latlon: torch.Tensor) -> None:
        if self.size == 0:
            return
        latlon = latlon.detach().reshape(-1, 2)[-self.size :].to(self.latlon.dtype)
        n, ptr = latlon.shape[0], int(self.ptr)
        idx = (torch.arange(n, device=latlon.device) + ptr) % self.size
        self.latlon[idx] = latlon
        self.ptr.fill_((ptr + n) % self.size)
        self.count.fill_(min(self.size, int(self.count) + n))


class GAIRLoss(nn.Module):
    """INCL + SECL with a weight per term and a fixed or learnable temperature."""

    def __init__(self, cfg: dict):
        super().__init__()
        init = torch.tensor(math.log(1.0 / cfg["temperature"]))
        if cfg["learn_temperature"]:
            self.log_scale = nn.Parameter(init)
        else:
            self.register_buffer("log_scale", init)
        self.weights = dict(cfg["weights"])
        self.queue = CoordinateQueue(cfg["queue_size"])

    def logit_scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=math.log(100.0)).exp()

    def forward(
        self, z: torch.Tensor, s: torch.Tensor, latlon: torch.Tensor, encode_location
    ) -> dict:
        """z: RS-INR [B, E]; s: projected SV [B, E]; latlon [B, 2]; encode_location: [M,2]->[M,E].

        Returns each term and the weighted total under "loss". Pushes the batch's coordinates
        into the queue when in training mode.
        """
        scale = self.logit_scale()
        all_latlon = torch.cat([latlon, self.queue.filled().to(latlon)], 0)
        loc = encode_location(all_latlon)  # negatives re-encoded at every step
        terms = {
            "incl": symmetric_info_nce(z, s, scale),
            "secl_sv": info_nce(s, loc, scale),
            "secl_rs": info_nce(z, loc, scale),
        }
        terms["loss"] = sum(self.weights.get(k, 0.0) * v for k, v in terms.items())
        if self.training:
            self.queue.push(latlon)
        return terms
