"""What each training step did, kept on the device and read by the host only every few steps.

Reading a CUDA tensor on the host (``float(loss)``, ``if torch.isfinite(loss):``) waits until the GPU has
run every queued kernel; meanwhile the host cannot queue the next step, so the GPU idles for the time it
takes Python to launch the next forward pass -- at launch-bound sizes most of a step. The trainer
therefore keeps one small tensor per step on the device (the loss, the gradient norm, whether the batch
was finite) and lets the optimiser decide *on the device* whether a step is applied: fused AdamW skips
its update when ``found_inf`` is 1, the mechanism :class:`torch.amp.GradScaler` uses.
:meth:`Outcomes.read` brings the records to the host in one transfer -- every ``log_every`` steps,
before a state save and at the end of an epoch -- where the trainer counts, logs and, if a run of
non-finite steps is too long, stops, naming the step. The decisions are those of a per-step check; only
the moment the host learns of them moves (by at most ``log_every`` steps, all of them skipped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["StepOutcome", "Outcomes"]


@dataclass(frozen=True)
class StepOutcome:
    """One step as the host learns of it."""

    epoch: int        # 1-based
    step: int         # 1-based, within the epoch
    global_step: int  # 1-based, over the run (skipped steps count: they consumed a batch)
    loss: float
    grad_norm: float
    batch_finite: bool

    @property
    def applied(self) -> bool:
        """Whether the optimiser applied this step (loss, gradient and batch all finite)."""
        return self.batch_finite and math.isfinite(self.loss) and math.isfinite(self.grad_norm)

    @property
    def reason(self) -> str:
        """What made a skipped step non-finite: ``"batch"``, ``"loss"`` or ``"gradient"``."""
        if not self.batch_finite:
            return "batch"
        return "gradient" if math.isfinite(self.loss) else "loss"


class Outcomes:
    """The steps since the last :meth:`read`, as device tensors."""

    def __init__(self) -> None:
        self._pending: list[tuple[tuple[int, int, int], torch.Tensor]] = []

    def record(self, where: tuple[int, int, int], loss: torch.Tensor, grad_norm: torch.Tensor,
               batch_finite: torch.Tensor) -> torch.Tensor:
        """Keep step ``where`` = (epoch, step, global step); return its skip flag (float 1. = skip) on the device."""
        values = torch.stack([loss.detach().float(), grad_norm.detach().float(), batch_finite.float()])
        self._pending.append((where, values))
        return (~(torch.isfinite(values[:2]).all() & batch_finite)).float()

    def __len__(self) -> int:
        return len(self._pending)

    def read(self) -> list[StepOutcome]:
        """The pending steps, in order, on the host (one transfer); empties the record."""
        if not self._pending:
            return []
        values = torch.stack([v for _, v in self._pending]).cpu().tolist()
        out = [StepOutcome(*where, loss=v[0], grad_norm=v[1], batch_finite=bool(v[2]))
               for (where, _), v in zip(self._pending, values)]
        self._pending = []
        return out
