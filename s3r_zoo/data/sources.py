"""What a path names: one cube, a HIMS folder, a folder of cubes, or a split file of ``<path> <label>`` lines.

Every command that takes a data path decides it here (:func:`source_files`, and
:func:`~.datasets.open_source` for a dataset), so one path means the same thing everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

from .io import HIMS_PATTERN, SUFFIX_FORMATS, check_regular_file, detect_format

__all__ = ["find_cubes", "cube_sources", "read_split_file", "source_files", "output_names", "resolved_source"]  # open_source: in .datasets

PathLike = Union[str, Path]


def find_cubes(folder: PathLike) -> list[Path]:
    """Cube files (and HIMS folders) under ``folder``, recursively, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    found = []
    for root, dirs, files in os.walk(folder):
        r = Path(root)
        if any(HIMS_PATTERN.match(f) for f in files):
            found.append(r)
            dirs[:] = []
            continue
        # ENVI cubes are listed by their .hdr; their binary files have no entry in SUFFIX_FORMATS
        found += [r / f for f in files if Path(f).suffix.lower() in SUFFIX_FORMATS]
    for f in found:
        if not f.is_dir():
            check_regular_file(f)  # a FIFO named like a cube: refused here, not read (and waited on) forever
    return sorted(found)


def cube_sources(source: PathLike) -> tuple[list[Path], bool]:
    """``(cube paths, whether the source is one cube)`` of a cube file, a HIMS folder or a folder of cubes."""
    src = Path(source)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file or folder")
    if not src.is_dir() or any(HIMS_PATTERN.match(f.name) for f in src.iterdir()):
        detect_format(src)  # an unknown format: its one-line error now
        return [src], True
    files = find_cubes(src)
    if not files:
        raise ValueError(f"{src}: no cube files found")
    return files, False


def read_split_file(split_file: PathLike, root: Optional[PathLike] = None,
                    classes: Optional[Sequence[str]] = None) -> tuple[list[tuple[Path, int]], list[str]]:
    """Parse ``<path> <label>`` lines (label: class index or class name; ``#`` comments).

    Relative paths are resolved against ``root`` (default: the split file's folder).
    Every missing file is listed in one error.
    """
    split_file = Path(split_file)
    base = Path(root) if root is not None else split_file.parent
    try:
        lines = split_file.read_text().splitlines()
    except OSError as e:
        raise FileNotFoundError(f"{split_file}: cannot read split file ({e})") from None
    entries = []
    for i, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise ValueError(f"{split_file}:{i}: expected '<path> <label>', found {line!r}")
        entries.append((i, parts[0], parts[1]))
    if not entries:
        raise ValueError(f"{split_file}: no '<path> <label>' lines")
    names = list(classes) if classes is not None else None
    if names is None and not all(lbl.lstrip("-").isdigit() for _, _, lbl in entries):
        names = sorted({lbl for _, _, lbl in entries})
    items, missing = [], []
    for i, rel, lbl in entries:
        path = Path(rel) if Path(rel).is_absolute() else base / rel
        if not path.exists():
            missing.append(f"line {i}: {path}")
        if lbl.lstrip("-").isdigit():
            label = int(lbl)
            if label < 0 or (names is not None and label >= len(names)):
                raise ValueError(f"{split_file}:{i}: label {label} outside the classes "
                                 f"{names if names is not None else '[0, ...)'}")
        else:
            if lbl not in names:
                raise ValueError(f"{split_file}:{i}: label '{lbl}' not in the classes {names}")
            label = names.index(lbl)
        items.append((path, label))
    if missing:
        raise FileNotFoundError(f"{split_file}: {len(missing)} listed files do not exist:\n  " + "\n  ".join(missing))
    if names is None:
        names = [str(c) for c in range(max(lbl for _, lbl in items) + 1)]
    return items, names


def source_files(source: PathLike) -> tuple[list[Path], Path, Optional[list[str]]]:
    """The same decision as :func:`open_source`, as files: ``(cube paths, the folder their names are relative
    to, each cube's class name when ``source`` is a split file, else None)``."""
    p = Path(source)
    if _is_split_file(p):
        items, names = read_split_file(p)
        return [f for f, _ in items], p.parent, [names[lbl] for _, lbl in items]
    files, single = cube_sources(p)
    return files, p.parent if single else p, None


def _is_split_file(p: Path) -> bool:
    return p.is_file() and p.suffix == ".txt"


def output_names(cube: Path, source: Path, single: bool) -> tuple[str, str]:
    """``(name, stem)`` of a cube of ``source`` (see :func:`cube_sources`) for per-cube outputs: its path relative
    to the source (no machine path), and a flat file stem (folders joined by ``__``, the suffix dropped), so two
    cubes of one name in different folders never write the same file."""
    rel = cube.name if single else cube.relative_to(source).as_posix()
    flat = rel.replace("/", "__")
    return rel, flat.rsplit(".", 1)[0] if cube.is_file() else flat


def resolved_source(value: str) -> str:
    """A ``--data`` / ``--init`` value as a run's fingerprint records it: an existing path resolved (one folder
    is one folder, however it is spelled: a resume may name it relative or absolute), anything else
    (``synthetic:...``, a tag, ``hf-hub:...``) as given."""
    return str(Path(value).resolve()) if value and Path(value).exists() else value
