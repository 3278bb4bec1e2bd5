"""``s3r-zoo data split``: train / val / test split files, stratified by class and grouped by patient.

Why grouped: scans of one patient share the tissue, stain batch and often the slide; a
patient in both the training and the test split leaks those and inflates test accuracy.
So whole patients are assigned to splits, never single scans, and each split is kept close
to the requested share of every class.

Input: a folder with one sub-folder per class (every cube its own patient), or a CSV with a
header ``path,label[,patient]`` (paths relative to the CSV's folder, or absolute).
Output: ``<split>.txt`` files of ``<path> <class>`` lines, read by
:class:`~s3r_zoo.data.datasets.SplitFileDataset` and ``--data`` of every command (paths are
written relative to the split file, so the folder can move with the data), and
``split_summary.json`` with each split's class and patient counts. With ``folds=k``, the
test split (if any) is held out once and the rest divided into k patient-grouped folds:
``fold_<i>/train.txt`` and ``fold_<i>/val.txt``.

Assignment (seeded, deterministic): every split first receives one patient of each class
(rarest classes first), then the remaining patients, largest first, each go to the split
whose class counts fall furthest below its target share.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..files import atomic_write, write_json
from .sources import find_cubes

__all__ = ["Scan", "read_labels", "assign_groups", "make_splits", "write_splits", "format_summary"]


@dataclass(frozen=True)
class Scan:
    """One labelled cube: its path, class name and patient (the cube's own path when unknown)."""

    path: Path
    label: str
    patient: str


def read_labels(source) -> tuple[list[Scan], bool]:
    """(scans, whether patient IDs were given) from a class-folder tree or a ``path,label[,patient]`` CSV."""
    source = Path(source)
    if source.is_dir():
        classes = sorted(d.name for d in source.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not classes:
            raise ValueError(f"{source}: expected one sub-folder per class (or a CSV of path,label[,patient]), "
                             f"found no sub-folders")
        scans = [Scan(p, c, str(p)) for c in classes for p in find_cubes(source / c)]
        if not scans:
            raise ValueError(f"{source}: no cube files in its class folders")
        return scans, False
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such file or folder")
    if source.suffix.lower() != ".csv":
        raise ValueError(f"{source}: expected a folder of class sub-folders or a .csv file, found {source.suffix!r}")
    with open(source, newline="") as f:
        rows = list(csv.reader(f))
    header = [h.strip().lower() for h in rows[0]] if rows else []
    if header[:2] != ["path", "label"] or header[2:] not in ([], ["patient"]):
        raise ValueError(f"{source}: expected the header 'path,label' or 'path,label,patient', found {','.join(header)!r}")
    has_patient = len(header) == 3
    scans, missing, seen = [], [], {}
    for i, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header) or not all(c.strip() for c in row):
            raise ValueError(f"{source}:{i}: expected {len(header)} non-empty fields ({','.join(header)}), "
                             f"found {row}")
        rel = Path(row[0].strip())
        path = rel if rel.is_absolute() else source.parent / rel
        key = os.path.realpath(path)  # one scan is one scan, however it is spelled (./x, x, a link to x)
        if key in seen:
            raise ValueError(f"{source}:{i}: {row[0].strip()} is listed twice (first on line {seen[key]})")
        seen[key] = i
        if not path.exists():
            missing.append(f"line {i}: {row[0].strip()}")
        scans.append(Scan(path, row[1].strip(), row[2].strip() if has_patient else str(path)))
    if missing:
        raise FileNotFoundError(f"{source}: {len(missing)} listed files do not exist ({'; '.join(missing[:5])}"
                                f"{'; ...' if len(missing) > 5 else ''})")
    if not scans:
        raise ValueError(f"{source}: no rows after the header")
    return scans, has_patient


def assign_groups(counts: np.ndarray, shares: Sequence[float], seed: int) -> np.ndarray:
    """Split index of each group (patient).

    Args:
        counts: ``(G, C)`` scans of each class per group.
        shares: Target share of each split (sums to 1; every split gets at least one group per class).
        seed: Order of equally sized groups.
    """
    g, c = counts.shape
    shares = np.asarray(shares, float)
    target = shares[:, None] * counts.sum(0)[None, :]  # (S, C)
    have = np.zeros_like(target)
    where = np.full(g, -1)
    rng = np.random.default_rng(seed)
    order = rng.permutation(g)

    def put(i, s):
        where[i] = s
        have[s] += counts[i]

    for k in np.argsort((counts > 0).sum(0), kind="stable"):  # rarest class first
        for s in range(len(shares)):
            if have[s, k] == 0:
                free = [i for i in order if where[i] < 0 and counts[i, k] > 0]
                if not free:
                    raise ValueError(f"labels: the patients of class index {k} cannot cover every split (some "
                                     f"patients have several classes); lower --folds or set a ratio to 0")
                put(min(free, key=lambda i: counts[i].sum()), s)
    for i in sorted((i for i in order if where[i] < 0), key=lambda i: -counts[i].sum()):
        # the split that lacks most of this group's classes, relative to its target
        gap = ((target - have) / np.maximum(target, 1e-9) * (counts[i] > 0)).sum(1)
        put(i, int(np.argmax(gap)))
    return where


def make_splits(scans: Sequence[Scan], ratios: Sequence[float] = (0.7, 0.15, 0.15), folds: int = 0,
                seed: int = 0) -> tuple[dict[str, list[Scan]], list[str]]:
    """``({split name: scans}, class names)``; names ``train/val/test`` or ``fold_<i>/train|val`` and ``test``."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or ratios[0] <= 0 or abs(sum(ratios) - 1) > 1e-6:
        raise ValueError(f"--ratios: expected three shares train val test, >= 0, train > 0, summing to 1, "
                         f"found {list(ratios)}")
    if folds == 1 or folds < 0:
        raise ValueError(f"--folds: expected 0 (ratios) or at least 2, found {folds}")
    classes = sorted({s.label for s in scans})
    if len(classes) < 2:
        raise ValueError(f"labels: expected at least 2 classes, found {classes}")
    patients = sorted({s.patient for s in scans})
    pid = {p: i for i, p in enumerate(patients)}
    counts = np.zeros((len(patients), len(classes)), int)
    for s in scans:
        counts[pid[s.patient], classes.index(s.label)] += 1
    names = [n for n, r in zip(("train", "val", "test"), ratios) if r > 0]
    shares = [r for r in ratios if r > 0]
    if folds:  # test once, then k folds of what is left
        names, shares = (["rest", "test"], [1 - ratios[2], ratios[2]]) if ratios[2] > 0 else (["rest"], [1.0])
    _check_enough(counts, classes, len(names) if not folds else len(names) - 1 + folds)
    out: dict[str, list[Scan]] = {}
    where = assign_groups(counts, shares, seed) if len(names) > 1 else np.zeros(len(patients), int)
    for s, name in enumerate(names):
        out[name] = [x for x in scans if where[pid[x.patient]] == s]
    if folds:
        rest = out.pop("rest")
        rest_patients = sorted({x.patient for x in rest})
        rid = {p: i for i, p in enumerate(rest_patients)}
        fold_of = assign_groups(counts[[pid[p] for p in rest_patients]], [1 / folds] * folds, seed + 1)
        for k in range(folds):
            out[f"fold_{k}/train"] = [x for x in rest if fold_of[rid[x.patient]] != k]
            out[f"fold_{k}/val"] = [x for x in rest if fold_of[rid[x.patient]] == k]
    return out, classes


def _check_enough(counts: np.ndarray, classes: list[str], parts: int) -> None:
    per_class = (counts > 0).sum(0)
    short = [f"'{c}' ({n})" for c, n in zip(classes, per_class) if n < parts]
    if short:
        raise ValueError(f"labels: every class needs a patient in each of the {parts} splits/folds, but these classes "
                         f"have fewer patients: {', '.join(short)}; lower --folds, set a ratio to 0, or add data")


def _summary(splits: dict[str, list[Scan]], classes: list[str], has_patient: bool, seed: int, ratios, folds) -> dict:
    return {"classes": classes, "seed": seed, "ratios": list(ratios), "folds": folds,
            "patients_given": has_patient,
            "splits": {name: {"scans": len(sc), "patients": len({s.patient for s in sc}),
                              "per_class": {c: sum(s.label == c for s in sc) for c in classes},
                              "patients_per_class": {c: len({s.patient for s in sc if s.label == c}) for c in classes}}
                       for name, sc in splits.items()}}


def write_splits(out, splits: dict[str, list[Scan]], classes: list[str], has_patient: bool, seed: int,
                 ratios: Sequence[float], folds: int) -> dict:
    """Write each split file (paths relative to it) and ``split_summary.json``; returns the summary."""
    out = Path(out)
    for name, scans in splits.items():
        path = out / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{Path(os.path.relpath(s.path.resolve(), path.parent.resolve())).as_posix()} {s.label}"
                 for s in sorted(scans, key=lambda s: str(s.path))]
        text = "\n".join(lines) + "\n"
        atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text))
    summary = _summary(splits, classes, has_patient, seed, ratios, folds)
    write_json(out / "split_summary.json", summary)
    return summary


def format_summary(summary: dict) -> str:
    """A table of scans (and patients) per class and split."""
    classes = summary["classes"]
    width = max(8, *(len(n) for n in summary["splits"]))
    head = f"{'split':<{width}} {'scans':>6} {'patients':>8}  " + "  ".join(f"{c:>10}" for c in classes)
    rows = [head]
    for name, s in summary["splits"].items():
        cells = "  ".join(f"{s['per_class'][c]:>4} ({s['patients_per_class'][c]:>3})" for c in classes)
        rows.append(f"{name:<{width}} {s['scans']:>6} {s['patients']:>8}  {cells}")
    note = "" if summary["patients_given"] else "\n(no patient IDs given: every scan counts as its own patient)"
    return "\n".join(rows) + "\n(per class: scans (patients))" + note


def check_writable_labels(scans: Sequence[Scan], source) -> None:
    """Refuse class names and paths a split file cannot hold: its lines are ``<path> <label>`` (the label is
    the last word) and ``#`` starts a comment, so they would not read back as written."""
    for name in sorted({s.label for s in scans}):
        if re.search(r"[\s#]", name):
            suggestion = re.sub(r"[\s#]+", "_", name)
            raise ValueError(f"{source}: class {name!r}: split files hold '<path> <label>' lines, so a class name "
                             f"cannot contain whitespace or '#'; rename it (e.g. {suggestion!r})")
    bad = [str(s.path) for s in scans if "#" in str(s.path)]
    if bad:
        raise ValueError(f"{source}: {len(bad)} path(s) contain '#', which starts a comment in split files "
                         f"({bad[0]}{', ...' if len(bad) > 1 else ''}); rename them")


def split_labels(source, out, ratios: Sequence[float] = (0.7, 0.15, 0.15), folds: int = 0, seed: int = 0) -> dict:
    """``s3r-zoo data split``: read a class-folder tree or CSV, split it (every refusal before any write) and
    write the split files and ``split_summary.json`` into ``out``; returns the summary."""
    from ..files import check_writable_dir

    check_writable_dir(out)
    scans, has_patient = read_labels(source)
    check_writable_labels(scans, source)
    splits, classes = make_splits(scans, ratios, folds, seed)
    return write_splits(out, splits, classes, has_patient, seed, ratios, folds)
