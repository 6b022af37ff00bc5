"""GAIR's optimisation recipe: AdamW with no weight decay on biases, norms and other 1-d
parameters (and the names a module lists in `no_weight_decay()`, e.g. timm's pos_embed and
cls_token); lr = base_lr * effective batch / 256; linear warm-up then half-cosine, per step.

Buffers (the location encoder's random Fourier matrices, a fixed loss temperature, the SECL
coordinate queue) are not parameters, so the optimiser never sees them.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def no_decay_names(model: nn.Module) -> set[str]:
    """Parameter names that take no weight decay."""
    listed: set[str] = set()
    for prefix, module in model.named_modules():
        fn = getattr(module, "no_weight_decay", None)
        if callable(fn):
            listed |= {f"{prefix}.{n}" if prefix else n for n in fn()}
    return {
        name
        for name, p in model.named_parameters()
        if p.ndim <= 1 or name.endswith(".bias") or name in listed
    }


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    skip = no_decay_names(model)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name in skip else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def scaled_lr(base_lr: float, batch_size: int, accumulate: int, world_size: int) -> float:
    """lr = base_lr * effective batch / 256, effective = batch * accumulation * devices * nodes."""
    return base_lr * batch_size * accumulate * world_size / 256.0


def warmup_cosine(warmup_steps: int, total_steps: int, floor: float = 0.0):
    """LR factor per optimizer step: linear warm-up to 1, then half-cosine down to `floor`.

    A plain function (not an object): LambdaLR then keeps only its step count in the resume
    state, so a resumed run follows the schedule of its current config (e.g. a longer
    --max-steps) from the restored step instead of the one frozen into the checkpoint.
    """
    warmup_steps = int(warmup_steps)
    total_steps = max(int(total_steps), warmup_steps + 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_optimizer(
    model: nn.Module, opt_cfg: dict, world_size: int, steps_per_epoch: int, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR, dict]:
    """AdamW + warm-up/cosine schedule for a validated `optimizer:` config section.

    Returns (optimizer, scheduler, info) where info records the resolved numbers.
    """
    lr = scaled_lr(opt_cfg["base_lr"], opt_cfg["batch_size"], opt_cfg["accumulate"], world_size)
    warmup = opt_cfg["warmup_steps"] or round(opt_cfg["warmup_epochs"] * steps_per_epoch)
    warmup = min(warmup, max(total_steps - 1, 0))
    optimizer = torch.optim.AdamW(
        param_groups(model, opt_cfg["weight_decay"]),
        lr=lr,
        betas=tuple(opt_cfg["betas"]),
        eps=opt_cfg["eps"],
    )
    floor = min(1.0, opt_cfg["min_lr"] / lr) if lr > 0 else 0.0
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(warmup, total_steps, floor)
    )
    info = {
        "lr": lr,
        "effective_batch": opt_cfg["batch_size"] * opt_cfg["accumulate"] * world_size,
        "warmup_steps": warmup,
        "total_steps": total_steps,
        "steps_per_epoch": steps_per_epoch,
    }
    return optimizer, scheduler, info
