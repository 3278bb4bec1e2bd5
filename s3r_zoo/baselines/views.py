"""Two random views of HSI crops for the siamese baselines (SimSiam, BYOL, SSAD).

Per sample: random resized crop, flips, 90-degree rotation, band-wise intensity jitter
(gain and offset per band: a spectral, not only spatial, augmentation) and Gaussian noise.
Inputs are normalised ``(N, B, H, W)``; randomness comes from the global torch RNG, which
the trainer seeds and checkpoints.
"""

from __future__ import annotations

import torch

from ..data.transforms import random_flip, random_resized_crop, random_rot90

__all__ = ["random_view", "pick_bands"]


def random_view(x: torch.Tensor, scale: tuple[float, float] = (0.4, 1.0), jitter: float = 0.1,
                noise_std: float = 0.05) -> torch.Tensor:
    """One augmented view of every sample in ``x``."""
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ())))
    views = []
    for sample in x.cpu():
        v = random_resized_crop(sample, g, scale)
        v = random_flip(v, g)
        if v.shape[-1] == v.shape[-2]:
            v = random_rot90(v, g)
        views.append(v)
    v = torch.stack(views).to(x.device)
    n, b = v.shape[:2]
    gain = 1 + jitter * torch.randn(n, b, 1, 1, generator=g).to(v)
    offset = jitter * torch.randn(n, b, 1, 1, generator=g).to(v)
    return v * gain + offset + noise_std * torch.randn(v.shape, generator=g).to(v)


def pick_bands(x: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` distinct random bands per sample (the paper's "3 bands" rows), in band order."""
    n, b = x.shape[:2]
    if k > b:
        raise ValueError(f"--bands {k}: the data has only {b} bands")
    idx = torch.rand(n, b, device=x.device).argsort(dim=1)[:, :k].sort(dim=1).values
    return x[torch.arange(n, device=x.device)[:, None], idx]
