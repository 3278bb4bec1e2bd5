"""SSAD: self-supervised learning with adaptive distillation (after Yue et al., TGRS 2021).

"Self-supervised learning with adaptive distillation for hyperspectral image
classification" pairs a self-supervised pretext with knowledge distillation whose weight
adapts to how reliable the teacher is. The publication leaves the CNN-scale details open;
the choices made here, so that it runs in the zoo's trainer and exports a ResNet:

* pretext: predict which of four 90-degree rotations was applied to a random view
  (cross-entropy over 4 classes);
* teacher: an EMA copy of the student (encoder + rotation head), updated after every
  step (:meth:`after_step`), that sees the same rotated views;
* adaptive distillation: KL(teacher || student) over the rotation softmax at temperature
  ``T``, weighted per sample by the teacher's confidence (its max probability), so
  unreliable teacher outputs contribute little.

It is an honest interpretation for comparison within this project, not a reproduction
of the authors' code.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..train import Objective
from .views import random_view

__all__ = ["SSADObjective"]


class SSADObjective(Objective):
    """SSAD: rotation prediction plus confidence-weighted distillation from an EMA teacher.

    Args:
        encoder: Zoo encoder taking all bands.
        mean: Per-band mean of the raw data.
        std: Per-band std of the raw data.
        momentum: EMA factor of the teacher.
        temperature: Softmax temperature of the distillation term.
        distill_weight: Weight of the distillation term.
    """

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float], momentum: float = 0.99,
                 temperature: float = 2.0, distill_weight: float = 1.0):
        super().__init__(encoder, mean, std)
        self.momentum, self.temperature, self.distill_weight = momentum, temperature, distill_weight
        self.head = nn.Linear(encoder.num_features, 4)
        self.teacher = copy.deepcopy(nn.ModuleDict({"encoder": encoder, "head": self.head}))
        for p in self.teacher.parameters():
            p.requires_grad = False

    def forward(self, cube):
        total, mine = part = self.global_batch(cube.shape[0])
        x = random_view(self.normalize(cube), part=part)
        k = torch.randint(0, 4, (total,), device=x.device)[mine]
        turned = torch.stack([torch.rot90(x, j, dims=(-2, -1)) for j in range(4)])  # square crops
        x = turned[k, torch.arange(x.shape[0], device=x.device)]  # sample i turned k[i] times; no host read
        logits = self.head(self.encoder(x)).float()
        with torch.no_grad():
            t_logits = self.teacher["head"](self.teacher["encoder"](x)).float()
        t = self.temperature
        teacher_p = F.softmax(t_logits / t, dim=-1)
        confidence = F.softmax(t_logits, dim=-1).max(dim=-1).values
        kl = F.kl_div(F.log_softmax(logits / t, dim=-1), teacher_p, reduction="none").sum(-1) * t * t
        loss = F.cross_entropy(logits, k) + self.distill_weight * (confidence * kl).mean()
        return {"loss": loss}

    @torch.no_grad()
    def after_step(self) -> None:
        for po, pt in zip(list(self.encoder.parameters()) + list(self.head.parameters()), self.teacher.parameters()):
            pt.mul_(self.momentum).add_(po.detach(), alpha=1 - self.momentum)
        for bo, bt in zip(self.encoder.buffers(), self.teacher["encoder"].buffers()):
            bt.copy_(bo)
