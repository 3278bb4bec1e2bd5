"""One run, written once: preflight -> data -> band stats -> build -> fit -> export.

Pre-training (:class:`s3r_zoo.pretrain.run.PretrainRun`) and fine-tuning
(:class:`s3r_zoo.finetune.FinetuneRun`) subclass :class:`RunTemplate` and fill in its steps;
what every run does the same way lives here: a refused output folder is refused before
anything is written (``stats.json`` included), the band statistics are computed once on the
training data and reloaded (and checked) on ``--resume``, models are built after seeding (the
seed fixes the initial weights), and the exported weights are those of the best validation
epoch, kept by the trainer (its one best-weights mechanism, ``best_val.safetensors``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from torch.utils.data import Dataset

from ..data.device import DeviceCubes, use_device_data
from ..data.stats import BandStats, compute_band_stats
from ..files import folder_lock
from .engine import Trainer
from .objective import Objective
from .setup import TrainConfig, seed_everything
from .state import STATE_FILE, saved_tensors

__all__ = ["RunTemplate", "STATS_FILE"]

STATS_FILE = "stats.json"  # per-band mean/std of the raw training data, in the run's folder


class RunTemplate:
    """The steps of a training run; subclasses implement the hooks, :meth:`run` calls them in order.

    Args:
        spec: The run's options (a :class:`~s3r_zoo.train.spec.RunSpec` subclass).
        out: The run's output folder.
        seed: The run's seed (default ``spec.seed``; fine-tuning runs one template per seed).
    """

    stats_samples: int = 64  # training items the band statistics are measured on
    wavelengths: Any = None  # band centres of the training data (set by :meth:`prepare`)

    def __init__(self, spec: Any, out: Path, seed: Optional[int] = None):
        self.spec, self.out = spec, Path(out)
        self.seed = spec.seed if seed is None else seed

    # -- hooks -----------------------------------------------------------------------------
    def prepare(self) -> Dataset:
        """The training dataset of raw cubes (every file checked once, nothing written)."""
        raise NotImplementedError

    def config(self, train: Dataset) -> TrainConfig:
        """The trainer's settings (``TrainConfig.from_spec`` and what the run adds)."""
        raise NotImplementedError

    def validation(self, trainer: Trainer) -> Optional[Callable[[Objective], dict]]:
        """Held-out metrics ``{"loss": ..., ...}`` of an objective (None: no validation); built before seeding."""
        return None

    def build(self, stats: BandStats) -> Objective:
        """The objective around its encoder, normalising with ``stats`` (called right after seeding)."""
        raise NotImplementedError

    def epoch_end(self, trainer: Trainer, objective: Objective) -> Optional[Callable[[int, float], None]]:
        """Called after each epoch, before its state is saved (None: nothing)."""
        return None

    def export(self, trainer: Trainer, objective: Objective, summary: dict) -> dict:
        """Write the run's products (main process only; the best validation weights are loaded)."""
        raise NotImplementedError

    # -- the template ----------------------------------------------------------------------
    def run(self) -> dict:
        train = self.prepare()
        trainer = Trainer(self.config(train), self.out)
        trainer.preflight(self.spec.resume)  # a refused run writes nothing, not even stats.json
        # one run per output folder: the lock comes before the first write and goes with the run
        with folder_lock(self.out) if trainer.is_main else contextlib.nullcontext():
            return self._run(trainer, train)

    def _run(self, trainer: Trainer, train: Dataset) -> dict:
        if use_device_data(getattr(self.spec, "data_on_device", "off"), train, trainer.device):
            train = DeviceCubes(train, trainer.device)  # loaded once (a run refused by the lock loads nothing)
        self.stats = self.band_stats(train)
        validate = self.validation(trainer)
        seed_everything(self.seed)  # the seed fixes the initial weights too: build the models after it
        objective = self.build(self.stats)
        summary = trainer.fit(objective, train, resume=self.spec.resume, validate=validate,
                              on_epoch_end=self.epoch_end(trainer, objective))
        best = trainer.best_weights()
        if best is not None:  # export the weights of the best validation epoch, not the last
            objective.load_state_dict(best)
        if not trainer.is_main:
            return summary
        return self.export(trainer, objective, summary)

    def band_stats(self, train: Dataset) -> BandStats:
        """Per-band mean/std of the raw training data: measured and saved once, reloaded on ``--resume``."""
        path = self.out / STATS_FILE
        bands = train[0][0].shape[0]
        if self.spec.resume and path.exists():
            stats = BandStats.load(path)
            if len(stats.mean) != bands:
                raise ValueError(f"{path}: band stats of {len(stats.mean)} bands, but --data has {bands}; this --out "
                                 f"folder belongs to other data")
            self._check_against_state(stats, path)
            return stats
        n = min(len(train), self.stats_samples)
        stats = compute_band_stats((train[i] for i in range(n)), num_bands=bands, wavelengths=self.wavelengths,
                                   total=n, desc="band stats")
        stats.save(path)
        return stats

    def _check_against_state(self, stats: BandStats, path: Path) -> None:
        """Resumed state is verified, not trusted: the objective's mean/std buffers in the saved state
        (checksummed) must be the statistics of ``stats.json``, or the exported encoder would record other
        statistics than its weights were trained with."""
        saved = saved_tensors(self.out / STATE_FILE, ("model.mean", "model.std"))
        if not saved or len(saved) < 2:
            return
        for name, values in (("mean", stats.mean), ("std", stats.std)):
            a = saved[f"model.{name}"].reshape(-1).numpy()
            b = np.asarray(values, dtype=np.float32)
            if a.shape != b.shape or not np.array_equal(a, b):
                raise ValueError(f"{path}: the per-band mean/std differ from those the saved state was trained with "
                                 f"({STATE_FILE}, e.g. {name}[{int(np.argmax(a != b)) if a.shape == b.shape else 0}]); "
                                 f"restore the file (or delete it and the state to start afresh) or use a new --out")
