"""Band metadata of a model and the plan that adapts a pretrained stem to new bands.

:class:`BandInfo` says which bands a model's input channels are (wavelengths, per-band
normalisation). :func:`plan_band_adaptation` decides, from a checkpoint's bands and the
user's request (``in_chans``, ``wavelengths``, ``band_adapt``), how ``conv1`` and
mean/std are moved to the target bands; the maths lives in :mod:`s3r_zoo.spectral`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from .spectral import (describe_range, index_positions, interpolation_matrix, resample_conv_weight,
                       resample_vector, validate_wavelengths)

__all__ = ["BandInfo", "BandAdaptation", "plan_band_adaptation", "band_info", "normalize", "BAND_ADAPT_MODES"]

_logger = logging.getLogger(__name__)
_said: set[tuple[int, str]] = set()

BAND_ADAPT_MODES = ("interp", "repeat")


def _log_once(msg: str, level: int = logging.WARNING) -> None:
    if (level, msg) not in _said:
        _said.add((level, msg))
        _logger.log(level, msg)


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """``(x - mean) / std`` per band: the one normalisation of the zoo.

    Args:
        x: ``(B, H, W)`` or ``(N, B, H, W)`` (bands on axis -3), or ``(N, B)`` spectra.
        mean: B values (a sequence, or a tensor of B values or already broadcastable).
        std: B values, like ``mean``.
    """
    def prep(v):
        v = torch.as_tensor(v, dtype=x.dtype, device=x.device)
        if v.ndim == 1:
            v = v.view((-1, 1, 1) if x.ndim >= 3 else (-1,))
        return v

    return (x - prep(mean)).div_(prep(std))  # the same numbers as (x - m) / s, one temporary less


@dataclass(frozen=True)
class BandInfo:
    """Which physical bands a model's input channels are.

    Attributes:
        wavelengths_nm: Band centres in nm, one per channel, or None when unknown.
        mean: Per-band normalisation mean (subtract before the model).
        std: Per-band normalisation std (divide before the model).
        source: Human-readable provenance, e.g. how the bands were adapted.
    """

    wavelengths_nm: Optional[tuple[float, ...]]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str = ""

    @property
    def in_chans(self) -> int:
        return len(self.mean)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise an ``(N, B, H, W)`` or ``(B, H, W)`` tensor with these per-band statistics."""
        return normalize(x, self.mean, self.std)


@dataclass(frozen=True)
class BandAdaptation:
    """How a source band set maps to the model's target band set.

    ``mode`` is ``identity`` (nothing changes), ``wavelength`` or ``index`` (linear
    interpolation, ``matrix`` is ``(B_tgt, B_src)``), or ``repeat`` (timm's cyclic
    ``adapt_input_conv``).
    """

    src: BandInfo
    tgt: BandInfo
    mode: str
    matrix: Optional[np.ndarray] = None

    def adapt_conv(self, weight: torch.Tensor) -> torch.Tensor:
        """Move a stem weight ``(C_out, B_src, k, k)`` to the target bands."""
        if weight.shape[1] != self.src.in_chans:
            raise ValueError(f"conv1.weight: expected {self.src.in_chans} input channels (checkpoint metadata), "
                             f"found shape {tuple(weight.shape)}")
        if self.mode == "identity":
            return weight
        if self.mode == "repeat":
            from timm.models import adapt_input_conv

            return adapt_input_conv(self.tgt.in_chans, weight, base_chans=self.src.in_chans)
        return resample_conv_weight(weight, self.matrix, scale=True)


def _cyclic(values: Sequence[float], n: int) -> tuple[float, ...]:
    return tuple(float(values[i % len(values)]) for i in range(n))


def plan_band_adaptation(
        src: BandInfo,
        in_chans: int,
        wavelengths: Optional[Sequence[float]] = None,
        band_adapt: str = "interp",
        name: str = "checkpoint",
        log_level: int = logging.WARNING,
) -> BandAdaptation:
    """Decide how to adapt ``src`` bands to a model with ``in_chans`` input channels.

    Rules (``band_adapt='interp'``):
      * same band count and no (or identical) target wavelengths: identity;
      * both sides know wavelengths: interpolate by wavelength; targets outside the
        source range are clamped to the end bands (one warning);
      * otherwise: interpolate on the normalised band index, assuming both band sets
        cover the same spectral range (logged once).

    Args:
        src: Bands of the checkpoint.
        in_chans: Target number of bands.
        wavelengths: Target band centres in nm (length ``in_chans``), if known.
        band_adapt: ``'interp'`` or ``'repeat'`` (timm's cyclic tiling, for comparison).
        name: Checkpoint name for messages.
        log_level: Level of the one-time notes on clamping / index interpolation.
    """
    if not isinstance(in_chans, (int, np.integer)) or isinstance(in_chans, bool) or in_chans < 1:
        raise ValueError(f"in_chans: expected an integer >= 1 (number of bands), found {in_chans!r}")
    in_chans = int(in_chans)
    if band_adapt not in BAND_ADAPT_MODES:
        raise ValueError(f"band_adapt: expected one of {BAND_ADAPT_MODES}, found {band_adapt!r}")
    tgt_wl = None
    if wavelengths is not None:
        tgt_wl = tuple(float(w) for w in validate_wavelengths(wavelengths, "wavelengths", expected_len=in_chans))
    src_desc = f"{name} ({describe_range(src.wavelengths_nm) if src.wavelengths_nm else f'{src.in_chans} bands'})"

    def result(mode: str, matrix: Optional[np.ndarray], mean, std, wl, how: str) -> BandAdaptation:
        tgt = BandInfo(wavelengths_nm=wl, mean=tuple(mean), std=tuple(std), source=f"{src_desc}, {how}")
        return BandAdaptation(src=src, tgt=tgt, mode=mode, matrix=matrix)

    if band_adapt == "repeat":
        return result("repeat", None, _cyclic(src.mean, in_chans), _cyclic(src.std, in_chans), tgt_wl,
                      f"{src.in_chans}->{in_chans} bands by cyclic repetition (timm adapt_input_conv)")

    same_count = in_chans == src.in_chans
    if same_count and (tgt_wl is None or src.wavelengths_nm is None
                       or np.allclose(tgt_wl, src.wavelengths_nm, rtol=0, atol=1e-3)):  # 1 pm: same bands
        return result("identity", None, src.mean, src.std, tgt_wl or src.wavelengths_nm, "unchanged")

    if tgt_wl is not None and src.wavelengths_nm is not None:
        matrix, n_clamped = interpolation_matrix(src.wavelengths_nm, tgt_wl)
        if n_clamped:
            _log_once(f"{n_clamped} of {in_chans} target wavelengths ({describe_range(tgt_wl)}) lie outside "
                      f"{src_desc}; they use the nearest end band's weights", log_level)
        how = f"resampled by wavelength to {describe_range(tgt_wl)}"
        return result("wavelength", matrix, resample_vector(src.mean, matrix), resample_vector(src.std, matrix),
                      tgt_wl, how)

    matrix, _ = interpolation_matrix(index_positions(src.in_chans), index_positions(in_chans))
    if src.wavelengths_nm is None:
        why = f"{name} does not record its wavelengths"
    else:
        why = "no target wavelengths given (pass wavelengths=[...] in nm to resample by wavelength)"
    _log_once(f"{why}: interpolating {src.in_chans}->{in_chans} bands on the normalised band index, "
              f"assuming both cover the same spectral range", log_level)
    return result("index", matrix, resample_vector(src.mean, matrix), resample_vector(src.std, matrix), tgt_wl,
                  f"{src.in_chans}->{in_chans} bands by band-index interpolation (same range assumed)")


def band_info(model: nn.Module) -> BandInfo:
    """The :class:`BandInfo` of a model created by the zoo.

    Falls back to ``model.pretrained_cfg`` mean/std (wavelengths unknown) for other
    timm models.
    """
    info = getattr(model, "band_info", None)
    if isinstance(info, BandInfo):
        return info
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if "mean" not in cfg or "std" not in cfg:
        raise ValueError(f"{type(model).__name__} has no band metadata (no band_info and no pretrained_cfg mean/std)")
    return BandInfo(wavelengths_nm=None, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                    source="pretrained_cfg (wavelengths unknown)")
