"""Data sets of simulated cubes (:mod:`.synthetic`): generated on the fly (:class:`SyntheticHSI`, the
embedded default data) or written to disk with split files (:func:`write_dataset`, ``s3r-zoo data synth``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..files import atomic_write, check_writable_dir, write_json
from ..progress import progress
from .synthetic import DEFAULT_DIFFICULTY, PRESETS, Preset, simulate_cube

__all__ = ["SyntheticHSI", "write_dataset"]


class SyntheticHSI(Dataset):
    """Cubes simulated on the fly: the embedded default data (no files needed).

    Item ``i`` is ``(x, label)`` with ``x`` a float32 ``(B, H, W)`` tensor of class
    ``label``; labels follow the preset's published class proportions.
    """

    def __init__(self, preset: Union[str, Preset] = "plgc_like", n: int = 64,
                 size: Union[int, tuple[int, int]] = 128, seed: int = 0, difficulty: float = DEFAULT_DIFFICULTY,
                 transform=None):
        self.preset = PRESETS[preset] if isinstance(preset, str) else preset
        self.size, self.seed, self.difficulty, self.transform = size, seed, difficulty, transform
        self.labels = _labels(self.preset, n, seed)
        self.wavelengths = np.asarray(self.preset.wavelengths_nm)
        self.classes = list(self.preset.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        cube = simulate_cube(self.preset, self.labels[i], self.size, seed=self.seed * 1_000_003 + i,
                             difficulty=self.difficulty)
        x = torch.from_numpy(np.ascontiguousarray(cube.data.transpose(2, 0, 1)))
        if self.transform is not None:
            x = self.transform(x, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + i))
        return x, self.labels[i]


def _labels(p: Preset, n: int, seed: int) -> list[int]:
    """``n`` labels in the preset's class proportions (largest remainder), shuffled by seed."""
    if n < len(p.classes):
        raise ValueError(f"n: need at least one cube per class ({len(p.classes)}), found {n}")
    raw = np.asarray(p.class_weights) * n
    counts = np.maximum(np.floor(raw).astype(int), 1)
    while counts.sum() < n:
        counts[np.argmax(raw - counts)] += 1
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    labels = np.repeat(np.arange(len(p.classes)), counts)
    np.random.default_rng(seed).shuffle(labels)
    return labels.tolist()


def _split_indices(labels: list[int], split: Sequence[float], seed: int) -> list[list[int]]:
    """Stratified train/val/test indices with the given fractions."""
    rng = np.random.default_rng(seed + 7)
    parts: list[list[int]] = [[], [], []]
    for c in sorted(set(labels)):
        idx = [i for i, lbl in enumerate(labels) if lbl == c]
        rng.shuffle(idx)
        n_val = int(round(split[1] * len(idx)))
        n_test = int(round(split[2] * len(idx)))
        n_train = max(1, len(idx) - n_val - n_test) if len(idx) > 2 else len(idx)
        parts[0] += idx[:n_train]
        parts[1] += idx[n_train:n_train + n_val]
        parts[2] += idx[n_train + n_val:]
    return [sorted(p) for p in parts]


def _save_npy(path: str, arr: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save(path) would append '.npy' to the temp name
        np.save(f, arr)


def write_dataset(out_dir: Union[str, Path], preset: str = "plgc_like", n: int = 300,
                  size: Union[int, tuple[int, int], None] = 256, seed: int = 0,
                  difficulty: float = DEFAULT_DIFFICULTY, dtype: str = "float16", magnification: float = 1.0,
                  stain_balance: float = 1.0, split: Optional[Sequence[float]] = None,
                  wavelengths: Optional[Sequence[float]] = None, cues: str = "M") -> dict:
    """Simulate ``n`` cubes into ``out_dir``, with split files.

    ``magnification``, ``stain_balance`` and ``cues`` (the world: M, C or M+C): see :func:`simulate_cube`. ``split``: train / val /
    test fractions (default: the preset's published ratios). ``wavelengths``: other band
    centres in nm than the preset's (another sensor seeing the same tissue).

    Layout: ``cubes/<class>/<i>.npy`` (H, W, B), ``wavelengths_nm.txt`` beside the cubes
    (read_cube picks it up), ``train.txt`` / ``val.txt`` / ``test.txt`` (``<path> <class>``
    lines, the published split ratios, stratified), and ``meta.json`` (the settings, and each cube's own
    draws under ``latents``, by its path: ``simulate_cube``'s ``Cube.meta``).
    """
    if preset not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}, found {preset!r}")
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype: expected 'float16' or 'float32', found {dtype!r}")
    p = PRESETS[preset]
    if wavelengths is not None:
        p = replace(p, wavelengths_nm=tuple(float(w) for w in wavelengths))
    split = tuple(split) if split is not None else p.split
    if len(split) != 3 or min(split) < 0 or abs(sum(split) - 1) > 1e-6:
        raise ValueError(f"split: expected three fractions (train, val, test) summing to 1, found {split}")
    simulate_cube(p, 0, 8, difficulty=difficulty, magnification=magnification,  # refuse bad settings before
                  stain_balance=stain_balance, cues=cues)                       # writing anything
    out = Path(out_dir)
    check_writable_dir(out)
    labels = _labels(p, n, seed)
    paths, latents = [], {}
    for c in p.classes:
        (out / "cubes" / c).mkdir(parents=True, exist_ok=True)
        np.savetxt(out / "cubes" / c / "wavelengths_nm.txt", np.asarray(p.wavelengths_nm), fmt="%.4f")
    for i, lbl in enumerate(progress(labels, desc=f"simulating {preset}", unit="cube")):
        rel = Path("cubes") / p.classes[lbl] / f"{i:05d}.npy"
        cube = simulate_cube(p, lbl, size, seed=seed * 1_000_003 + i, difficulty=difficulty,
                             magnification=magnification, stain_balance=stain_balance, cues=cues)
        arr = cube.data.astype(dtype)
        atomic_write(out / rel, lambda tmp, arr=arr: _save_npy(tmp, arr))
        paths.append(rel)
        latents[rel.as_posix()] = cube.meta["latents"]
    splits = _split_indices(labels, split, seed)
    for name, idx in zip(("train", "val", "test"), splits):
        text = "".join(f"{paths[i].as_posix()} {p.classes[labels[i]]}\n" for i in idx)
        atomic_write(out / f"{name}.txt", lambda tmp, text=text: Path(tmp).write_text(text))
    meta = {"preset": preset, "classes": list(p.classes), "n": n, "size": size, "seed": seed,
            "difficulty": difficulty, "magnification": magnification, "stain_balance": stain_balance, "cues": cues,
            "dtype": dtype, "wavelengths_nm": list(p.wavelengths_nm),
            "split_sizes": {k: len(v) for k, v in zip(("train", "val", "test"), splits)},
            "class_counts": {c: labels.count(i) for i, c in enumerate(p.classes)},
            "latents": latents}  # each cube's own draws (simulate_cube's Cube.meta), by its path
    write_json(out / "meta.json", meta)
    return meta
