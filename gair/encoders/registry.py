"""A tiny registry of encoder builders, so a config can name its encoder (timm's pattern).

Builders take the config section (dict) plus `embed_dim` and return an nn.Module:
- RS encoders: forward(rs [B,C,H,W]) -> token grid [B,D,h,w]; attribute `width` = D.
- SV encoders: forward(sv [B,3,H,W]) -> pooled [B,D_sv]; attribute `width` = D_sv.
- Location encoders: forward(latlon [...,2]) -> [...,E].
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

_REGISTRY: dict[str, dict[str, Callable[..., nn.Module]]] = {"rs": {}, "sv": {}, "location": {}}


def register(kind: str, name: str):
    """Decorator: register a builder `fn(cfg: dict, embed_dim: int) -> nn.Module` under kind/name."""
    if kind not in _REGISTRY:
        raise ValueError(f"unknown encoder kind {kind!r}; kinds: {sorted(_REGISTRY)}")

    def wrap(fn):
        if name in _REGISTRY[kind]:
            raise ValueError(f"{kind} encoder {name!r} is registered twice")
        _REGISTRY[kind][name] = fn
        return fn

    return wrap


def build_encoder(kind: str, cfg: dict, embed_dim: int) -> nn.Module:
    """Build the encoder `cfg["encoder"]` of `kind` ("rs", "sv" or "location")."""
    name = cfg["encoder"]
    if name not in _REGISTRY[kind]:
        raise ValueError(f"unknown {kind} encoder {name!r}; registered: {sorted(_REGISTRY[kind])}")
    return _REGISTRY[kind][name](cfg, embed_dim)


def registered(kind: str) -> list[str]:
    """Names registered for a kind."""
    return sorted(_REGISTRY[kind])
