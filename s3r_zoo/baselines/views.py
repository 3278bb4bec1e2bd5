"""Two random views of HSI crops for the siamese baselines (SimSiam, BYOL, SSAD).

Per sample: random resized crop (area fraction in ``scale``, aspect in 3/4-4/3), flips, a 90-degree
rotation (square inputs), band-wise intensity jitter (gain and offset per band: a spectral, not only
spatial, augmentation) and Gaussian noise. The geometry of every sample is one affine map, so the
whole batch is resampled in one ``grid_sample`` call on the batch's device: no host round trip, no
per-sample loop, one graph under ``torch.compile``. Inputs are normalised ``(N, B, H, W)``;
randomness comes from the torch RNG of the batch's device, which the trainer seeds and checkpoints.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..data.transforms import affine_views

__all__ = ["random_view", "pick_bands"]


def random_view(x: torch.Tensor, scale: tuple[float, float] = (0.4, 1.0), jitter: float = 0.1,
                noise_std: float = 0.05, part: Optional[tuple[int, slice]] = None) -> torch.Tensor:
    """One augmented view of every sample in ``x`` (same shape, device and dtype).

    ``part`` = (global batch size, this process's slice) (:meth:`~s3r_zoo.train.Objective.global_batch`):
    the draws are made for the global batch and sliced, so N processes under torchrun augment each sample
    as one process would (and no two processes draw the same augmentations)."""
    n, b, h, w = x.shape
    total, mine = part if part is not None else (n, slice(None))
    theta = affine_views(total, h, w, scale, device=x.device)[mine]
    grid = F.affine_grid(theta, [n, b, h, w], align_corners=False)
    v = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    gain = 1 + jitter * torch.randn(total, b, 1, 1, device=x.device)[mine]
    offset = jitter * torch.randn(total, b, 1, 1, device=x.device)[mine]
    noise = torch.randn(total, b, h, w, device=x.device)[mine]
    return (v * gain + offset + noise_std * noise).to(x.dtype)


def pick_bands(x: torch.Tensor, k: int, part: Optional[tuple[int, slice]] = None) -> torch.Tensor:
    """``k`` distinct random bands per sample (the paper's "3 bands" rows), in band order (``part``: as
    :func:`random_view`'s)."""
    n, b = x.shape[:2]
    if k > b:
        raise ValueError(f"--bands {k}: the data has only {b} bands")
    total, mine = part if part is not None else (n, slice(None))
    idx = torch.rand(total, b, device=x.device)[mine].argsort(dim=1)[:, :k].sort(dim=1).values
    return x[torch.arange(n, device=x.device)[:, None], idx]
