"""Multinomial logistic regression on fixed features: the linear probe and the spectral baselines.

Features are standardised on the training rows, the L2 strength is picked on the validation
rows from a small grid (ties: the stronger penalty), and the model is fitted by L-BFGS in
float64, so the same inputs always give the same predictions. Small and deterministic on
purpose: a probe is a measurement, not a training run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["LogisticProbe", "fit_probe", "L2_GRID"]

L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


@dataclass
class LogisticProbe:
    """A fitted probe: standardisation, weights, bias and the chosen L2 strength."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray  # (D, C)
    bias: np.ndarray  # (C,)
    l2: float
    val_accuracy: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.weight + self.bias

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x).argmax(1)


def _fit(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    w = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iters, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def fit_probe(x_train: np.ndarray, y_train: Sequence[int], x_val: np.ndarray, y_val: Sequence[int],
              num_classes: int, l2_grid: Sequence[float] = L2_GRID, iters: int = 200) -> LogisticProbe:
    """Fit on (x_train, y_train) for each L2 strength, keep the best on (x_val, y_val)."""
    x_train, x_val = np.asarray(x_train, np.float64), np.asarray(x_val, np.float64)
    if x_train.ndim != 2 or x_train.shape[1] != x_val.shape[1]:
        raise ValueError(f"features: expected (N, D) train and val arrays of one D, found {x_train.shape} and "
                         f"{x_val.shape}")
    mean = x_train.mean(0)
    scale = x_train.std(0) + 1e-8
    xt = torch.from_numpy((x_train - mean) / scale)
    xv = (x_val - mean) / scale
    yt = torch.as_tensor(np.asarray(y_train), dtype=torch.long)
    yv = np.asarray(y_val)
    best = None
    for l2 in sorted(l2_grid, reverse=True):  # strongest first: ties keep the simpler model
        w, b = _fit(xt, yt, num_classes, l2, iters)
        acc = float(((xv @ w.numpy() + b.numpy()).argmax(1) == yv).mean())
        if best is None or acc > best.val_accuracy:
            best = LogisticProbe(mean, scale, w.numpy(), b.numpy(), l2, acc)
    return best
