"""Conv-Deconv: residual convolution-deconvolution auto-encoder (Mou et al., TGRS 2017).

"Unsupervised spectral-spatial feature learning via deep residual Conv-Deconv network
for hyperspectral image classification". Choices made here: the residual convolutional
half IS the zoo's ResNet (so it transfers downstream unchanged), the deconvolutional half
is five stride-2 transposed convolutions back to all bands at full resolution, and the
loss is the mean squared reconstruction error of the normalised cube (no masking: a plain
auto-encoder, as in the paper). The paper's conv-to-deconv skip connections are left out
so the encoder cannot pass pixels straight through the shallow layers.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import nn

from ..models.heads import transposed_decoder
from ..train import Objective

__all__ = ["ConvDeconvObjective"]


class ConvDeconvObjective(Objective):
    """Conv-Deconv: the encoder's feature map, decoded back to every band at full resolution; MSE.

    Args:
        encoder: Zoo encoder taking all bands.
        mean: Per-band mean of the raw data.
        std: Per-band std of the raw data.
        width: Width of the transposed-convolution decoder.
    """

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float], width: int = 128):
        super().__init__(encoder, mean, std)
        self.decoder = transposed_decoder(encoder.num_features, self.num_bands, width)

    def forward(self, cube):
        x = self.normalize(cube)
        rec = self.decoder(self.encoder.forward_features(x)).float()
        rec = F.interpolate(rec, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"loss": F.mse_loss(rec, x.float())}
