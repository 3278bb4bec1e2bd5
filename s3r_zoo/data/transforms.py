"""Augmentations for B-band tensors (fine-tuning; docs/method.md: scale, rotation, noise).

Every function takes ``x`` of shape ``(B, H, W)`` or ``(N, B, H, W)`` and an explicit
:class:`torch.Generator`, so results are reproducible under a seed whatever the number
of DataLoader workers. No function looks at band count: they work for any B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .device import upload

__all__ = ["random_resized_crop", "random_rot90", "random_flip", "rotate", "random_rotate", "gaussian_noise",
           "HSIAugment"]


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand((), generator=g).item()


def _batched(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    return (x[None], True) if x.ndim == 3 else (x, False)


def random_resized_crop(x: torch.Tensor, g: torch.Generator, scale: tuple[float, float] = (0.5, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """Crop a random area fraction in ``scale`` and aspect in ``ratio``, resize back to H x W."""
    xb, single = _batched(x)
    h, w = xb.shape[-2:]
    area = h * w * _uniform(g, *scale)
    aspect = math.exp(_uniform(g, math.log(ratio[0]), math.log(ratio[1])))
    ch = int(round(min(h, math.sqrt(area / aspect))))
    cw = int(round(min(w, math.sqrt(area * aspect))))
    ch, cw = max(ch, 1), max(cw, 1)
    top = int(torch.randint(0, h - ch + 1, (), generator=g))
    left = int(torch.randint(0, w - cw + 1, (), generator=g))
    crop = xb[..., top:top + ch, left:left + cw]
    out = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)
    return out[0] if single else out


def random_rot90(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Rotate by a random multiple of 90 degrees (square inputs keep their shape)."""
    k = int(torch.randint(0, 4, (), generator=g))
    return torch.rot90(x, k, dims=(-2, -1))


def random_flip(x: torch.Tensor, g: torch.Generator, horizontal: bool = True, vertical: bool = True) -> torch.Tensor:
    if horizontal and torch.rand((), generator=g) < 0.5:
        x = torch.flip(x, dims=(-1,))
    if vertical and torch.rand((), generator=g) < 0.5:
        x = torch.flip(x, dims=(-2,))
    return x


def rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate about the centre by ``degrees`` (bilinear, reflection padding: no black corners)."""
    xb, single = _batched(x)
    t = math.radians(degrees)
    theta = torch.tensor([[math.cos(t), -math.sin(t), 0.0], [math.sin(t), math.cos(t), 0.0]],
                         dtype=xb.dtype, device=xb.device)
    grid = F.affine_grid(theta.expand(xb.shape[0], 2, 3), list(xb.shape), align_corners=False)
    out = F.grid_sample(xb, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out[0] if single else out


def random_rotate(x: torch.Tensor, g: torch.Generator, max_degrees: float) -> torch.Tensor:
    return rotate(x, _uniform(g, -max_degrees, max_degrees))


def gaussian_noise(x: torch.Tensor, g: torch.Generator, std: float) -> torch.Tensor:
    """Add i.i.d. Gaussian noise of standard deviation ``std`` (in the units of ``x``)."""
    noise = upload(torch.randn(x.shape, generator=g, dtype=torch.float32), x.device)  # per sample: no host wait
    return x + std * noise.to(x.dtype)


@dataclass
class HSIAugment:
    """The fine-tuning augmentation: scale, rotation (90-degree and arbitrary), flips, noise.

    Apply to normalised tensors: ``noise_std`` is then in units of per-band std.
    Set a field to None / 0 / False to disable that step.
    """

    scale: Optional[tuple[float, float]] = (0.6, 1.0)
    rot90: bool = True
    max_degrees: float = 0.0
    flips: bool = True
    noise_std: float = 0.02

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        g = generator if generator is not None else torch.Generator().manual_seed(
            int(torch.randint(0, 2**62, ())))
        if self.scale is not None:
            x = random_resized_crop(x, g, self.scale)
        if self.rot90 and x.shape[-1] == x.shape[-2]:
            x = random_rot90(x, g)
        if self.max_degrees:
            x = random_rotate(x, g, self.max_degrees)
        if self.flips:
            x = random_flip(x, g)
        if self.noise_std:
            x = gaussian_noise(x, g, self.noise_std)
        return x
