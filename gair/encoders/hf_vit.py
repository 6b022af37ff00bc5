"""A ViT in HuggingFace's layout with its tanh pooler: the SV encoder of the official GAIR release.

Written from the documented behaviour (GAIR-NOTES.md) of a HuggingFace-layout ViT:

- `embeddings`: `patch_embeddings.projection` Conv2d(3, D, p, stride p) -> tokens in row-major
  patch order; a learned `cls_token` [1, 1, D] is prepended; learned `position_embeddings`
  [1, 1 + N, D] are added;
- `encoder.layer.{n}`: pre-norm residual blocks. `layernorm_before` -> separate `query`, `key`,
  `value` Linears (with bias) under `attention.attention`, heads of D/heads,
  softmax(q k^T / sqrt(D/heads)) v -> `attention.output.dense`; residual. `layernorm_after` ->
  `intermediate.dense` (D -> 4D) -> exact GELU -> `output.dense` (4D -> D); residual;
- final `layernorm`; every LayerNorm uses eps 1e-12;
- output = tanh(`pooler.dense`(final-layernormed CLS token)), [B, D].

Submodule names equal the release's keys under `sv_encoder.`, so the import maps them 1:1.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from gair.encoders.registry import register

LN_EPS = 1e-12
MLP_MULT = 4


class _Dense(nn.Module):
    """A holder of one Linear named `dense` (HF's ViTSelfOutput / ViTIntermediate / ViTOutput /
    ViTPooler all keep their Linear under that name)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)


class _PatchEmbeddings(nn.Module):
    def __init__(self, patch_size: int, width: int):
        super().__init__()
        self.projection = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x).flatten(2).transpose(1, 2)  # [B, N, D], row-major patches


class Embeddings(nn.Module):
    def __init__(self, img_size: int, patch_size: int, width: int):
        super().__init__()
        n_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position_embeddings = nn.Parameter(torch.zeros(1, 1 + n_patches, width))
        self.patch_embeddings = _PatchEmbeddings(patch_size, width)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.position_embeddings, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embeddings(x)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return torch.cat([cls, patches], 1) + self.position_embeddings


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x))
        )
        return out.transpose(1, 2).reshape(b, n, d)


class AttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attention = SelfAttention(width, heads)
        self.output = _Dense(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.attention(x))


class Layer(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attention = AttentionBlock(width, heads)
        self.intermediate = _Dense(width, MLP_MULT * width)
        self.output = _Dense(MLP_MULT * width, width)
        self.layernorm_before = nn.LayerNorm(width, eps=LN_EPS)
        self.layernorm_after = nn.LayerNorm(width, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.layernorm_before(x))
        hidden = F.gelu(self.intermediate(self.layernorm_after(x)))  # exact (erf) GELU
        return x + self.output(hidden)


class Encoder(nn.Module):
    def __init__(self, width: int, depth: int, heads: int):
        super().__init__()
        self.layer = nn.ModuleList(Layer(width, heads) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x)
        return x


class HFViTPooled(nn.Module):
    """SV encoder: [B, 3, S, S] -> tanh pooler output [B, D]. Attribute `width` = D."""

    def __init__(self, cfg: dict):
        super().__init__()
        width, heads = cfg["width"], cfg["heads"]
        if width % heads:
            raise ValueError(f"config sv.width={width} is not divisible by sv.heads={heads}")
        self.in_chans = 3
        self.img_size = cfg["img_size"]
        self.width = width
        self.embeddings = Embeddings(cfg["img_size"], cfg["patch_size"], width)
        self.encoder = Encoder(width, cfg["depth"], heads)
        self.layernorm = nn.LayerNorm(width, eps=LN_EPS)
        self.pooler = _Dense(width, width)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] -> final-layernormed tokens [B, 1 + N, D] (CLS first)."""
        if x.ndim != 4 or x.shape[1:] != (3, self.img_size, self.img_size):
            raise ValueError(
                f"sv must be [B, 3, {self.img_size}, {self.img_size}], got {tuple(x.shape)}"
            )
        return self.layernorm(self.encoder(self.embeddings(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.pooler(self.forward_tokens(x)[:, 0]))


@register("sv", "hf_vit")
def build_hf_vit(cfg: dict, embed_dim: int) -> nn.Module:
    return HFViTPooled(cfg)
