"""timm Vision Transformers as GAIR's RS (token grid) and SV (pooled vector) encoders."""

from __future__ import annotations

import timm
import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from gair.encoders.registry import register


def _timm_vit(cfg: dict, in_chans: int, class_token: bool) -> VisionTransformer:
    kwargs = dict(
        img_size=cfg["img_size"],
        patch_size=cfg["patch_size"],
        in_chans=in_chans,
        num_classes=0,
        global_pool="token" if class_token else "",
        class_token=class_token,
    )
    if cfg.get("timm_name"):
        # One builder owns weight loading and channel/size adaptation: timm's create_model.
        return timm.create_model(cfg["timm_name"], pretrained=bool(cfg.get("pretrained")), **kwargs)
    return VisionTransformer(
        embed_dim=cfg["width"], depth=cfg["depth"], num_heads=cfg["heads"], **kwargs
    )


class ViTTokenGrid(nn.Module):
    """RS encoder: ViT without class token; returns the patch tokens as a grid [B, D, h, w]."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.in_chans = len(cfg["bands"])
        self.img_size = cfg["img_size"]
        self.vit = _timm_vit(cfg, self.in_chans, class_token=False)
        self.width = self.vit.embed_dim
        self.grid = self.img_size // cfg["patch_size"]

    def forward(self, rs: torch.Tensor) -> torch.Tensor:
        tokens = self.vit.forward_features(rs)  # [B, h*w, D], row-major patch order
        tokens = tokens[:, self.vit.num_prefix_tokens :]
        b, n, d = tokens.shape
        return tokens.transpose(1, 2).reshape(b, d, self.grid, self.grid)


class ViTPooled(nn.Module):
    """SV encoder: ViT with a class token; returns the final-norm CLS token [B, D]."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.in_chans = 3
        self.img_size = cfg["img_size"]
        self.vit = _timm_vit(cfg, 3, class_token=True)
        self.width = self.vit.embed_dim

    def forward(self, sv: torch.Tensor) -> torch.Tensor:
        return self.vit(sv)


@register("rs", "timm_vit")
def build_rs_vit(cfg: dict, embed_dim: int) -> nn.Module:
    return ViTTokenGrid(cfg)


@register("sv", "timm_vit")
def build_sv_vit(cfg: dict, embed_dim: int) -> nn.Module:
    return ViTPooled(cfg)
