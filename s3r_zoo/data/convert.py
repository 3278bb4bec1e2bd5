"""``s3r-zoo data convert``: decode cubes of any format once into memory-mappable ``.npy`` files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Union

from ..files import check_writable_dir
from ..progress import progress
from .cache import convert_cube
from .sources import cube_sources

__all__ = ["convert_cubes"]

_logger = logging.getLogger(__name__)


def convert_cubes(source: Union[str, Path], out: Union[str, Path], **read_options: Any) -> list[Path]:
    """Convert a cube, a HIMS folder or a folder of cubes (its layout kept) into ``out``; returns the files
    written (``.npy``, float32, bands last, wavelengths in ``<name>.wavelengths_nm.txt``)."""
    src, out = Path(source), Path(out)
    check_writable_dir(out)
    files, single = cube_sources(src)
    rels = [Path(f.name) if single else f.relative_to(src) for f in files]
    targets: dict[Path, list[Path]] = {}
    for rel in rels:
        targets.setdefault(rel.with_suffix(".npy"), []).append(rel)
    clash = [(t, r) for t, r in targets.items() if len(r) > 1]
    if clash:  # one converted cube would overwrite the other
        raise ValueError("; ".join(f"{' and '.join(x.as_posix() for x in r)} would both become {t.as_posix()}"
                                   for t, r in clash) + ": convert them into separate --out folders (or rename one)")
    written, unknown = [], []
    for f, rel in progress(list(zip(files, rels)), desc="convert", unit="cube", disable=single):
        written.append(convert_cube(f, out / rel.with_suffix(".npy"), **read_options))
        if not written[-1].with_name(f"{written[-1].stem}.wavelengths_nm.txt").is_file():
            unknown.append(rel.as_posix())
    if unknown:
        _logger.warning("%d cube(s) have no wavelengths (%s%s): training and embedding will refuse to mix them with "
                        "cubes that have them; give --wavelengths-file", len(unknown), ", ".join(unknown[:3]),
                        ", ..." if len(unknown) > 3 else "")
    return written
