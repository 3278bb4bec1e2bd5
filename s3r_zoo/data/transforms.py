"""Augmentations for B-band tensors (fine-tuning; docs/method.md: scale, rotation, noise).

The geometry of every sample (random resized crop, 90-degree and arbitrary rotation, flips) is one affine
map, so a whole batch is resampled by one ``grid_sample`` on its own device: no per-sample loop and no
host round trip, which on a GPU made fine-tuning seven times slower than pre-training (6 against 44
ResNet-18 steps/s at 32 x 41 x 128 x 128 on an H200, where the noise of each sample was drawn on the
CPU). Draws come from an explicit :class:`torch.Generator` when one is given (reproducible under a seed
whatever the number of DataLoader workers), else from the RNG of the batch's device, which the trainer
seeds and checkpoints. Nothing looks at band count: any B works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .device import upload

__all__ = ["affine_views", "HSIAugment"]

_COS = (1.0, 0.0, -1.0, 0.0)  # rotation by k x 90 degrees, exact
_SIN = (0.0, 1.0, 0.0, -1.0)


def _draw(fn, shape: tuple, generator: Optional[torch.Generator], device) -> torch.Tensor:
    """``fn`` (``torch.rand`` or ``torch.randn``) draws from ``generator`` (moved to ``device``), or from
    ``device``'s own RNG."""
    if generator is None:
        return fn(shape, device=device)
    out = fn(shape, generator=generator)
    return out if device is None else upload(out, device)


def affine_views(n: int, h: int, w: int, scale: Optional[tuple[float, float]] = (0.4, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), rot90: bool = True, flips: bool = True,
                 max_degrees: float = 0.0, device=None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``(n, 2, 3)`` random affine maps (``F.affine_grid``'s ``theta``, ``align_corners=False``) from an
    augmented sample's normalised coordinates to the input's: a crop of area fraction in ``scale`` and
    aspect in ``ratio`` (clipped to the input; ``scale=None``: the whole input), a rotation by a multiple
    of 90 degrees (square inputs, ``rot90``) plus a uniform angle in +-``max_degrees``, and a flip of each
    axis with probability 1/2 (``flips``). All off: the identity map."""
    u = _draw(torch.rand, (n, 8 if max_degrees else 7), generator, device)  # 7 columns: the views of before
    if scale is None:
        ch, cw = torch.full((n,), float(h), device=u.device), torch.full((n,), float(w), device=u.device)
    else:
        area = h * w * (scale[0] + (scale[1] - scale[0]) * u[:, 0])
        aspect = torch.exp(math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1])
        ch = torch.sqrt(area / aspect).clamp(1, h)
        cw = torch.sqrt(area * aspect).clamp(1, w)
    cy = (ch / 2 + u[:, 2] * (h - ch)) * (2 / h) - 1  # crop centre, normalised
    cx = (cw / 2 + u[:, 3] * (w - cw)) * (2 / w) - 1
    flip = torch.where(u[:, 4:6] < 0.5, -1.0, 1.0) if flips else torch.ones(n, 2, device=u.device)
    k = (u[:, 6] * 4).long().clamp(max=3) if rot90 and h == w else torch.zeros(n, dtype=torch.long, device=u.device)
    cos, sin = torch.tensor(_COS, device=u.device)[k], torch.tensor(_SIN, device=u.device)[k]
    if max_degrees:
        t = torch.deg2rad(max_degrees * (2 * u[:, 7] - 1))
        cos, sin = cos * torch.cos(t) - sin * torch.sin(t), sin * torch.cos(t) + cos * torch.sin(t)
    # theta = diag(crop half-extent) @ rotation @ diag(flip), then the crop centre
    sx, sy = cw / w, ch / h
    row_x = torch.stack([sx * cos * flip[:, 0], -sx * sin * flip[:, 1], cx], dim=1)
    row_y = torch.stack([sy * sin * flip[:, 0], sy * cos * flip[:, 1], cy], dim=1)
    return torch.stack([row_x, row_y], dim=1)


@dataclass
class HSIAugment:
    """The fine-tuning augmentation: scale, rotation (90-degree and arbitrary), flips, noise.

    Apply to normalised tensors ``(B, H, W)`` or ``(N, B, H, W)``: ``noise_std`` is then in units of per-band
    std. Set a field to None / 0 / False to disable that step.
    """

    scale: Optional[tuple[float, float]] = (0.6, 1.0)
    rot90: bool = True
    max_degrees: float = 0.0
    flips: bool = True
    noise_std: float = 0.02

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None,
                 part: Optional[tuple[int, slice]] = None) -> torch.Tensor:
        """``x`` augmented, each sample by its own draws. ``part`` = (global batch size, this process's slice)
        (:meth:`~s3r_zoo.train.Objective.global_batch`): the draws are made for the global batch and sliced,
        so N processes under torchrun augment each sample as one process would."""
        xb = x[None] if x.ndim == 3 else x
        n, b, h, w = xb.shape
        total, mine = part if part is not None else (n, slice(None))
        out = xb
        if self.scale is not None or self.rot90 or self.max_degrees or self.flips:
            theta = affine_views(total, h, w, self.scale, rot90=self.rot90, flips=self.flips,
                                 max_degrees=self.max_degrees, device=xb.device, generator=generator)[mine]
            grid = F.affine_grid(theta, [n, b, h, w], align_corners=False)
            out = F.grid_sample(xb.float(), grid, mode="bilinear", padding_mode="reflection",
                                align_corners=False).to(xb.dtype)
        if self.noise_std:
            out = out + self.noise_std * _draw(torch.randn, (total, b, h, w), generator, xb.device)[mine].to(out.dtype)
        return out[0] if x.ndim == 3 else out
