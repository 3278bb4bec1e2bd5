"""MHSIM: masked hyperspectral image modelling with a CNN (SimMIM-style).

As in SimMIM (Xie et al., CVPR 2022) but for HSI cubes and a ResNet: random square
patches are masked with ONE mask shared by all bands (unlike S3R's per-band masks), the
masked pixels take a learnable per-band token, the encoder's last feature map goes through
a light decoder (five transposed convolutions back to full resolution, all bands), and
the loss is L1 on the MASKED pixels only.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models.heads import transposed_decoder
from ..train import Objective, band_patch_masks

__all__ = ["MHSIMObjective", "masked_l1"]


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |pred - target| over masked positions only (``mask`` (N, 1, H, W) bool)."""
    m = mask.to(pred.dtype).expand_as(pred)
    return ((pred - target).abs() * m).sum() / m.sum().clamp_min(1.0)


class MHSIMObjective(Objective):
    """MHSIM: masked patches (one mask for all bands) replaced by a learnt token; L1 on the masked pixels.

    Args:
        encoder: Zoo encoder taking all bands.
        mean: Per-band mean of the raw data.
        std: Per-band std of the raw data.
        mask_ratio: Fraction of patches masked.
        mask_patch: Patch side in pixels.
        width: Width of the transposed-convolution decoder.
    """

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float], mask_ratio: float = 0.6,
                 mask_patch: int = 16, width: int = 128):
        super().__init__(encoder, mean, std)
        self.mask_ratio, self.mask_patch = mask_ratio, mask_patch
        self.mask_token = nn.Parameter(torch.zeros(1, self.num_bands, 1, 1))
        self.decoder = transposed_decoder(encoder.num_features, self.num_bands, width)

    def forward(self, cube):
        x = self.normalize(cube)
        n, _, h, w = x.shape
        mask = band_patch_masks(n, 1, h, w, self.mask_ratio, self.mask_patch, device=x.device)  # shared by bands
        x_in = torch.where(mask, self.mask_token.to(x.dtype), x)
        rec = self.decoder(self.encoder.forward_features(x_in)).float()
        rec = F.interpolate(rec, size=(h, w), mode="bilinear", align_corners=False)
        return {"loss": masked_l1(rec, x.float(), mask)}
