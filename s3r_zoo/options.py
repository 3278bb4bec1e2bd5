"""Run options declared once: a dataclass field per option, from which YAML and CLI are derived.

A run specification (``PretrainSpec``, ``FinetuneSpec``) is a dataclass whose fields are
made with :func:`option`: type (the annotation), default, help text, allowed values
(``choices``) and range (``min``, ``max``, ``above``). From that one declaration:

* :func:`add_arguments` generates the argparse options (``batch_size`` -> ``--batch-size``;
  a boolean that defaults to False becomes a flag, one that defaults to True a
  ``--no-<name>`` flag);
* :func:`build_spec` turns a mapping (YAML values, then command-line values on top) into the
  spec, coercing and checking every value the same way whatever its source: ``lr: 1e-4``
  (which YAML 1.1 reads as a string) is a float, ``epochs: ten`` or ``epochs: 0`` is refused
  with :class:`OptionError`, one line naming the key, what was expected and what was found,
  before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Optional, Sequence, TypeVar, Union

__all__ = ["OptionError", "option", "add_arguments", "build_spec", "check_spec", "load_yaml", "coerce"]

T = TypeVar("T")
_META = "s3r_option"


class OptionError(ValueError):
    """An option value of the wrong type, out of range, or not one of the allowed choices."""


def option(default: Any, help: str, *, choices: Optional[Sequence[Any]] = None, min: Optional[float] = None,
           max: Optional[float] = None, above: Optional[float] = None, cli: bool = True,
           metavar: Optional[str] = None, positional: bool = False, required: bool = False) -> Any:
    """A dataclass field that declares one run option.

    Args:
        default: Default value (immutable; lists are copied per instance).
        help: One-line help text (CLI ``--help`` and the docs).
        choices: Allowed values.
        min: Smallest allowed value (numbers).
        max: Largest allowed value (numbers).
        above: Values must be strictly greater than this (numbers).
        cli: False for options that only a YAML file or the library sets.
        metavar: Name of the value in ``--help``.
        positional: A positional command-line argument (``s3r-zoo embed SOURCE``) instead of ``--name``.
        required: The command line requires it (its default then only stands for "not given").
    """
    meta = {_META: dict(help=help, choices=tuple(choices) if choices is not None else None, min=min, max=max,
                        above=above, cli=cli, metavar=metavar,
                        positional=positional, required=required)}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _spec_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if _META in f.metadata]


def _resolved_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _describe(tp: Any, meta: dict) -> str:
    base, optional = _unwrap_optional(tp)
    if meta["choices"] is not None:
        text = "one of " + ", ".join(repr(c) for c in meta["choices"])
    elif typing.get_origin(base) is list:
        (item,) = typing.get_args(base) or (float,)
        text = f"a list of {'numbers' if item is float else item.__name__}"
    else:
        text = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(base, str(base))
    def num(v) -> str:  # an integer option's bounds in full (a seed's 4294967295, not 4.29497e+09)
        return str(int(v)) if base is int and float(v).is_integer() else f"{v:g}"

    bounds = [f"{op} {num(meta[k])}" for k, op in (("above", ">"), ("min", ">="), ("max", "<=")) if meta[k] is not None]
    if bounds:
        text += " " + " and ".join(bounds)
    return text + (" (or none)" if optional else "")


def _scalar(value: Any, base: Any) -> Any:
    """Convert ``value`` to ``base`` (int, float, bool, str) or raise TypeError/ValueError."""
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.strip().lower() in ("true", "yes", "on", "1")
        raise ValueError
    if base is int:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value.strip())
        raise ValueError
    if base is float:
        if isinstance(value, bool):
            raise ValueError
        out = float(value)  # accepts numbers and strings such as "1e-4"
        if not math.isfinite(out):
            raise ValueError
        return out
    if base is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError
    raise TypeError(f"unsupported option type {base}")


def coerce(name: str, value: Any, tp: Any, meta: dict, where: str) -> Any:
    """One option value, converted to its declared type and checked; :class:`OptionError` otherwise."""
    base, optional = _unwrap_optional(tp)

    def fail() -> OptionError:
        return OptionError(f"{where}: {name}: expected {_describe(tp, meta)}, found {value!r}")

    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("none", "null")):
        if optional:
            return None
        raise fail()
    try:
        if typing.get_origin(base) is list:
            (item,) = typing.get_args(base) or (float,)
            items = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
            out = [_scalar(v, item) for v in items]
            if not out:
                raise ValueError
            return out
        out = _scalar(value, base)
    except (TypeError, ValueError):
        raise fail() from None
    if meta["choices"] is not None and out not in meta["choices"]:
        raise fail()
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        if (meta["min"] is not None and out < meta["min"]) or (meta["max"] is not None and out > meta["max"]) or \
                (meta["above"] is not None and out <= meta["above"]):
            raise fail()
    return out


def build_spec(cls: type[T], values: dict[str, Any], where: str = "options") -> T:
    """The spec ``cls`` from ``values`` (YAML and CLI merged): unknown keys and bad values are refused."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise OptionError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    hints = _resolved_types(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            meta = f.metadata.get(_META, dict(choices=None, min=None, max=None, above=None))
            kwargs[f.name] = coerce(f.name, values[f.name], hints[f.name], meta, where)
    return cls(**kwargs)


def check_spec(spec: T, where: str = "options") -> T:
    """``spec`` checked field by field as :func:`build_spec` checks YAML and CLI values (library callers)."""
    return build_spec(type(spec), {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}, where=where)


def load_yaml(path: Optional[str]) -> dict[str, Any]:
    """A YAML mapping of option names (underscores) to values; {} when ``path`` is None."""
    if not path:
        return {}
    import yaml  # optional at import time: only --config needs it

    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise OptionError(f"--config {path}: cannot read YAML ({e})") from None
    if not isinstance(loaded, dict):
        raise OptionError(f"--config {path}: expected a mapping of option: value, found {type(loaded).__name__}")
    return loaded


def add_arguments(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """Add one command-line option per declared field of ``cls`` (default None: 'not given').

    Values stay strings here; :func:`build_spec` converts and checks them, so the command
    line and a YAML file are held to the same rules and give the same one-line errors.
    """
    hints = _resolved_types(cls)
    for f in _spec_fields(cls):
        meta = f.metadata[_META]
        if not meta["cli"] or f.name in skip:
            continue
        if meta.get("positional"):
            parser.add_argument(f.name, help=meta["help"], metavar=meta["metavar"] or f.name.upper())
            continue
        flag = "--" + f.name.replace("_", "-")
        base, _ = _unwrap_optional(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text = meta["help"]
        if base is bool and default is False:
            parser.add_argument(flag, dest=f.name, action="store_const", const=True, help=help_text)
            continue
        if base is bool and default is True:  # the flag turns off what the help describes
            parser.add_argument(f"--no-{f.name.replace('_', '-')}", dest=f.name, action="store_const", const=False,
                                help=f"turn off (on by default): {help_text}")
            continue
        if default not in (None, "", []):
            help_text += f" (default: {default})"
        kw: dict[str, Any] = dict(dest=f.name, help=help_text, required=bool(meta.get("required")))
        if meta["choices"] is not None:
            kw["metavar"] = "{" + ",".join(str(c) for c in meta["choices"]) + "}"
        elif meta["metavar"]:
            kw["metavar"] = meta["metavar"]
        if typing.get_origin(base) is list:
            kw["nargs"] = "+"
        parser.add_argument(flag, **kw)
