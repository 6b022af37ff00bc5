"""CROMA-style ViT with 2D-ALiBi attention: the RS encoder of the official GAIR release.

Written from the documented behaviour (GAIR-NOTES.md, "The official release's interface"):

- the image [B, C, H, W] is cut into p x p patches, each flattened channel-major (for each
  channel, its p x p pixels row by row) and embedded by `linear_input` Linear(p*p*C, D);
  patches (tokens) are in row-major order; there is no positional embedding and no class token;
- `depth` pre-norm residual blocks `transformer.layers.{n}`: `.0` attention (LayerNorm ->
  `to_qkv` Linear(D, 3D, no bias) -> heads of D/heads -> scores * (D/heads)^-0.5 + 2D-ALiBi
  bias -> softmax -> `to_out` Linear(D, D)) and `.1` feed-forward (LayerNorm -> `net.0`
  Linear(D, 4D) -> exact GELU -> `net.3` Linear(4D, D)); LayerNorms use PyTorch's eps 1e-5;
- no final norm; the output is the token grid [B, D, h, w].

2D-ALiBi: the bias between patches p and q is -slope_head * (euclidean distance between their
grid positions, in patch units); the slopes are ALiBi's geometric sequence (16 heads:
2^-0.5, 2^-1, ..., 2^-8).

Submodule names follow the release's state-dict keys under `rs_encoder.s2_encoder.`, so the
import mapping (gair.official) is a plain prefix change.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from gair.encoders.registry import register

FFN_MULT = 4


def alibi_slopes(heads: int) -> list[float]:
    """ALiBi's per-head slopes: for a power of two n, 2^(-8/n), 2^(-16/n), ..., 2^-8; otherwise
    the slopes of the largest power of two m < n, then every other slope of 2m."""
    if heads <= 0:
        raise ValueError(f"heads must be positive, got {heads}")

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_two(heads)
    m = 2 ** math.floor(math.log2(heads))
    return power_of_two(m) + alibi_slopes(2 * m)[0::2][: heads - m]


def alibi_2d_bias(heads: int, grid: int) -> torch.Tensor:
    """[heads, N, N] bias, N = grid*grid patches in row-major order:
    bias[h, p, q] = -slope_h * ||pos(p) - pos(q)||, positions (row, col) in patch units."""
    rows, cols = torch.meshgrid(
        torch.arange(grid, dtype=torch.float64),
        torch.arange(grid, dtype=torch.float64),
        indexing="ij",
    )
    pos = torch.stack([rows.reshape(-1), cols.reshape(-1)], -1)  # [N, 2], row-major
    dist = torch.cdist(pos, pos, compute_mode="donot_use_mm_for_euclid_dist")  # [N, N] float64
    slopes = torch.tensor(alibi_slopes(heads), dtype=torch.float32)
    return -(dist.to(torch.float32).unsqueeze(0) * slopes.view(-1, 1, 1))


class Attention(nn.Module):
    """Pre-norm multi-head self-attention with an additive bias (`.0` of a release block)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.input_norm = nn.LayerNorm(width)  # eps 1e-5 (PyTorch default), as in the release
        self.to_qkv = nn.Linear(width, 3 * width, bias=False)
        self.to_out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        # to_qkv output is [q | k | v], each split into heads as (heads, d/heads)
        qkv = self.to_qkv(self.input_norm(x)).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, N, d/heads]
        # softmax(q k^T * (d/heads)^-0.5 + bias) v
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.to_out(out.transpose(1, 2).reshape(b, n, d))


class FeedForward(nn.Module):
    """Pre-norm MLP (`.1` of a release block): LayerNorm -> Linear -> GELU -> Linear."""

    def __init__(self, width: int, mult: int = FFN_MULT):
        super().__init__()
        self.input_norm = nn.LayerNorm(width)
        # index 2 is the release's (inactive) dropout slot, so the Linears sit at net.0 / net.3
        self.net = nn.Sequential(
            nn.Linear(width, mult * width),
            nn.GELU(),  # exact (erf) GELU
            nn.Identity(),
            nn.Linear(mult * width, width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.input_norm(x))


class Transformer(nn.Module):
    """`layers.{n}` = ModuleList([Attention, FeedForward]), residual around each; no final norm."""

    def __init__(self, width: int, depth: int, heads: int):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([Attention(width, heads), FeedForward(width)]) for _ in range(depth)
        )

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        for attn, ffn in self.layers:
            x = x + attn(x, bias)
            x = x + ffn(x)
        return x


class CromaViT(nn.Module):
    """RS encoder: [B, C, S, S] -> token grid [B, D, S/p, S/p]. Attribute `width` = D."""

    def __init__(self, cfg: dict):
        super().__init__()
        width, heads = cfg["width"], cfg["heads"]
        if width % heads:
            raise ValueError(f"config rs.width={width} is not divisible by rs.heads={heads}")
        self.in_chans = len(cfg["bands"])
        self.img_size = cfg["img_size"]
        self.patch_size = cfg["patch_size"]
        self.grid = self.img_size // self.patch_size
        self.width = width
        self.linear_input = nn.Linear(self.patch_size * self.patch_size * self.in_chans, width)
        self.transformer = Transformer(width, cfg["depth"], heads)
        # derived from the config, so not part of the state dict
        self.register_buffer("attn_bias", alibi_2d_bias(heads, self.grid), persistent=False)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, S, S] -> [B, N, C*p*p]: row-major patches, each flattened as (channel, row, col)."""
        b, c, _, _ = x.shape
        p, g = self.patch_size, self.grid
        x = x.reshape(b, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5)  # [B, gh, gw, C, p, p]
        return x.reshape(b, g * g, c * p * p)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, S, S] -> tokens [B, N, D] in row-major patch order."""
        if x.ndim != 4 or x.shape[1:] != (self.in_chans, self.img_size, self.img_size):
            raise ValueError(
                f"rs must be [B, {self.in_chans}, {self.img_size}, {self.img_size}], got {tuple(x.shape)}"
            )
        tokens = self.linear_input(self.patchify(x))
        return self.transformer(tokens, self.attn_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.forward_tokens(x)
        b, n, d = tokens.shape
        return tokens.transpose(1, 2).reshape(b, d, self.grid, self.grid)


@register("rs", "croma_vit")
def build_croma_vit(cfg: dict, embed_dim: int) -> nn.Module:
    return CromaViT(cfg)
