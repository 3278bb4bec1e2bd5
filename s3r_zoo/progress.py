"""Progress bars that suit where the output goes: a live bar on a terminal, plain lines in a log.

tqdm redraws its bar with carriage returns, ten times a second. On a terminal that is a
bar; in a file (``nohup``, CI, ``> run.log``) every redraw stays in the file, thousands of
characters per epoch. :func:`progress` returns a tqdm bar either way, but when its stream
is not a terminal the bar redraws at most every :data:`LOG_INTERVAL_S` seconds and each
redraw becomes one whole line (first and last state always), so a log keeps the ETA and
rate, a few lines per epoch.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable, Optional, TextIO

from tqdm.auto import tqdm

__all__ = ["progress", "LOG_INTERVAL_S", "say"]

LOG_INTERVAL_S = 30.0


class _Lines:
    """A text stream wrapper that turns tqdm's carriage-return redraws into whole lines."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress(iterable: Optional[Iterable] = None, *, file: Optional[TextIO] = None, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)`` on a terminal; one line at most every :data:`LOG_INTERVAL_S` s elsewhere.

    Args:
        iterable: What to iterate over (or None with ``total=`` and manual ``update``).
        file: The stream (default ``sys.stderr``, read at call time so redirections apply).
        **kwargs: tqdm's own options (``total``, ``desc``, ``unit``, ``disable``, ...).
    """
    stream = sys.stderr if file is None else file
    if _is_terminal(stream):
        return tqdm(iterable, file=stream, **kwargs)
    kwargs.pop("dynamic_ncols", None)
    kwargs.update(mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S)
    kwargs.setdefault("bar_format", "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, "
                                    "{rate_fmt}{postfix}]")
    return tqdm(iterable, file=_Lines(stream), **kwargs)


def say(text: str, file: Optional[TextIO] = None) -> None:
    """One line for a person (``sys.stderr`` by default), printed above a live bar instead of through it."""
    tqdm.write(text, file=sys.stderr if file is None else file)
