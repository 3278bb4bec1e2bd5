"""``s3r-zoo finetune``: turn a checkpoint into test numbers with the published protocol.

docs/method.md: first conv adapted to the data's bands (by wavelength when both sides know
them), augmentation (scale, rotation, Gaussian noise), AdamW lr 1e-4 with linear decay,
at most 70 epochs, validation every epoch, keep the best-on-validation weights, test once
at the end; mean and standard deviation over seeds. ``linear_probe`` freezes the encoder
(BatchNorm statistics included); ``label_fraction`` keeps a stratified fraction of the
training labels. Training runs through the same :class:`~s3r_zoo.train.Trainer` as
pre-training (AMP, torchrun, atomic resumable state, progress, JSONL), with the classifier
as its :class:`~s3r_zoo.train.Objective`.

Per seed, ``out/seed_<k>/`` holds ``best.safetensors`` (zoo format), ``best.json``,
``metrics.json`` (test), ``confusion_matrix.png`` and the trainer's files; ``out/``
holds ``aggregate.json``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_checkpoint, save_checkpoint
from .data.datasets import CubeDataset, SplitFileDataset, read_split_file
from .data.stats import BandStats, compute_band_stats
from .data.transforms import HSIAugment
from .files import write_json
from .metrics import aggregate, classification_metrics
from .models import arch_of, build_encoder
from .options import check_spec, option
from .plots import confusion_matrix
from .train import Objective, TrainConfig, Trainer
from .train.spec import RunSpec

__all__ = ["FinetuneSpec", "ClassifierObjective", "BestTracker", "stratified_fraction", "run_finetune", "evaluate",
           "default_crop", "MAX_DEFAULT_CROP"]


MAX_DEFAULT_CROP = 256  # the default crop: whole cubes up to this side (larger scenes: random crops of it)


@dataclass
class FinetuneSpec(RunSpec):
    """A fine-tuning run: every option of ``s3r-zoo finetune`` (and key of its ``--config`` YAML)."""

    data: str = option("", "folder with train.txt, val.txt, test.txt split files (<path> <label> lines)",
                       metavar="DIR")
    out: str = option("runs/finetune", "output folder", metavar="DIR")
    init: str = option("scratch", "scratch, imagenet, a tag (s3r_resnet18.cr_hims41_v2) or a zoo checkpoint path",
                       metavar="INIT")
    wavelengths: Optional[list[float]] = option(None, "band centres of the data in nm (if its files have none)",
                                                metavar="NM")
    epochs: int = option(70, "most epochs to train", min=1)
    crop: Optional[int] = option(None, "training crop size in pixels (default: the smallest side of the training "
                                 f"cubes, at most {MAX_DEFAULT_CROP})", min=1)
    eval_crop: Optional[int] = option(None, "centre crop for validation/test (default: whole cube)", min=1)
    linear_probe: bool = option(False, "freeze the encoder, train the linear head")
    label_fraction: float = option(1.0, "stratified fraction of the training labels to use", above=0, max=1)
    seeds: int = option(1, "number of seeds (runs); mean +- std are reported", min=1)
    min_steps: int = option(0, "floor on optimiser steps: a small training set gets more epochs (validated about "
                            "--epochs times in all), so 20 cubes train as long as the floor says, not one step per "
                            "epoch", min=0)
    noise_std: float = option(0.02, "augmentation: Gaussian noise (normalised units)", min=0)
    max_degrees: float = option(15.0, "augmentation: largest rotation in degrees", min=0, max=180)


class ClassifierObjective(Objective):
    """Cross-entropy on augmented, normalised crops: fine-tuning's objective for the one loop.

    Args:
        model: Zoo model with its classifier (``num_classes > 0``).
        mean: Per-band mean of the raw training data.
        std: Per-band std of the raw training data.
        augment: Augmentation of the normalised crops (training only).
        linear_probe: Train only the classifier ``fc``; BatchNorm statistics stay as loaded.
    """

    uses_labels = True

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float],
                 augment: Optional[HSIAugment] = None, linear_probe: bool = False):
        super().__init__(model, mean, std)
        self.augment, self.linear_probe = augment, linear_probe
        if linear_probe:
            for name, p in model.named_parameters():
                p.requires_grad = name.startswith("fc.")

    def train(self, mode: bool = True) -> "ClassifierObjective":
        super().train(mode)
        if self.linear_probe:  # frozen encoder: BatchNorm statistics stay as pretrained too
            self.encoder.eval()
            self.encoder.fc.train(mode)
        return self

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.normalize(x))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict:
        x = self.normalize(x)
        if self.augment is not None and self.training:
            g = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ())))  # from the (saved) global RNG
            x = torch.stack([self.augment(xi, g) for xi in x])  # per sample: its own crop, rotation, flips
        logits = self.encoder(x)
        return {"loss": F.cross_entropy(logits.float(), labels), "logits": logits.detach()}


class BestTracker:
    """Keeps the best-on-validation weights (first best wins ties), durable across resumes."""

    def __init__(self, folder: Path, metric: str = "accuracy"):
        self.folder, self.metric = folder, metric
        self.path = folder / "best.json"
        self.best = json.loads(self.path.read_text()) if self.path.exists() else {"epoch": 0, "score": -np.inf}

    def update(self, epoch: int, score: float, save_fn) -> bool:
        """Record ``score`` of ``epoch``; call ``save_fn(path)`` to write the weights if it is a new best."""
        if not score > self.best["score"]:
            return False
        save_fn(self.folder / "best.safetensors")
        self.best = {"epoch": epoch, "score": float(score), "metric": self.metric}
        write_json(self.path, self.best, indent=None)
        return True


def stratified_fraction(labels: Sequence[int], fraction: float, classes: Sequence[str], seed: int) -> list[int]:
    """Indices of a stratified ``fraction`` of the items: per class round(fraction x n), at least one cube, so
    a small fraction of a rare class still has an example (the same subsets for every method at one seed)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"--label-fraction: expected 0 < F <= 1, found {fraction}")
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    labels = np.asarray(labels)
    for c, name in enumerate(classes):
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            raise ValueError(f"--label-fraction {fraction}: class '{name}' has no training cubes")
        keep += rng.choice(idx, max(1, int(round(fraction * idx.size))), replace=False).tolist()
    return sorted(keep)


@torch.no_grad()
def evaluate(objective: ClassifierObjective, dataset: CubeDataset, device: torch.device,
             batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(logits, labels) of a whole dataset, in eval mode, no augmentation."""
    was = objective.training
    objective.eval()
    out, labels = [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        x = torch.stack([x for x, _ in items]).to(device)
        out.append(objective.logits(x).float().cpu().numpy())
        labels += [y for _, y in items]
    objective.train(was)
    return np.concatenate(out), np.asarray(labels)


def default_crop(items: list, read_options: dict) -> int:
    """The crop when ``--crop`` is not given: the smallest side among the training cubes, at most
    ``MAX_DEFAULT_CROP`` (a set of 64 x 64 cubes trains on whole cubes, 512 x 612 scenes on 256-px crops)."""
    ds = CubeDataset(items, crop_mode="none", read_options=read_options)
    return min(MAX_DEFAULT_CROP, *(min(ds.cube(i).shape[:2]) for i in range(len(items))))


def _datasets(spec: FinetuneSpec, seed: int) -> tuple[CubeDataset, CubeDataset, CubeDataset]:
    root = Path(spec.data)
    files = {s: root / f"{s}.txt" for s in ("train", "val", "test")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"--data {root}: expected train.txt, val.txt and test.txt split files; missing "
                                f"{missing}")
    opts = {"wavelengths": spec.wavelengths} if spec.wavelengths else {}
    items, classes = read_split_file(files["train"])
    if spec.label_fraction < 1:
        keep = stratified_fraction([lbl for _, lbl in items], spec.label_fraction, classes, seed)
        items = [items[i] for i in keep]
    crop = spec.crop if spec.crop is not None else default_crop(items, opts)
    train = CubeDataset(items, classes=classes, crop=crop, nan=spec.nan, seed=seed, read_options=opts)
    ev = dict(classes=classes, nan=spec.nan, read_options=opts,
              crop=spec.eval_crop, crop_mode="center" if spec.eval_crop else "none")
    val, test = SplitFileDataset(files["val"], **ev), SplitFileDataset(files["test"], **ev)
    for ds in (train, val, test):
        ds.check_files()  # NaN/Inf policy against every file once, before any training
    return train, val, test


def _run_seed(spec: FinetuneSpec, seed: int, out: Path) -> dict:
    train, val, test = _datasets(spec, seed)
    first = train.cube(0)
    batch_size = min(spec.batch_size, len(train))
    epochs = max(spec.epochs, math.ceil(spec.min_steps / (len(train) // batch_size)))
    val_every = max(1, epochs // spec.epochs)  # the step floor adds epochs, not validations or state saves
    cfg = TrainConfig.from_spec(spec, batch_size=batch_size, epochs=epochs, schedule="linear",
                                patience=10**9, seed=seed, state_every=spec.state_every * val_every,
                                extra={"init": spec.init, "model": spec.model, "data": spec.data,
                                       "probe": spec.linear_probe, "fraction": spec.label_fraction})
    trainer = Trainer(cfg, out)
    trainer.preflight(spec.resume)  # a refused run writes nothing, not even stats.json
    stats_path = out / "stats.json"
    if spec.resume and stats_path.exists():
        stats = BandStats.load(stats_path)
    else:
        n = min(len(train), 64)
        stats = compute_band_stats((train[i] for i in range(n)), num_bands=first.num_bands,
                                   wavelengths=first.wavelengths, total=n, desc="band stats")
        stats.save(stats_path)
    torch.manual_seed(seed)
    model = build_encoder(spec.model, first.num_bands, spec.init, num_classes=len(train.classes),
                          wavelengths=first.wavelengths)
    augment = HSIAugment(scale=(0.6, 1.0), max_degrees=spec.max_degrees, noise_std=spec.noise_std)
    objective = ClassifierObjective(model, stats.mean, stats.std, augment, linear_probe=spec.linear_probe)
    tracker = BestTracker(out)
    arch = arch_of(spec.model)

    def save_best(path: Path) -> None:
        save_checkpoint(path, model.state_dict(), architecture=arch, objective=f"finetune:{spec.init}",
                        data=spec.data, recipe=asdict(spec), wavelengths_nm=None if first.wavelengths is None
                        else first.wavelengths.tolist(), mean=stats.mean, std=stats.std,
                        extra={"classes": train.classes, "crop": train.crop[0]})

    def on_epoch_end(epoch: int, loss: float) -> None:
        if epoch % val_every and epoch != epochs:
            return
        logits, labels = evaluate(objective, val, trainer.device)
        m = classification_metrics(logits, labels, train.classes)
        improved = tracker.update(epoch, m["accuracy"], save_best) if trainer.is_main else False
        trainer.log({"kind": "val", "epoch": epoch, "accuracy": m["accuracy"],
                      "balanced_accuracy": m["balanced_accuracy"], "best": improved})

    summary = trainer.fit(objective, train, resume=spec.resume, on_epoch_end=on_epoch_end)
    best_sd, _ = load_checkpoint(out / "best.safetensors")
    model.load_state_dict(best_sd)
    logits, labels = evaluate(objective, test, trainer.device)
    metrics = classification_metrics(logits, labels, train.classes)
    # per test cube, in split-file order: what paired tests between methods need (same cubes, same seeds)
    metrics["test_predictions"] = {"paths": [os.path.relpath(p, spec.data) for p, _ in test.items],
                                   "labels": labels.tolist(), "predicted": logits.argmax(1).tolist()}
    metrics.update(best_epoch=tracker.best["epoch"], best_val_accuracy=tracker.best["score"], seed=seed,
                   crop=train.crop[0],
                   train_size=len(train), train_loss=summary["final_loss"], wall_time_s=summary["wall_time_s"],
                   epochs=summary["epochs"], steps=summary["steps"])
    write_json(out / "metrics.json", metrics)
    confusion_matrix(metrics["confusion_matrix"], train.classes, out / "confusion_matrix.png",
                     title=f"{spec.model} init={Path(spec.init).name}, seed {seed} (test)")
    return metrics


def run_finetune(spec: FinetuneSpec) -> dict:
    """Fine-tune ``spec.seeds`` times; return and write the aggregate (mean +- std)."""
    spec = check_spec(spec)  # the checks of the command line, for library callers too
    if not spec.data:
        raise ValueError("--data: required (a folder with train.txt, val.txt and test.txt)")
    out = Path(spec.out)
    runs = [_run_seed(spec, spec.seed + k, out / f"seed_{spec.seed + k}") for k in range(spec.seeds)]
    agg = {"spec": asdict(spec), "runs": runs, "aggregate": aggregate(runs)}
    write_json(out / "aggregate.json", agg)
    return agg
