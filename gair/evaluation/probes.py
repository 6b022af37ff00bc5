"""Frozen-embedding probes (linear and a small MLP) trained full-batch with torch, and metrics."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Probe(nn.Module):
    """Standardise inputs -> linear or one-hidden-layer MLP. Regression outputs are de-standardised."""

    def __init__(self, in_dim: int, out_dim: int, kind: str, hidden: int = 128):
        super().__init__()
        self.register_buffer("x_mean", torch.zeros(in_dim))
        self.register_buffer("x_std", torch.ones(in_dim))
        self.register_buffer("y_mean", torch.zeros(out_dim))
        self.register_buffer("y_std", torch.ones(out_dim))
        if kind == "linear":
            self.net = nn.Linear(in_dim, out_dim)
        else:
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.x_mean) / self.x_std) * self.y_std + self.y_mean


def fit_probe(
    x: np.ndarray,
    y: np.ndarray,
    task_kind: str,
    n_out: int,
    probe: str,
    seed: int,
    steps: int = 200,
) -> Probe:
    """Train a probe on features x [N, D] and targets y [N] (class indices or values)."""
    torch.manual_seed(seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    model = Probe(xt.shape[1], n_out, probe)
    model.x_mean.copy_(xt.mean(0))
    model.x_std.copy_(xt.std(0).clamp_min(1e-6))
    if task_kind == "regression":
        yt = torch.as_tensor(y, dtype=torch.float32).reshape(-1, 1)
        model.y_mean.copy_(yt.mean(0))
        model.y_std.copy_(yt.std(0).clamp_min(1e-6))
    else:
        yt = torch.as_tensor(y, dtype=torch.long)
    opt = torch.optim.AdamW(
        model.parameters(), lr=1e-2 if probe == "linear" else 3e-3, weight_decay=1e-2
    )
    for _ in range(steps):
        opt.zero_grad()
        out = model.net((xt - model.x_mean) / model.x_std)
        if task_kind == "regression":
            loss = F.mse_loss(out, (yt - model.y_mean) / model.y_std)
        else:
            loss = F.cross_entropy(out, yt)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def predict(model: Probe, x: np.ndarray, task_kind: str) -> np.ndarray:
    out = model(torch.as_tensor(x, dtype=torch.float32))
    return out[:, 0].numpy() if task_kind == "regression" else out.argmax(-1).numpy()


@torch.no_grad()
def predict_proba(model: Probe, x: np.ndarray) -> np.ndarray:
    return model(torch.as_tensor(x, dtype=torch.float32)).softmax(-1).numpy()


def score(task_kind: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Classification: accuracy and macro-F1; regression: R^2 and MAE."""
    if task_kind == "regression":
        resid = np.sum((y_true - y_pred) ** 2)
        total = np.sum((y_true - y_true.mean()) ** 2)
        return {
            "r2": float(1 - resid / total) if total > 0 else 0.0,
            "mae": float(np.mean(np.abs(y_true - y_pred))),
        }
    f1s = []
    for c in np.unique(y_true):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        f1s.append(2 * tp / max(2 * tp + fp + fn, 1))
    return {"accuracy": float(np.mean(y_true == y_pred)), "macro_f1": float(np.mean(f1s))}


HIGHER_IS_BETTER = {"accuracy": True, "macro_f1": True, "r2": True, "mae": False}
