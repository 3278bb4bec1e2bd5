"""Entry point of the ``s3r-zoo`` command.

It lives outside the :mod:`s3r_zoo` package on purpose: ``import s3r_zoo`` registers the zoo's
models with timm, which imports torch and timm (~5 s on a 2-core machine), and ``s3r-zoo
--help`` should answer at once. This module asks :mod:`s3r_zoo` to leave the registration to
:func:`s3r_zoo.cli.main`, which does it after the arguments are parsed, before any command runs.
"""

from __future__ import annotations

from typing import Optional, Sequence

DEFER_REGISTRATION = True


def main(argv: Optional[Sequence[str]] = None) -> int:
    from s3r_zoo.cli import main as run

    return run(argv)
