"""The ``s3r-zoo finetune`` run (its options: :mod:`.spec`)."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import save_checkpoint
from ..data.datasets import CubeDataset, SplitFileDataset, check_same_bands
from ..data.sources import read_split_file, resolved_source
from ..data.transforms import HSIAugment
from ..files import write_json
from ..metrics import aggregate, classification_metrics
from ..models import arch_of, build_encoder, model_of
from ..options import check_spec
from ..plots import confusion_matrix, loss_curve
from ..train import Objective, TrainConfig
from ..train.setup import dist_info
from ..train.template import RunTemplate
from .spec import FinetuneSpec, MAX_DEFAULT_CROP

__all__ = ["ClassifierObjective", "FinetuneRun", "stratified_fraction", "run_finetune", "evaluate",
           "default_crop", "format_aggregate"]





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
            x = self.augment(x, part=self.global_batch(len(x)))  # drawn for the global batch (torchrun), by the
            # (checkpointed) RNG of the batch's device, in one resampling of the whole batch
        logits = self.encoder(x)
        return {"loss": F.cross_entropy(logits.float(), labels), "logits": logits.detach()}


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
    _check_classes(files["train"], [lbl for _, lbl in items], classes)
    if spec.label_fraction < 1:
        keep = stratified_fraction([lbl for _, lbl in items], spec.label_fraction, classes, seed)
        items = [items[i] for i in keep]
    crop = spec.crop if spec.crop is not None else default_crop(items, opts)
    train = CubeDataset(items, classes=classes, crop=crop, nan=spec.nan, seed=seed, read_options=opts)
    ev = dict(classes=classes, nan=spec.nan, read_options=opts,
              crop=spec.eval_crop, crop_mode="center" if spec.eval_crop else "none")
    val, test = SplitFileDataset(files["val"], **ev), SplitFileDataset(files["test"], **ev)
    for name, ds in (("val", val), ("test", test)):
        _check_classes(files[name], [lbl for _, lbl in ds.items], classes)
    for ds in (train, val, test):
        ds.check_files()  # NaN/Inf policy and one band set against every file once, before any training
    check_same_bands({files["train"]: train, files["val"]: val, files["test"]: test})  # and across the splits
    return train, val, test


def _check_classes(path: Path, labels: Sequence[int], classes: Sequence[str]) -> None:
    """Refuse a split whose cubes are all of one class: a 1-class classifier trains to 100 % and means nothing."""
    present = sorted(set(labels))
    if len(present) < 2:
        name = classes[present[0]] if present and present[0] < len(classes) else (present[0] if present else None)
        raise ValueError(f"{path}: every cube is of one class ({name!r}); training and evaluation need at least 2 "
                         f"classes in each of train.txt, val.txt and test.txt")


class FinetuneRun(RunTemplate):
    """One seed of fine-tuning as the run template's steps: the best-on-validation-loss weights are exported
    as ``best.safetensors`` and tested once."""

    def prepare(self):
        spec = self.spec
        self.train_ds, self.val, self.test = _datasets(spec, self.seed)
        first = self.train_ds.cube(0)
        self.wavelengths, self.num_bands = first.wavelengths, first.num_bands
        self.batch_size = min(spec.batch_size, len(self.train_ds))
        self.epochs = max(spec.epochs, math.ceil(spec.min_steps / (len(self.train_ds) // self.batch_size)))
        self.val_every = max(1, self.epochs // spec.epochs)  # the step floor adds epochs, not validations
        return self.train_ds

    def config(self, train) -> TrainConfig:
        spec = self.spec
        return TrainConfig.from_spec(spec, batch_size=self.batch_size, epochs=self.epochs, schedule="linear",
                                     patience=10**9, min_delta=0.0, seed=self.seed, val_every=self.val_every,
                                     state_every=spec.state_every * self.val_every,
                                     extra={"init": resolved_source(spec.init), "model": spec.model,
                                            "data": resolved_source(spec.data),
                                            "probe": spec.linear_probe, "fraction": spec.label_fraction})

    def validation(self, trainer):
        classes = self.train_ds.classes

        def validate(objective) -> dict:  # the trainer keeps the weights of the lowest validation loss
            logits, labels = evaluate(objective, self.val, trainer.device)
            m = classification_metrics(logits, labels, classes)
            loss = F.cross_entropy(torch.from_numpy(logits).double(), torch.from_numpy(labels).long())
            return {"loss": float(loss), "accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"]}

        return validate

    def build(self, stats) -> ClassifierObjective:
        spec = self.spec
        self.model = build_encoder(spec.model, self.num_bands, spec.init, num_classes=len(self.train_ds.classes),
                                   wavelengths=self.wavelengths)
        augment = HSIAugment(scale=(0.6, 1.0), max_degrees=spec.max_degrees, noise_std=spec.noise_std)
        return ClassifierObjective(self.model, stats.mean, stats.std, augment, linear_probe=spec.linear_probe)

    def export(self, trainer, objective, summary: dict) -> dict:
        spec, out, train, stats = self.spec, self.out, self.train_ds, self.stats
        save_checkpoint(out / "best.safetensors", self.model.state_dict(), architecture=arch_of(spec.model),
                        objective=f"finetune:{spec.init}", data=spec.data, recipe=asdict(spec),
                        wavelengths_nm=None if self.wavelengths is None else self.wavelengths.tolist(),
                        mean=stats.mean, std=stats.std, extra={"classes": train.classes, "crop": train.crop[0]})
        best = next((h for h in summary["history"] if h["epoch"] == summary.get("best_epoch")), {})
        best_val = best.get("val") or {}
        write_json(out / "best.json", {"epoch": summary.get("best_epoch"), "metric": "validation loss",
                                        **{f"val_{k}": v for k, v in best_val.items()}}, indent=None)
        logits, labels = evaluate(objective, self.test, trainer.device)
        metrics = classification_metrics(logits, labels, train.classes)
        # per test cube, in split-file order: what paired tests between methods need (same cubes, same seeds)
        metrics["test_predictions"] = {"paths": [os.path.relpath(p, spec.data) for p, _ in self.test.items],
                                       "labels": labels.tolist(), "predicted": logits.argmax(1).tolist()}
        metrics.update(best_epoch=summary.get("best_epoch"), best_val_loss=best_val.get("loss"),
                       best_val_accuracy=best_val.get("accuracy"), seed=self.seed, crop=train.crop[0],
                       train_size=len(train), train_loss=summary["final_loss"], wall_time_s=summary["wall_time_s"],
                       epochs=summary["epochs"], steps=summary["steps"])
        metrics["training_curve_png"] = str(loss_curve(
            summary["history"], out / "training_curve.png",
            title=f"{spec.model} init={Path(spec.init).name}, seed {self.seed}: training and validation loss"))
        write_json(out / "metrics.json", metrics)
        confusion_matrix(metrics["confusion_matrix"], train.classes, out / "confusion_matrix.png",
                         title=f"{spec.model} init={Path(spec.init).name}, seed {self.seed} (test)")
        return metrics


def run_finetune(spec: FinetuneSpec) -> dict:
    """Fine-tune ``spec.seeds`` times; return and write the aggregate (mean +- std)."""
    spec = check_spec(spec)  # the checks of the command line, for library callers too
    if not spec.data:
        raise ValueError("--data: required (a folder with train.txt, val.txt and test.txt)")
    spec = replace(spec, model=spec.model or model_of(spec.init) or "s3r_resnet18")  # recorded as resolved
    out = Path(spec.out)
    runs = [FinetuneRun(spec, out / f"seed_{spec.seed + k}", seed=spec.seed + k).run() for k in range(spec.seeds)]
    if dist_info()[1] != 0:  # under torchrun, the main process tests, writes and reports
        return {"spec": asdict(spec), "runs": runs, "main_process": False}
    agg = {"spec": asdict(spec), "runs": runs, "aggregate": aggregate(runs)}
    write_json(out / "aggregate.json", agg)
    return agg


def format_aggregate(agg: dict) -> str:
    """The console report of :func:`run_finetune`: test metrics over seeds (accuracies in %, AUROC as a
    number in 0..1), then per seed the selected epoch with its validation loss and accuracy."""
    spec = agg["spec"]
    lines = [f"{'metric':<20}{'mean':>9}{'std':>9}   ({len(agg['runs'])} seed(s), init={spec['init']})"]
    for k, v in agg["aggregate"].items():
        scale, unit = (1, " ") if k == "auroc" else (100, "%")
        lines.append(f"{k:<20}{scale * v['mean']:>8.{3 if k == 'auroc' else 2}f}{unit}"
                     f"{scale * v['std']:>8.{3 if k == 'auroc' else 2}f}")
    for r in agg["runs"]:
        val = (f"validation loss {r['best_val_loss']:.4f}, accuracy {100 * r['best_val_accuracy']:.1f} %"
               if r.get("best_val_loss") is not None else "no validation")
        lines.append(f"seed {r['seed']}: kept epoch {r['best_epoch']} of {r['epochs']} ({r['steps']} steps; {val}); "
                     f"test accuracy {100 * r['accuracy']:.1f} %")
    return "\n".join(lines)
