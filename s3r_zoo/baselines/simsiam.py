"""SimSiam (Chen & He, CVPR 2021) on HSI: two views, predictor, stop-gradient.

"Exploring Simple Siamese Representation Learning": ``L = -(cos(p1, sg(z2)) + cos(p2, sg(z1))) / 2``.
``bands=3`` feeds three random distinct bands per sample (the paper's "3 bands" rows;
the encoder then has 3 input channels), ``bands=None`` all bands.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch.nn.functional as F
from torch import nn

from ..models.heads import mlp
from ..train import Objective
from .views import pick_bands, random_view

__all__ = ["SimSiamObjective", "simsiam_loss"]


def simsiam_loss(p1, p2, z1, z2):
    """Symmetric negative cosine similarity with stop-gradient on the targets ``z``."""
    return -(F.cosine_similarity(p1, z2.detach(), dim=-1).mean()
             + F.cosine_similarity(p2, z1.detach(), dim=-1).mean()) / 2


class SimSiamObjective(Objective):
    """SimSiam: two views, a shared encoder + projector, a predictor, stop-gradient on the other branch.

    Args:
        encoder: Zoo encoder (``bands`` input channels when ``bands`` is set).
        mean: Per-band mean of the raw data.
        std: Per-band std of the raw data.
        bands: Feed this many random bands per sample (``3``: the paper's "3 bands" rows); None = all.
        proj_dim: Projection size.
        pred_dim: Bottleneck width of the predictor.
    """

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float], bands: Optional[int] = None,
                 proj_dim: int = 512, pred_dim: int = 128):
        super().__init__(encoder, mean, std, encoder_bands=bands)
        self.bands = bands
        self.projector = mlp(encoder.num_features, proj_dim, proj_dim, last_bn=True)
        self.predictor = mlp(proj_dim, pred_dim, proj_dim)

    def forward(self, cube):
        x, part = self.normalize(cube), self.global_batch(cube.shape[0])
        if self.bands:
            x = pick_bands(x, self.bands, part)
        z1, z2 = (self.projector(self.encoder(random_view(x, part=part))) for _ in range(2))
        return {"loss": simsiam_loss(self.predictor(z1), self.predictor(z2), z1, z2)}
