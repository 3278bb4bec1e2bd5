"""The zoo's checkpoint format: a safetensors file with string metadata.

A checkpoint is a plain timm state dict (``conv1.weight``, ``layer1.0.conv1.weight``,
...) saved with :mod:`safetensors`; its header's ``__metadata__`` (string to string)
describes the bands the weights were trained on. Any tool can write a compatible file:

=================  ==========  ==============================================================
key                required    value
=================  ==========  ==============================================================
``format``         yes         ``s3r_zoo.v1``
``architecture``   yes         timm architecture, e.g. ``resnet50``
``in_chans``       yes         decimal string, equals ``conv1.weight.shape[1]``
``objective``      yes         pre-training objective, e.g. ``cr``, ``br``, ``simsiam``
``data``           yes         free text: what the weights were trained on
``recipe``         yes         JSON (or free text): how they were trained
``wavelengths_nm`` no          JSON list of ``in_chans`` increasing floats (band centres)
``mean``/``std``   no          JSON lists of ``in_chans`` floats: per-band normalisation
=================  ==========  ==============================================================

Other keys are kept as free-form ``extra`` metadata. Nothing here uses pickle.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .bands import BandInfo
from .files import PathLike, atomic_write
from .spectral import validate_wavelengths

__all__ = ["FORMAT", "CheckpointError", "CheckpointInfo", "save_checkpoint", "load_checkpoint",
           "read_checkpoint_info", "parse_value", "check_finite"]

FORMAT = "s3r_zoo.v1"
REQUIRED_KEYS = ("format", "architecture", "in_chans", "objective", "data", "recipe")
BAND_KEYS = ("wavelengths_nm", "mean", "std")
STEM_KEY = "conv1.weight"



class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or its metadata is invalid."""


@dataclass(frozen=True)
class CheckpointInfo:
    """Parsed, validated metadata of a zoo checkpoint."""

    architecture: str
    in_chans: int
    objective: str
    data: str
    recipe: Any
    wavelengths_nm: Optional[tuple[float, ...]] = None
    mean: Optional[tuple[float, ...]] = None
    std: Optional[tuple[float, ...]] = None
    extra: dict[str, str] = field(default_factory=dict)
    path: Optional[str] = None

    def extra_value(self, key: str) -> Any:
        """An ``extra`` entry parsed back from its string (JSON where it is JSON), or None."""
        return parse_value(self.extra.get(key))

    @property
    def bands(self) -> Optional[BandInfo]:
        """The bands as :class:`~s3r_zoo.bands.BandInfo`, or None unless mean and std are recorded."""
        if self.mean is None or self.std is None:
            return None
        return BandInfo(self.wavelengths_nm, self.mean, self.std, source=f"checkpoint {self.path}")

    def to_metadata(self) -> dict[str, str]:
        """The safetensors ``__metadata__`` dict for this info."""
        meta = dict(self.extra)
        meta.update(
            format=FORMAT,
            architecture=self.architecture,
            in_chans=str(self.in_chans),
            objective=self.objective,
            data=self.data,
            recipe=self.recipe if isinstance(self.recipe, str) else json.dumps(self.recipe, sort_keys=True),
        )
        for key in BAND_KEYS:
            value = getattr(self, key)
            if value is not None:
                meta[key] = json.dumps([float(v) for v in value])
        return meta


def parse_value(value: Optional[str]) -> Any:
    """A metadata string as the JSON value it holds, or the string itself (free text); None stays None."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _float_list(value: Optional[Sequence[float]], key: str, n: int, where: str) -> Optional[tuple[float, ...]]:
    if value is None:
        return None
    vals = tuple(float(v) for v in value)
    if len(vals) != n:
        raise CheckpointError(f"{where}: '{key}' expected {n} values (in_chans), found {len(vals)}")
    if not all(math.isfinite(v) for v in vals):
        raise CheckpointError(f"{where}: '{key}' expected finite values, found {vals}")
    if key == "std" and any(v <= 0 for v in vals):
        raise CheckpointError(f"{where}: 'std' expected positive values, found min {min(vals)}")
    return vals


def _build_info(meta: Mapping[str, str], where: str, path: Optional[str] = None) -> CheckpointInfo:
    """Validate a raw metadata mapping into a :class:`CheckpointInfo`."""
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise CheckpointError(
            f"{where}: missing required metadata {missing}; found keys {sorted(meta)}. "
            f"Write checkpoints with s3r_zoo.save_checkpoint() (format '{FORMAT}').")
    if meta["format"] != FORMAT:
        raise CheckpointError(f"{where}: metadata 'format' expected '{FORMAT}', found '{meta['format']}'")
    try:
        in_chans = int(meta["in_chans"])
    except ValueError:
        raise CheckpointError(f"{where}: 'in_chans' expected a decimal integer, found '{meta['in_chans']}'") from None
    if in_chans < 1:
        raise CheckpointError(f"{where}: 'in_chans' expected >= 1, found {in_chans}")
    bands: dict[str, Optional[tuple[float, ...]]] = {}
    for key in BAND_KEYS:
        raw = meta.get(key)
        if raw is None:
            bands[key] = None
            continue
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{where}: '{key}' expected a JSON list of numbers, found {raw[:60]!r} ({e})") from None
        if not isinstance(parsed, list):
            raise CheckpointError(f"{where}: '{key}' expected a JSON list of numbers, found {type(parsed).__name__}")
        bands[key] = _float_list(parsed, key, in_chans, where)
    if bands["wavelengths_nm"] is not None:
        try:
            validate_wavelengths(bands["wavelengths_nm"], name=f"{where}: 'wavelengths_nm'")
        except ValueError as e:
            raise CheckpointError(str(e)) from None
    recipe = parse_value(meta["recipe"])  # JSON, or free text
    extra = {k: v for k, v in meta.items() if k not in REQUIRED_KEYS + BAND_KEYS}
    return CheckpointInfo(architecture=meta["architecture"], in_chans=in_chans, objective=meta["objective"],
                          data=meta["data"], recipe=recipe, extra=extra, path=path, **bands)


def _open(path: PathLike):
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint file not found")
    try:
        return safe_open(str(p), framework="pt")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{p}: not a readable safetensors file ({e}). The zoo stores weights as safetensors only; "
            f"convert pickled .pth/.bin files with safetensors.torch.save_file.") from None


def _check_stem(stem_shape: Optional[Sequence[int]], info: CheckpointInfo, where: str) -> None:
    if stem_shape is None:
        raise CheckpointError(f"{where}: expected a '{STEM_KEY}' tensor (timm ResNet state dict), found none")
    if len(stem_shape) != 4 or stem_shape[1] != info.in_chans:
        raise CheckpointError(
            f"{where}: '{STEM_KEY}' shape {tuple(stem_shape)} does not match metadata in_chans={info.in_chans}")


def check_finite(state_dict: Mapping[str, torch.Tensor], where: str) -> None:
    """Raise :class:`CheckpointError` naming the tensors that hold NaN/Inf (a diverged or damaged file)."""
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{where}: non-finite values (NaN/Inf) in {len(bad)} tensors ({', '.join(bad[:3])}"
                              f"{', ...' if len(bad) > 3 else ''}); the weights diverged or the file is damaged")


def read_checkpoint_info(path: PathLike) -> CheckpointInfo:
    """Read and validate only the header of a checkpoint (no tensor data)."""
    where = str(path)
    with _open(path) as f:
        info = _build_info(f.metadata() or {}, where, path=where)
        stem = f.get_slice(STEM_KEY).get_shape() if STEM_KEY in f.keys() else None
    _check_stem(stem, info, where)
    return info


def load_checkpoint(path: PathLike, device: Union[str, torch.device] = "cpu") -> tuple[dict[str, torch.Tensor], CheckpointInfo]:
    """Load a zoo checkpoint.

    Returns:
        ``(state_dict, info)``; tensors keep the dtype they were saved in.

    Raises:
        CheckpointError: Not safetensors, missing/invalid metadata, a stem that disagrees
            with ``in_chans``, or non-finite values.
    """
    where = str(path)
    with _open(path) as f:
        info = _build_info(f.metadata() or {}, where, path=where)
        try:
            state_dict = {k: f.get_tensor(k).to(device) for k in f.keys()}
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{where}: tensor data unreadable ({type(e).__name__}: {e})") from None
    _check_stem(tuple(state_dict[STEM_KEY].shape) if STEM_KEY in state_dict else None, info, where)
    check_finite(state_dict, where)
    return state_dict, info


def save_checkpoint(
        path: PathLike,
        state_dict: Mapping[str, torch.Tensor],
        *,
        architecture: str,
        objective: str,
        data: str,
        recipe: Any = None,
        wavelengths_nm: Optional[Sequence[float]] = None,
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        extra: Optional[Mapping[str, Any]] = None,
        dtype: Optional[torch.dtype] = None,
) -> CheckpointInfo:
    """Write a state dict as a zoo checkpoint, atomically.

    Args:
        path: Destination ``.safetensors`` file.
        state_dict: timm state dict of the encoder (classifier optional).
        architecture: timm architecture name (``resnet18``, ``resnet50``).
        objective: Pre-training objective that produced the weights.
        data: What the weights were trained on.
        recipe: JSON-serialisable training recipe (or free text).
        wavelengths_nm: Band centres, one per input channel, if known.
        mean: Per-band normalisation mean, if known.
        std: Per-band normalisation std, if known.
        extra: Additional metadata; values are stored as strings (non-strings as JSON).
        dtype: Cast floating tensors (e.g. ``torch.float16`` for releases).

    Returns:
        The validated :class:`CheckpointInfo` that was written.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: expected a '.safetensors' file name, found suffix '{path.suffix}'")
    if STEM_KEY not in state_dict:
        raise CheckpointError(f"{path}: state dict has no '{STEM_KEY}'; expected a timm ResNet state dict")
    in_chans = int(state_dict[STEM_KEY].shape[1])
    extra_str = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (extra or {}).items()}
    clash = set(extra_str) & set(REQUIRED_KEYS + BAND_KEYS)
    if clash:
        raise CheckpointError(f"extra metadata must not override reserved keys {sorted(clash)}")
    raw = CheckpointInfo(architecture=architecture, in_chans=in_chans, objective=objective, data=data,
                         recipe={} if recipe is None else recipe, wavelengths_nm=wavelengths_nm,
                         mean=mean, std=std, extra=extra_str).to_metadata()
    info = _build_info(raw, str(path), path=str(path))  # same validation as on load
    check_finite(state_dict, str(path))  # a diverged model is never written as a checkpoint
    tensors = {}
    for k, v in state_dict.items():
        t = v.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[k] = t.contiguous()
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=raw))
    return info
