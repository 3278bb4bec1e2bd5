"""The objective contract: what the one training loop (:mod:`.engine`) asks of a task.

Every task the zoo trains is an :class:`Objective`: S3R-CR / S3R-BR and the Table 1
ablation (:mod:`s3r_zoo.pretrain`), the Table 2 baselines (:mod:`s3r_zoo.baselines`) and
the classifier of fine-tuning (:mod:`s3r_zoo.finetune`). The trainer knows nothing else
about them. The contract:

``forward(cube, labels=None) -> dict``
    ``cube`` is a RAW batch ``(N, B, H, W)`` in the data's physical units (transmittance),
    as the dataset yields it; the objective normalises it itself (:meth:`normalize`, with
    the per-band ``mean``/``std`` buffers it was built with), so targets may use physical
    units. The dict holds ``"loss"`` (a scalar tensor to minimise) and may hold detached
    extras for analysis (``beta_hat``, ``logits``, ...). ``labels`` (``(N,)`` int64) is
    passed only when :attr:`uses_labels` is True.
``uses_labels``
    Class attribute; False for self-supervised objectives.
``after_step()``
    Called by the trainer after every optimiser step (BYOL's and SSAD's EMA teachers);
    does nothing by default.
``encoder`` and :meth:`exported`
    ``encoder`` is a registered zoo model (so the pre-trained encoder IS the zoo model);
    :meth:`exported` is the module whose ``state_dict()`` becomes the checkpoint (the
    encoder; heads, decoders and teachers are not exported).

All randomness (masks, target bands, augmentations) must come from the global torch RNG,
which the trainer seeds and saves in its resumable state.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from ..bands import normalize

__all__ = ["Objective"]


class Objective(nn.Module):
    """Base of every objective: the ``encoder`` and per-band ``mean``/``std`` buffers.

    Args:
        encoder: A zoo model; its ``conv1`` takes ``encoder_bands`` (default: all) channels.
        mean: Per-band mean of the raw data, one value per band.
        std: Per-band std of the raw data.
        encoder_bands: Channels the objective feeds the encoder, when not all bands
            (SimSiam / BYOL on three random bands).
    """

    uses_labels: bool = False

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float],
                 encoder_bands: Optional[int] = None):
        super().__init__()
        b = len(mean)
        if len(std) != b:
            raise ValueError(f"std has {len(std)} bands, mean has {b}")
        in_chans = encoder.conv1.in_channels
        expected = b if encoder_bands is None else encoder_bands
        if in_chans != expected:
            raise ValueError(f"encoder takes {in_chans} bands, the data has {b}"
                             + (f" (objective feeds it {expected})" if encoder_bands is not None else ""))
        self.encoder = encoder
        self.num_bands = b
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, b, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, b, 1, 1))

    shard: tuple[int, int] = (0, 1)  # (rank, processes): the trainer sets it under torchrun

    def global_batch(self, n: int) -> tuple[int, slice]:
        """For random draws that must not depend on how a global batch is split over processes: the size of
        the global batch (``n`` per process) and this process's slice of it. Draw for the global batch from
        the (equally seeded) RNG, keep the slice: N processes then draw what one process would."""
        rank, world = self.shard
        return n * world, slice(rank * n, (rank + 1) * n)

    def check_batch(self, cube: torch.Tensor) -> None:
        """Raise ValueError unless ``cube`` is ``(N, B, H, W)`` with this objective's B."""
        if cube.ndim != 4 or cube.shape[1] != self.num_bands:
            raise ValueError(f"batch: expected (N, {self.num_bands}, H, W), found {tuple(cube.shape)}")

    def normalize(self, cube: torch.Tensor) -> torch.Tensor:
        """The encoder's input scale: ``(cube - mean) / std`` per band."""
        self.check_batch(cube)
        return normalize(cube, self.mean, self.std)

    def forward(self, cube: torch.Tensor, labels: Optional[torch.Tensor] = None) -> dict:
        raise NotImplementedError(f"{type(self).__name__}.forward(cube) -> {{'loss': ...}}")

    def after_step(self) -> None:
        """Hook run after every optimiser step (e.g. an EMA teacher update)."""

    def exported(self) -> nn.Module:
        """The module saved as the run's checkpoint (the encoder)."""
        return self.encoder
