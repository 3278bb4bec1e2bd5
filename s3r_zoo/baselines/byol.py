"""BYOL (Grill et al., NeurIPS 2020) on HSI: online network predicts an EMA target network.

"Bootstrap Your Own Latent": ``L = 2 - 2 cos(q(z_online), sg(z_target))``, symmetrised;
after each optimiser step the target is ``tau * target + (1 - tau) * online``
(:meth:`after_step`, called by the trainer). ``bands=3`` as in SimSiam.
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models.heads import mlp
from ..train import Objective
from .views import pick_bands, random_view

__all__ = ["BYOLObjective"]


class BYOLObjective(Objective):
    """BYOL: the online encoder + projector + predictor regresses the EMA target's projection of another view.

    Args:
        encoder: Zoo encoder (``bands`` input channels when ``bands`` is set).
        mean: Per-band mean of the raw data.
        std: Per-band std of the raw data.
        bands: Feed this many random bands per sample (``3``: the paper's "3 bands" rows); None = all.
        proj_dim: Projection size.
        hidden: Hidden width of projector and predictor.
        momentum: EMA factor tau of the target network.
    """

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float], bands: Optional[int] = None,
                 proj_dim: int = 256, hidden: int = 1024, momentum: float = 0.99):
        super().__init__(encoder, mean, std, encoder_bands=bands)
        self.bands, self.momentum = bands, momentum
        self.projector = mlp(encoder.num_features, hidden, proj_dim)
        self.predictor = mlp(proj_dim, hidden, proj_dim)
        self.target_encoder = copy.deepcopy(encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for p in list(self.target_encoder.parameters()) + list(self.target_projector.parameters()):
            p.requires_grad = False

    def forward(self, cube):
        x, part = self.normalize(cube), self.global_batch(cube.shape[0])
        if self.bands:
            x = pick_bands(x, self.bands, part)
        v1, v2 = random_view(x, part=part), random_view(x, part=part)
        p1 = self.predictor(self.projector(self.encoder(v1)))
        p2 = self.predictor(self.projector(self.encoder(v2)))
        with torch.no_grad():
            t1 = self.target_projector(self.target_encoder(v1))
            t2 = self.target_projector(self.target_encoder(v2))
        loss = (2 - 2 * F.cosine_similarity(p1, t2, dim=-1)).mean() / 2 + \
               (2 - 2 * F.cosine_similarity(p2, t1, dim=-1)).mean() / 2
        return {"loss": loss}

    @torch.no_grad()
    def after_step(self) -> None:
        """EMA update of the target network (parameters and BatchNorm buffers)."""
        for online, target in ((self.encoder, self.target_encoder), (self.projector, self.target_projector)):
            for po, pt in zip(online.parameters(), target.parameters()):
                pt.mul_(self.momentum).add_(po.detach(), alpha=1 - self.momentum)
            for bo, bt in zip(online.buffers(), target.buffers()):
                bt.copy_(bo)
