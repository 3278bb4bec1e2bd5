"""Writing files so that nothing is ever half-written, and small file helpers.

Every result, checkpoint, manifest and plot of the zoo goes through :func:`atomic_write`:
the content is written to a temporary file beside the destination and renamed onto it,
so a crash or a kill mid-write leaves the old file (or none), never a truncated one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, Union

__all__ = ["PathLike", "atomic_write", "save_npy", "write_csv", "write_json", "read_json", "file_digest", "first_line",
           "check_writable_dir", "folder_lock", "LOCK_FILE", "FolderInUseError"]

LOCK_FILE = ".s3r-zoo.lock"  # one run per output folder: who holds it (pid, host, command)

PathLike = Union[str, os.PathLike]
_logger = logging.getLogger(__name__)
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


def read_json(path: PathLike) -> Any:
    """A JSON file's content; ValueError naming the file (and where it breaks) when it is not JSON."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise FileNotFoundError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno} column {e.colno}: {e.msg}); the file was cut or "
                         f"edited: restore it, or remove it to have it written anew") from None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


class FolderInUseError(ValueError):
    """Another live process holds the output folder's lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@contextlib.contextmanager
def folder_lock(folder: PathLike, command: str = "") -> Iterator[Path]:
    """Hold ``folder/.s3r-zoo.lock`` (pid, host, command) for the duration: one run per output folder.

    A second run refuses with one line naming the holder. A lock left by a dead process of this host
    is taken over with a warning; one of another host is refused (its liveness cannot be checked here),
    saying which file to delete once that run is known to be gone. Creates ``folder`` if needed.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command or " ".join(sys.argv[:2])}
    for attempt in (0, 1):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
                pid, host = int(holder["pid"]), str(holder["host"])
            except (OSError, ValueError, KeyError, TypeError):
                holder, pid, host = {}, -1, ""
            half_written = not holder and time.time() - _mtime(path) > 10  # a holder killed while writing it
            if attempt == 0 and (half_written or (holder and host == me["host"] and not _alive(pid))):
                _logger.warning("%s: stale lock of process %s (no longer running) taken over", path, pid)
                path.unlink(missing_ok=True)
                continue
            if host == me["host"] or not holder:
                raise FolderInUseError(f"{folder} is in use by process {pid} on {host or 'this host'} "
                                       f"({holder.get('command', '?')}; lock {path}): wait for it to end, or use "
                                       f"another --out folder")
            raise FolderInUseError(f"{folder} is in use by process {pid} on host {host} (lock {path}): its liveness "
                                   f"cannot be checked from here; delete the lock if that run is gone")
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(me))
        break
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
