"""Package namespaces that import their modules on first use (PEP 562).

``s3r-zoo --help`` has to answer at once, and importing torch takes ~2.5 s, timm ~5 s on a
2-core machine. So every command's option declarations (the ``spec`` modules) import neither,
and a package's ``__init__`` names its public objects without importing the modules that hold
them: ``from s3r_zoo.train import Trainer`` imports :mod:`s3r_zoo.train.engine` when it runs,
not when :mod:`s3r_zoo.train.spec` is imported.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

__all__ = ["lazy_exports"]


def lazy_exports(package: str, modules: dict[str, tuple[str, ...]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list], list]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` whose public names live in ``modules``
    (``{".engine": ("Trainer", ...)}``; the name ``""`` stands for the submodule itself)."""
    where = {name: mod for mod, names in modules.items() for name in names}
    where.update({mod[1:]: "" for mod, names in modules.items() if "" in names})
    where.pop("", None)

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if where[name] == "":
            value = importlib.import_module(f"{package}.{name}")
        else:
            value = getattr(importlib.import_module(where[name], package), name)
        setattr(sys.modules[package], name, value)  # found directly from now on
        return value

    def __dir__() -> list:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__, [n for n in where if where[n] != ""]
