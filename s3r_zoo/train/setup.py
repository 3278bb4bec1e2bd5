"""What a training run is set up with: the trainer's settings (:class:`TrainConfig`, whose shared fields
default to :class:`~.spec.RunSpec`'s), mixed precision, seeding, the process's place in a ``torchrun``
job, and the errors a diverging run raises. :mod:`.engine` is the loop that uses them."""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .spec import AMP_MODES, OPERATIONAL, RunSpec

__all__ = ["TrainConfig", "NonFiniteError", "NonFiniteLossError", "RunInterrupted", "seed_everything", "AMP_MODES",
           "OPERATIONAL", "SCHEDULES", "first_non_finite", "resolve_amp", "cpu_has_fast_bf16", "SkipSampler",
           "dist_info", "epoch_loader", "ShardSampler"]

_RUN = {f.name: f.default for f in fields(RunSpec)}  # the shared options' one declaration




def cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bf16 matrix work natively (AVX-512-BF16 or AMX)."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(f()) for f in checks if f is not None)


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where the device computes bf16 natively (CUDA with bf16, a CPU with
    AVX-512-BF16 or AMX), else ``none`` (fp32); other values unchanged."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "none"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "none"


SCHEDULES = ("exponential", "linear")


class NonFiniteError(RuntimeError):
    """Training diverged: a loss, weight or buffer is NaN/Inf."""


class NonFiniteLossError(NonFiniteError):
    """The loss stayed NaN/Inf for too many consecutive steps, or for a whole epoch."""


class RunInterrupted(KeyboardInterrupt):
    """A run ended by Ctrl-C (SIGINT) or SIGTERM; the message says where it stood and how to resume.
    ``exit_code``: 130 (SIGINT) or 143 (SIGTERM), as a shell reports a process ended by that signal."""

    def __init__(self, message: str, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code


def first_non_finite(tensors: dict[str, torch.Tensor], limit: int = 3) -> list[str]:
    """Names of (up to ``limit``) floating tensors holding NaN/Inf."""
    bad = []
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad.append(name)
            if len(bad) >= limit:
                break
    return bad


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random: call it before building models, so that the seed fixes their init."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@dataclass
class TrainConfig:
    """The trainer's settings; everything except ``epochs`` (and logging) must match on resume.

    The options every run shares are declared once, in :class:`~.spec.RunSpec` (their defaults here are
    RunSpec's); :meth:`from_spec` hands them over by name, and each run adds its own settings.
    """

    epochs: int = _RUN["epochs"]
    batch_size: int = _RUN["batch_size"]
    lr: float = _RUN["lr"]
    weight_decay: float = _RUN["weight_decay"]
    gamma: float = 0.99
    schedule: str = "exponential"  # or "linear" (decay to 0 over `epochs`, fine-tuning)
    grad_clip: Optional[float] = _RUN["grad_clip"]
    amp: str = _RUN["amp"]
    channels_last: bool = _RUN["channels_last"]
    compile: bool = _RUN["compile"]
    patience: int = 10
    min_delta: float = 1e-4
    seed: int = _RUN["seed"]
    num_workers: int = _RUN["num_workers"]
    ckpt_every: int = _RUN["ckpt_every"]
    state_every: int = _RUN["state_every"]  # epochs between saves of the resumable state (the last epoch is always saved)
    log_every: int = 10
    max_bad_steps: int = 20
    val_every: int = 1  # epochs between validations (and the last epoch): best weights and early stopping follow them
    tensorboard: bool = _RUN["tensorboard"]  # also write TensorBoard scalars to <out>/tensorboard (needs `tensorboard`)
    extra: dict = field(default_factory=dict)  # objective / data description, part of the fingerprint

    @classmethod
    def from_spec(cls, spec: RunSpec, **overrides: Any) -> "TrainConfig":
        """The config from the options every run shares (:class:`~.spec.RunSpec`, named one by one), then
        ``overrides`` (what a run adds: its schedule, patience, fingerprint extras ...)."""
        values = dict(epochs=spec.epochs, batch_size=spec.batch_size, lr=spec.lr, weight_decay=spec.weight_decay,
                      grad_clip=spec.grad_clip, amp=spec.amp, channels_last=spec.channels_last, compile=spec.compile,
                      seed=spec.seed, num_workers=spec.num_workers, ckpt_every=spec.ckpt_every,
                      state_every=spec.state_every, tensorboard=spec.tensorboard)
        return cls(**{**values, **overrides})

    def fingerprint(self) -> str:
        d = asdict(self)
        for k in ("epochs", *OPERATIONAL):  # a resume may also extend the epoch budget
            d.pop(k, None)
        return json.dumps(d, sort_keys=True, default=str)


class SkipSampler(Sampler):
    """Yields a base sampler's indices after the first ``skip`` (mid-epoch resume)."""

    def __init__(self, base: Sampler, skip: int):
        self.base, self.skip = base, skip

    def __iter__(self) -> Iterator[int]:
        it = iter(self.base)
        for _ in range(self.skip):
            next(it, None)
        return it

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)


def dist_info() -> tuple[int, int, int]:
    """(world size, rank, local rank) of this process (torchrun's variables; 1, 0, 0 alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


class ShardSampler(Sampler):
    """This process's share of each global batch: global batch k is items ``k*B*W .. (k+1)*B*W`` of one
    permutation seeded by ``seed`` (``B``: batch per process, ``W``: processes), and process r takes
    block r of it. So W processes of batch B see exactly the batches of one process of batch W*B,
    whatever W is (DistributedSampler deals items round-robin instead). With W = 1 it is the order of
    ``RandomSampler`` with the same seeded generator, the last incomplete batch dropped."""

    def __init__(self, n: int, batch: int, world: int, rank: int, seed: int):
        self.n, self.batch, self.world, self.rank, self.seed = n, batch, world, rank, seed

    def __iter__(self) -> Iterator[int]:
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        step = self.batch * self.world
        for k in range(self.n // step):
            start = k * step + self.rank * self.batch
            yield from perm[start:start + self.batch]

    def __len__(self) -> int:
        return self.n // (self.batch * self.world) * self.batch


def epoch_loader(dataset: Dataset, cfg: TrainConfig, epoch: int, skip_batches: int, world: int = 1, rank: int = 0,
                 pin_memory: bool = False) -> DataLoader:
    """The batches of one epoch, in an order fixed by the seed and the epoch, after the first ``skip_batches``
    (a mid-epoch resume); under torchrun each process gets its block of every global batch (:class:`ShardSampler`)."""
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    base = ShardSampler(len(dataset), cfg.batch_size, world, rank, cfg.seed * 100_003 + epoch)
    sampler = SkipSampler(base, skip_batches * cfg.batch_size)
    if hasattr(dataset, "batches"):  # cubes held on the device (data.device.DeviceCubes): batches cut there
        return dataset.batches(sampler, cfg.batch_size)
    w = cfg.num_workers
    # its own generator: creating the iterator must not draw from the global RNG that the
    # objective uses (masks, target bands), or a resumed run would drift from an uninterrupted one
    g = torch.Generator().manual_seed(cfg.seed * 100_019 + epoch)
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=w, pin_memory=pin_memory,
                      drop_last=True, persistent_workers=False, prefetch_factor=4 if w > 0 else None, generator=g)
