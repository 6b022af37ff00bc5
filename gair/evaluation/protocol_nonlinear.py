"""The nonlinear probes of `gair.evaluation.protocol`: kNN and an MLP early-stopped on the val
split (same conventions: standardised features, `predict` / `predict_proba` / `logits`,
`export()` as plain tensors where a deployed head can hold it)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.special import softmax
from sklearn.neighbors import NearestNeighbors

from gair.evaluation.protocol import (  # noqa: F401  (shared helpers and constants)
    ABSENT_LOGIT,
    KINDS,
    STD_FLOOR,
    _check_kind,
    _check_x,
    _check_y,
    _standardiser,
    _to_tensor,
)

# ---------------------------------------------------------------------------------------------
# kNN
# ---------------------------------------------------------------------------------------------


@dataclass
class KNNProbe:
    """k nearest training points (Euclidean, standardised features): vote fractions or mean."""

    kind: str
    k: int
    n_classes: int | None
    x_mean: np.ndarray = field(repr=False)
    x_std: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    index: NearestNeighbors = field(repr=False)

    def _neighbours(self, x) -> np.ndarray:
        x = _check_x(x)
        if x.shape[1] != self.x_mean.shape[0]:
            raise ValueError(
                f"x has {x.shape[1]} features, the probe expects {self.x_mean.shape[0]}"
            )
        idx = self.index.kneighbors((x - self.x_mean) / self.x_std, return_distance=False)
        return self.y[idx]  # [N, k]

    def predict_proba(self, x) -> np.ndarray:
        """Vote fractions [N, C] over all n_classes (classification only)."""
        if self.kind != "classification":
            raise ValueError("predict_proba() is only defined for classification probes")
        votes = self._neighbours(x)
        rows = np.repeat(np.arange(votes.shape[0]), votes.shape[1])
        counts = np.zeros((votes.shape[0], self.n_classes))
        np.add.at(counts, (rows, votes.ravel()), 1.0)
        return counts / votes.shape[1]

    def predict(self, x) -> np.ndarray:
        """Majority class [N] (lowest index on ties) or neighbour mean [N]."""
        if self.kind == "classification":
            return self.predict_proba(x).argmax(1)
        return self._neighbours(x).mean(1)

    def export(self) -> dict:
        raise NotImplementedError(
            "a kNN probe has no fixed-size tensor export (it needs the whole training set)"
        )


def fit_knn(x, y, kind: str, n_classes: int | None = None, k: int = 5) -> KNNProbe:
    """kNN probe on standardised features. x [N, D], y [N]; k is capped at N.

    Querying with training points themselves counts each point as its own neighbour.
    """
    _check_kind(kind)
    x = _check_x(x)
    y = _check_y(y, x.shape[0], kind, n_classes)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, x.shape[0])
    xm, xsd = _standardiser(x)
    index = NearestNeighbors(n_neighbors=k).fit((x - xm) / xsd)
    return KNNProbe(kind, k, n_classes, xm, xsd, y, index)


# ---------------------------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------------------------


class _MLP(nn.Module):
    def __init__(self, d: int, hidden: int, out: int):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.drop = nn.Dropout(0.1)
        self.fc2 = nn.Linear(hidden, out)

    def forward(self, xs: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.relu(self.fc1(xs))))


@dataclass
class MLPProbe:
    """out = relu(((x - x_mean) / x_std) @ w1.T + b1) @ w2.T + b2 (float32).

    Regression: value = out[:, 0] * y_std + y_mean. Classification: logits = out [N, C].
    """

    kind: str
    x_mean: torch.Tensor = field(repr=False)  # [D]
    x_std: torch.Tensor = field(repr=False)  # [D]
    net: _MLP = field(repr=False)
    y_mean: torch.Tensor = field(repr=False)  # [out]
    y_std: torch.Tensor = field(repr=False)  # [out]
    best_epoch: int  # 1-based epoch whose weights were kept
    epochs_run: int
    best_val_loss: float

    @torch.no_grad()
    def _out(self, x) -> np.ndarray:
        x = _check_x(x)
        if x.shape[1] != self.x_mean.shape[0]:
            raise ValueError(
                f"x has {x.shape[1]} features, the probe expects {self.x_mean.shape[0]}"
            )
        xt = torch.as_tensor(x, dtype=torch.float32)
        return self.net.eval()((xt - self.x_mean) / self.x_std).numpy()

    def logits(self, x) -> np.ndarray:
        """Class logits [N, C] (classification only)."""
        if self.kind != "classification":
            raise ValueError("logits() is only defined for classification probes")
        return self._out(x)

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities [N, C] (classification only)."""
        return softmax(self.logits(x).astype(np.float64), axis=1)

    def predict(self, x) -> np.ndarray:
        """Class indices [N] (classification) or values [N] in target units (regression)."""
        if self.kind == "classification":
            return self.logits(x).argmax(1)
        value = self._out(x)[:, 0] * self.y_std[0].item() + self.y_mean[0].item()
        return value.astype(np.float64)

    def export(self) -> dict:
        """{"kind": "mlp", x_mean, x_std, w1 [H, D], b1 [H], w2 [out, H], b2 [out], y_mean,
        y_std} as float32 tensors."""
        return {
            "kind": "mlp",
            "x_mean": self.x_mean.clone(),
            "x_std": self.x_std.clone(),
            "w1": self.net.fc1.weight.detach().clone(),
            "b1": self.net.fc1.bias.detach().clone(),
            "w2": self.net.fc2.weight.detach().clone(),
            "b2": self.net.fc2.bias.detach().clone(),
            "y_mean": self.y_mean.clone(),
            "y_std": self.y_std.clone(),
        }


def fit_mlp(
    x,
    y,
    kind: str,
    n_classes: int | None,
    x_val,
    y_val,
    hidden: int = 256,
    max_epochs: int = 200,
    patience: int = 10,
    weight_decay: float = 1e-4,
    lr: float = 1e-3,
    batch: int = 256,
    seed: int = 0,
) -> MLPProbe:
    """One-hidden-layer MLP (Linear-ReLU-Dropout(0.1)-Linear), AdamW, shuffled minibatches.

    x [N, D], y [N]; x_val [M, D], y_val [M] are the validation split, used only for early
    stopping: training stops after ``patience`` epochs without a lower validation loss
    (cross-entropy, or MSE on the standardised target) and the best epoch's weights are kept
    (``.best_epoch``, 1-based; ``.epochs_run``). Classes absent from y get a fixed logit
    ABSENT_LOGIT (during training too). Deterministic for a seed; the caller's global torch RNG
    state and thread settings are left unchanged.
    """
    _check_kind(kind)
    x = _check_x(x)
    y = _check_y(y, x.shape[0], kind, n_classes)
    x_val = _check_x(x_val, "x_val")
    y_val = _check_y(y_val, x_val.shape[0], kind, n_classes, "y_val")
    if x_val.shape[1] != x.shape[1]:
        raise ValueError(f"x_val has {x_val.shape[1]} features, x has {x.shape[1]}")
    for name, v in (("hidden", hidden), ("max_epochs", max_epochs), ("patience", patience)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")

    xm, xsd = _standardiser(x)
    x_mean, x_std = _to_tensor(xm), _to_tensor(xsd)
    xt = (torch.as_tensor(x, dtype=torch.float32) - x_mean) / x_std
    xv = (torch.as_tensor(x_val, dtype=torch.float32) - x_mean) / x_std
    if kind == "regression":
        out = 1
        ym, ysd = y.mean(), max(y.std(), STD_FLOOR)
        y_mean, y_std = torch.tensor([ym], dtype=torch.float32), torch.tensor([ysd])
        yt = torch.as_tensor((y - ym) / ysd, dtype=torch.float32)[:, None]
        yv = torch.as_tensor((y_val - ym) / ysd, dtype=torch.float32)[:, None]
        mask = torch.zeros(1)
        loss_fn = F.mse_loss
    else:
        out = n_classes
        y_mean, y_std = torch.zeros(out), torch.ones(out)
        yt, yv = torch.as_tensor(y), torch.as_tensor(y_val)
        seen = np.bincount(y, minlength=n_classes) > 0
        mask = torch.as_tensor(np.where(seen, 0.0, ABSENT_LOGIT), dtype=torch.float32)
        loss_fn = F.cross_entropy

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _MLP(x.shape[1], hidden, out)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        best_loss, best_epoch, best_state = float("inf"), 0, copy.deepcopy(net.state_dict())
        epoch = 0
        for epoch in range(1, max_epochs + 1):
            net.train()
            for idx in torch.randperm(xt.shape[0], generator=gen).split(batch):
                opt.zero_grad()
                loss_fn(net(xt[idx]) + mask, yt[idx]).backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                val_loss = loss_fn(net(xv) + mask, yv).item()
            if val_loss < best_loss:
                best_loss, best_epoch = val_loss, epoch
                best_state = copy.deepcopy(net.state_dict())
            elif epoch - best_epoch >= patience:
                break
    net.load_state_dict(best_state)
    with torch.no_grad():  # bake the absent-class mask into the output layer
        absent = mask != 0
        net.fc2.weight[absent] = 0.0
        net.fc2.bias[absent] = ABSENT_LOGIT
    return MLPProbe(kind, x_mean, x_std, net.eval(), y_mean, y_std, best_epoch, epoch, best_loss)
