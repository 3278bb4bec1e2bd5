"""The labelled data of an evaluation: train / val / test items, band statistics and per-cube features.

The data is split once (or its split files are read); every row of an evaluation then sees
the same cubes. Inputs are normalised with the training split's per-band statistics, for
every encoder and every cube alike, so a cube's features never depend on which other cubes
are in the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..bands import normalize
from ..data.datasets import CubeDataset
from ..data.sources import read_split_file
from ..data.split import make_splits, read_labels, write_splits
from ..data.stats import BandStats, compute_band_stats
from ..progress import progress
from .spec import EvaluateSpec

__all__ = ["SPLITS", "LabelledSplit", "resolve_split", "training_stats", "pooled_features", "mean_spectra"]

SPLITS = ("train", "val", "test")
STATS_CUBES = 64  # training cubes the per-band statistics are measured on (as fine-tuning does)


@dataclass
class LabelledSplit:
    """Where the split files are, what they list, and (when evaluate made the split) how to write them."""

    folder: Path
    items: dict  # split -> [(path, label)]
    classes: list
    description: str
    pending: Optional[tuple] = None  # (splits, classes, has_patient) to write into ``folder`` after the checks

    def labels(self, split: str) -> np.ndarray:
        return np.asarray([lbl for _, lbl in self.items[split]])

    def write(self, spec: EvaluateSpec) -> None:
        """Write the split files evaluate made (nothing when DATA was already split)."""
        if self.pending is not None:
            splits, classes, has_patient = self.pending
            write_splits(self.folder, splits, classes, has_patient, spec.seed, spec.split, 0)
            self.pending = None

    def dataset(self, split: str, spec: EvaluateSpec) -> CubeDataset:
        """Whole raw cubes (or centre crops of ``eval_crop``) of one split."""
        opts = {"wavelengths": spec.wavelengths} if spec.wavelengths else {}
        crop = dict(crop=spec.eval_crop, crop_mode="center") if spec.eval_crop else dict(crop_mode="none")
        return CubeDataset(self.items[split], classes=self.classes, nan=spec.nan, read_options=opts, **crop)


def resolve_split(spec: EvaluateSpec, out: Path) -> LabelledSplit:
    """The split of ``spec.data``: its split files, or (class folders, a CSV) a new patient-grouped split that
    :meth:`LabelledSplit.write` puts in ``out/split`` once every check has passed."""
    src = Path(spec.data)
    if not spec.data:
        raise ValueError("--data: required (split files, class folders or a path,label[,patient] CSV)")
    if src.is_dir() and all((src / f"{s}.txt").is_file() for s in SPLITS):
        items, classes = {}, None
        for s in SPLITS:  # the training split names the classes; the others must use them
            items[s], names = read_split_file(src / f"{s}.txt", classes=classes)
            classes = classes or names
        split = LabelledSplit(src, items, classes, f"split files in {src.name}")
    elif src.is_dir() and any((src / f"{s}.txt").is_file() for s in SPLITS):
        missing = [f"{s}.txt" for s in SPLITS if not (src / f"{s}.txt").is_file()]
        raise FileNotFoundError(f"--data {src}: expected train.txt, val.txt and test.txt; missing {missing}")
    else:
        scans, has_patient = read_labels(src)
        splits, classes = make_splits(scans, spec.split, 0, spec.seed)
        folder = out / "split"
        items = {s: [(x.path, classes.index(x.label)) for x in sorted(splits[s], key=lambda x: str(x.path))]
                 for s in SPLITS}
        how = "whole patients per split" if has_patient else "no patient IDs: every scan its own patient"
        split = LabelledSplit(folder, items, classes, f"{src.name} split {'/'.join(f'{r:g}' for r in spec.split)} "
                              f"({how})", pending=(splits, classes, has_patient))
    for s in SPLITS:
        present = sorted({split.classes[i] for i in split.labels(s)})
        if len(present) < 2:
            raise ValueError(f"--data {src}: the {s} split holds {len(present)} class(es) {present}; an evaluation "
                             f"needs at least 2 classes in train, val and test")
    return split


def training_stats(split: LabelledSplit, spec: EvaluateSpec) -> BandStats:
    """Per-band mean/std of (up to ``STATS_CUBES``) training cubes, the normalisation of every probe row."""
    ds = split.dataset("train", spec)
    n = min(len(ds), STATS_CUBES)
    first = ds.cube(0)
    return compute_band_stats((ds[i] for i in range(n)), num_bands=first.num_bands, wavelengths=first.wavelengths,
                              total=n, desc="band stats")


@torch.no_grad()
def pooled_features(model: torch.nn.Module, split: LabelledSplit, spec: EvaluateSpec,
                    stats: BandStats, desc: str) -> dict:
    """{split: (N, D) float64} global-pooled features of every cube, one cube per forward pass (cubes may
    differ in size), in eval mode and float32, inputs normalised by the training statistics."""
    model = model.eval().to(memory_format=torch.channels_last)
    out = {}
    for s in SPLITS:
        ds = split.dataset(s, spec)
        rows = []
        for i in progress(range(len(ds)), desc=f"{desc}: {s} features", unit="cube", leave=False):
            x = normalize(ds[i][0][None], stats.mean, stats.std)
            rows.append(model(x.contiguous(memory_format=torch.channels_last)).double().numpy()[0])
        out[s] = np.stack(rows)
    return out


def mean_spectra(split: LabelledSplit, spec: EvaluateSpec) -> dict:
    """{split: (N, B)} each cube's mean spectrum: the spectral baseline a pre-trained encoder must beat."""
    out = {}
    for s in SPLITS:
        ds = split.dataset(s, spec)
        out[s] = np.stack([ds[i][0].double().mean(dim=(1, 2)).numpy() for i in range(len(ds))])
    return out
