"""Held-out validation of pre-training: what is held out, and what is measured on it every epoch.

The training loss of a pretext task is noisy (a random band and random masks per sample)
and in-sample. Every epoch the trainer therefore evaluates the objective on a fixed set of
held-out crops, with fixed target bands and fixed masks (drawn from their own seeded RNG,
so the training stream is untouched and a resumed run stays bit-exact), and early stopping
and the exported weights follow that validation loss.

What is held out (:func:`split_train_val`): for a single cube, a band of rows at its bottom
(a spatially separate region that no training crop touches); for a data set, whole cubes;
for the simulator, cubes of another seed.

What is measured (:class:`PretextValidation`), beside the pretext loss, for S3R objectives
(every number a mean over the validation crops unless said otherwise):

* ``cr_l1``: ``sum_i |beta^_i - beta~_i|`` (S3R-CR's own loss), next to ``cr_l1_zeros``
  (predicting all zeros) and ``cr_l1_band_mean`` (predicting, for band b, the mean beta~ of
  band b over the training crops: what a head that ignores the image can do);
* ``locality``: the share of ``|beta^|`` within +-2 bands of b (the paper's Fig. 3 shape),
  next to ``locality_closed_form`` (the same share of ``|beta~|``);
* ``br_error``: the median over crops of ``||Y_b - sum_i beta^_i Y_i||^2 / ||Y_b - mean(Y_b)||^2``
  (the share of band b's variance left unexplained), next to ``br_error_closed_form``
  (beta~, the least-squares floor) and ``br_error_band_mean``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ..data.datasets import CubeDataset
from ..data.simulated_sets import SyntheticHSI
from ..lowrank import gram, loo_coefficients
from ..train import Objective
from .objectives import S3RObjective
from .targets import coefficient_targets

__all__ = ["pretext_verdict", "split_train_val", "PretextValidation", "crop_grams", "mean_coefficients", "validation_crops",
           "coefficient_metrics", "summarize"]


def split_train_val(ds: Any, fraction: float, crop: int, seed: int, val_crops: int) -> tuple[Any, Optional[Any], str]:
    """(training data, held-out data or None, what was held out)."""
    if fraction <= 0:
        return ds, None, "none"
    if isinstance(ds, SyntheticHSI):
        n_val = max(4, math.ceil(fraction * len(ds)))
        val = SyntheticHSI(ds.preset, n=n_val, size=ds.size, seed=ds.seed + 7919, difficulty=ds.difficulty)
        return ds, val, f"{n_val} simulated cubes of another seed"
    if not isinstance(ds, CubeDataset):
        raise ValueError(f"validation: cannot hold out part of a {type(ds).__name__}; use --val-fraction 0")
    common = dict(classes=ds.classes, crop=ds.crop, nan=ds.nan, read_options=ds.read_options)
    if len(ds.items) == 1:
        h, w = ds.cube(0).shape[:2]
        ds._check_crop(0, h, w)  # a crop larger than the cube: that error first
        held = max(crop, round(fraction * h))
        if h - held < crop:
            raise ValueError(f"{ds.items[0][0]}: {h} rows cannot hold a training region and a held-out region of "
                             f"at least one {crop}-px crop each; lower --crop or --val-fraction")
        train = CubeDataset(ds.items, crops_per_cube=ds.crops_per_cube, seed=ds.seed, rows=(0, h - held), **common)
        val = CubeDataset(ds.items, crops_per_cube=val_crops, seed=seed + 1, rows=(h - held, h), **common)
        return train, val, f"the bottom {held} of {h} rows (a region no training crop touches)"
    n = len(ds.items)
    n_val = max(1, round(fraction * n))
    if n - n_val < 1:
        raise ValueError(f"--val-fraction {fraction}: {n} cubes leave none for training")
    order = np.random.default_rng(seed).permutation(n)
    val_items = [ds.items[i] for i in sorted(order[:n_val])]
    train_items = [ds.items[i] for i in sorted(order[n_val:])]
    train = CubeDataset(train_items, crops_per_cube=ds.crops_per_cube, seed=ds.seed, **common)
    val = CubeDataset(val_items, crops_per_cube=math.ceil(val_crops / n_val), seed=seed + 1, **common)
    return train, val, f"{n_val} of {n} cubes"


def validation_crops(val: Any, n: int) -> torch.Tensor:
    """The first ``n`` items of the held-out data as one ``(n, B, H, W)`` tensor (fixed positions)."""
    n = min(n, len(val))
    return torch.stack([val[i][0] for i in range(n)])


def crop_grams(ds: Any, n: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per crop of the first ``n`` training crops: Gram matrices ``(n, B, B)`` and band sums
    ``(n, B)`` (float64), and the pixels per crop; read once, for the target-band rule and the
    validation baseline alike."""
    grams, sums, pixels = [], [], 0
    for i in range(min(n, len(ds))):
        x = ds[i][0]
        pix = x.reshape(x.shape[0], -1).T.double()
        grams.append(gram(pix))
        sums.append(pix.sum(0))
        pixels = pix.shape[0]
    return torch.stack(grams), torch.stack(sums), pixels


def mean_coefficients(grams: torch.Tensor, ridge: float) -> torch.Tensor:
    """``(B, B)``: row b is the mean beta~ of band b over the crops of ``grams`` (float64)."""
    return loo_coefficients(grams, ridge).mean(0)


def _unexplained(cube: torch.Tensor, band: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Per sample: ``||Y_b - sum_i beta_i Y_i||^2 / ||Y_b - mean(Y_b)||^2`` (float64)."""
    x = cube.double().flatten(2)
    target = x[torch.arange(x.shape[0]), band]
    pred = torch.einsum("nb,nbp->np", beta.double(), x)
    tss = ((target - target.mean(1, keepdim=True)) ** 2).sum(1)
    return ((target - pred) ** 2).sum(1) / tss.clamp_min(torch.finfo(torch.float64).tiny)


def _locality(beta: torch.Tensor, band: torch.Tensor, width: int = 2) -> torch.Tensor:
    idx = torch.arange(beta.shape[1], device=beta.device)[None]
    near = (idx - band[:, None]).abs() <= width
    a = beta.abs().double()
    return (a * near).sum(1) / a.sum(1).clamp_min(1e-12)


class PretextValidation:
    """``validate(objective) -> {"loss": ..., metrics}`` on fixed held-out crops.

    Args:
        crops: Raw held-out crops ``(N, B, H, W)``.
        band_mean_beta: ``(B, B)`` mean beta~ per band on the training crops (the baseline), or None.
        seed: Seed of the validation's target bands and masks (the same every epoch).
        batch_size: Crops per forward pass.
        autocast: Zero-argument callable returning the training's autocast context.
        ridge: The closed-form targets' ridge.
    """

    def __init__(self, crops: torch.Tensor, band_mean_beta: Optional[torch.Tensor], seed: int, batch_size: int,
                 autocast: Callable[[], Any], ridge: float):
        self.crops, self.band_mean_beta, self.seed = crops, band_mean_beta, seed
        self.batch_size, self.autocast, self.ridge = batch_size, autocast, ridge

    @torch.no_grad()
    def __call__(self, objective: Objective) -> dict:
        device = objective.mean.device
        devices = [device.index or 0] if device.type == "cuda" else []
        was = objective.training
        objective.eval()
        parts: dict[str, list] = {}
        weighted_loss, count = 0.0, 0
        with torch.random.fork_rng(devices=devices):  # its own stream: training's RNG is untouched
            torch.manual_seed(self.seed)
            if device.type == "cuda":
                torch.cuda.manual_seed(self.seed)
            for start in range(0, len(self.crops), self.batch_size):
                x = self.crops[start:start + self.batch_size].to(device)
                with self.autocast():
                    out = objective(x)
                weighted_loss += float(out["loss"]) * len(x)
                count += len(x)
                if isinstance(objective, S3RObjective):
                    per_crop = coefficient_metrics(x, out["band"], out["beta_hat"], self.ridge, self.band_mean_beta)
                    for k, v in per_crop.items():
                        parts.setdefault(k, []).append(v.cpu())
        objective.train(was)
        metrics = {"loss": weighted_loss / count, "crops": count}
        metrics.update(summarize({k: torch.cat(chunks) for k, chunks in parts.items()}))
        return metrics


def coefficient_metrics(x: torch.Tensor, band: torch.Tensor, beta_hat: torch.Tensor, ridge: float,
                        band_mean_beta: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
    """Per crop ``(N,)`` float64: the module docstring's metrics of ``beta_hat`` and their baselines.

    Args:
        x: Raw, unmasked crops ``(N, B, H, W)``.
        band: Target band per crop ``(N,)``.
        beta_hat: Predicted coefficients ``(N, B)``.
        ridge: The closed-form targets' ridge.
        band_mean_beta: ``(B, B)`` mean beta~ per band on the training crops, or None (no baseline rows).
    """
    beta_true = coefficient_targets(x, band, ridge)
    m = {"cr_l1": (beta_hat.double() - beta_true).abs().sum(1), "cr_l1_zeros": beta_true.abs().sum(1),
         "locality": _locality(beta_hat, band), "locality_closed_form": _locality(beta_true, band),
         "br_error": _unexplained(x, band, beta_hat), "br_error_closed_form": _unexplained(x, band, beta_true)}
    if band_mean_beta is not None:
        base = band_mean_beta.to(x.device)[band]
        m["cr_l1_band_mean"] = (base - beta_true).abs().sum(1)
        m["br_error_band_mean"] = _unexplained(x, band, base)
    return m


def summarize(parts: dict[str, torch.Tensor]) -> dict[str, float]:
    """One number per metric: the median over crops for the ``br_error`` family (a few flat crops
    of glass have a tiny variance of band b and an unbounded ratio), the mean for the others."""
    return {k: float(v.median() if k.startswith("br_error") else v.mean()) for k, v in parts.items()}


METRIC_ORDER: Sequence[str] = ("loss", "cr_l1", "cr_l1_band_mean", "cr_l1_zeros", "locality", "locality_closed_form",
                               "br_error", "br_error_closed_form", "br_error_band_mean")


def pretext_verdict(metrics: Optional[dict]) -> list[str]:
    """Warnings, one sentence each, where a run's held-out pretext metrics are not better than a baseline that
    needs no encoder (predicting zeros, each band's mean beta~); [] when they are, or nothing was measured.
    A pretext metric is a proxy: passing says the head learnt something, not that the features are good."""
    m = metrics or {}
    out = []
    if isinstance(m.get("cr_l1"), (int, float)):
        zeros, band_mean = m.get("cr_l1_zeros"), m.get("cr_l1_band_mean")
        if zeros is not None and m["cr_l1"] >= zeros:
            out.append(f"held-out CR L1 {m['cr_l1']:.3f} is not below predicting zeros ({zeros:.3f}): the coefficient "
                       f"head has not learnt the targets")
        elif band_mean is not None and m["cr_l1"] >= band_mean:
            out.append(f"held-out CR L1 {m['cr_l1']:.3f} is not below predicting each band's mean beta~ "
                       f"({band_mean:.3f}): the head predicts no more than the average, so the encoder need not have "
                       f"learnt anything")
    if isinstance(m.get("br_error"), (int, float)) and isinstance(m.get("br_error_band_mean"), (int, float)):
        if m["br_error"] > m["br_error_band_mean"]:
            floor = m.get("br_error_closed_form")
            out.append(f"held-out BR unexplained variance {m['br_error']:.4f} is above the band-mean beta~ baseline "
                       f"({m['br_error_band_mean']:.4f}"
                       + (f"; least-squares floor {floor:.4f}" if isinstance(floor, (int, float)) else "") + ")")
    return out
