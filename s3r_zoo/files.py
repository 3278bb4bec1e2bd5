"""Writing files so that nothing is ever half-written, and small file helpers.

Every result, checkpoint, manifest and plot of the zoo goes through :func:`atomic_write`:
the content is written to a temporary file beside the destination and renamed onto it,
so a crash or a kill mid-write leaves the old file (or none), never a truncated one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, Union

__all__ = ["PathLike", "atomic_write", "save_npy", "write_csv", "write_json", "file_digest", "first_line", "check_writable_dir"]

PathLike = Union[str, os.PathLike]
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: PathLike, write_fn: Callable[[str], Any]) -> Path:
    """Call ``write_fn(tmp_path)``, then rename the result onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write_fn(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_npy(path: PathLike, array: Any) -> Path:
    """``np.save`` atomically (through a file object: np.save would append ``.npy`` to the temporary name)."""
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(array))

    return atomic_write(path, write)


def write_csv(path: PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A CSV file (header row, then ``rows``; ``\\n`` line ends) written atomically."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    text = buf.getvalue()
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_json(path: PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (one trailing newline) atomically; non-JSON numbers go through float()."""
    text = json.dumps(obj, indent=indent, default=float) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def file_digest(path: PathLike, chunk: int = 1 << 20) -> tuple[str, int]:
    """(sha256 hex, size in bytes), reading in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def first_line(e: BaseException) -> str:
    """The first line of an exception's message ('' if empty): hub errors run to many lines."""
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def check_writable_dir(path: PathLike, name: str = "--out") -> None:
    """Raise ValueError (one line) unless ``path`` is, or can become, a writable folder; writes nothing."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name} {p}: expected a folder, found an existing file")
    existing = p
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {p}: cannot write there ({existing} is not a writable folder)")
