"""S3R masking (docs/method.md, Fig. 2 step 2): random patches, drawn INDEPENDENTLY per band.

Pure functions, vectorised on the input's device (no Python loop over bands or samples).
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["band_patch_masks", "apply_masks"]


def band_patch_masks(n: int, b: int, h: int, w: int, ratio: float = 0.65, patch: int = 16,
                     generator: Optional[torch.Generator] = None, device=None) -> torch.Tensor:
    """Boolean masks ``(N, B, H, W)``, True = masked, with its own patch pattern per band.

    Exactly ``round(ratio * P)`` of the ``P`` patches of every band are masked, chosen by
    ranking i.i.d. uniform scores, so the ratio holds per band, not only on average.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio: expected 0 <= ratio < 1, found {ratio}")
    if patch < 1:
        raise ValueError(f"mask patch size: expected >= 1, found {patch}")
    gh, gw = -(-h // patch), -(-w // patch)
    num = gh * gw
    k = int(round(ratio * num))
    scores = torch.rand(n, b, num, generator=generator, device="cpu" if generator is not None else device)
    scores = scores.to(device) if device is not None else scores
    ranks = scores.argsort(dim=-1).argsort(dim=-1)
    grid = (ranks < k).view(n, b, gh, gw)
    full = grid.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)
    return full[:, :, :h, :w]


def apply_masks(x: torch.Tensor, masks: torch.Tensor, noise_std: float = 0.0,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Zero the masked positions of a normalised tensor (0 = the band mean); optionally add
    strong Gaussian noise everywhere to make the pretext harder."""
    out = x.masked_fill(masks, 0.0)
    if noise_std > 0:
        noise = torch.randn(x.shape, generator=generator, device="cpu" if generator is not None else x.device)
        out = out + noise_std * noise.to(device=x.device, dtype=x.dtype)
    return out
