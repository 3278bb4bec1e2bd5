"""Run specifications from YAML files and command-line options."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Optional, TypeVar

__all__ = ["load_yaml", "spec_from_dict"]

T = TypeVar("T")


def load_yaml(path: Optional[str]) -> dict[str, Any]:
    """A YAML mapping of option names (underscores) to values; {} when ``path`` is None."""
    if not path:
        return {}
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"--config {path}: cannot read YAML ({e})") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"--config {path}: expected a mapping of option: value, found {type(loaded).__name__}")
    return loaded


def spec_from_dict(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Build a spec dataclass, naming unknown keys (typos) instead of ignoring them."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    return cls(**values)
