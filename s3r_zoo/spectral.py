"""Pure functions that move per-band quantities from one set of bands to another.

A pretrained stem ``conv1.weight`` of shape ``(C_out, B_src, k, k)`` holds one filter
slice per source band; per-band normalisation statistics are vectors of length
``B_src``. To use them with a sensor that has ``B_tgt`` bands, every per-band quantity
is linearly interpolated along the band axis:

* by wavelength, when both sides know their band centres (nm), or
* by normalised band index, when they do not: both band sets are assumed to cover the
  same spectral range with equal-width contiguous bands, so band ``i`` of ``B`` sits at
  ``(i + 0.5) / B``.

Both cases reduce to one ``(B_tgt, B_src)`` interpolation matrix whose rows sum to 1.
Conv weights are additionally scaled by ``B_src / B_tgt`` so that, for inputs that are
smooth across bands, the stem's activations keep their magnitude (the sum over input
channels has ``B_tgt`` instead of ``B_src`` terms).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "validate_wavelengths",
    "index_positions",
    "interpolation_matrix",
    "resample_vector",
    "resample_conv_weight",
    "describe_range",
]


MIN_NM = 100.0  # no imaging band is centred below 100 nm: smaller values are micrometres or indices


def validate_wavelengths(wavelengths: Sequence[float], name: str = "wavelengths",
                         expected_len: Optional[int] = None) -> np.ndarray:
    """Check a list of band centres and return it as a float64 array.

    Args:
        wavelengths: Band centres in nm.
        name: What to call the argument in error messages.
        expected_len: Required length (e.g. ``in_chans``), if any.

    Raises:
        ValueError: Not 1-D, wrong length, non-finite, below 100 nm (micrometres?) or not
            strictly increasing.
    """
    try:
        arr = np.asarray(wavelengths, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: expected a list of band centres in nm, found {wavelengths!r} ({e})") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D list of band centres in nm, found shape {arr.shape}")
    if expected_len is not None and arr.size != expected_len:
        raise ValueError(f"{name}: expected {expected_len} band centres (one per input channel), found {arr.size}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name}: expected finite values, found {arr[bad[0]]} at position {bad[0]}")
    if arr.min() < MIN_NM:
        hint = (f"; these look like micrometres: multiply by 1000 (e.g. {arr.min():g} um = {arr.min() * 1000:g} nm)"
                if arr.max() < 30 else "")
        raise ValueError(f"{name}: expected band centres in nm (>= {MIN_NM:g}), found {arr.min():g}{hint}")
    steps = np.diff(arr)
    if np.any(steps <= 0):
        i = int(np.flatnonzero(steps <= 0)[0])
        raise ValueError(
            f"{name}: expected strictly increasing band centres, found {arr[i]:g} then {arr[i + 1]:g} "
            f"at positions {i} and {i + 1}")
    return arr


def index_positions(num_bands: int) -> np.ndarray:
    """Band centres on a normalised [0, 1] axis: ``(i + 0.5) / num_bands``."""
    if num_bands < 1:
        raise ValueError(f"num_bands: expected >= 1, found {num_bands}")
    return (np.arange(num_bands, dtype=np.float64) + 0.5) / num_bands


def interpolation_matrix(src_positions: Sequence[float], tgt_positions: Sequence[float]) -> tuple[np.ndarray, int]:
    """Linear interpolation weights from source to target band positions.

    Targets outside the source range are clamped to the nearest end band.

    Args:
        src_positions: Strictly increasing source positions, length ``B_src``.
        tgt_positions: Target positions, length ``B_tgt`` (any order).

    Returns:
        ``(M, n_clamped)``: ``M`` is float64 ``(B_tgt, B_src)`` with rows summing to 1,
        so that ``M @ v`` resamples a per-band vector ``v``; ``n_clamped`` counts targets
        that fell outside ``[src[0], src[-1]]``.
    """
    src = np.asarray(src_positions, dtype=np.float64)
    tgt = np.asarray(tgt_positions, dtype=np.float64)
    n_src = src.size
    m = np.zeros((tgt.size, n_src), dtype=np.float64)
    clamped = (tgt < src[0]) | (tgt > src[-1])
    if n_src == 1:
        m[:, 0] = 1.0
        return m, int(clamped.sum())
    t = np.clip(tgt, src[0], src[-1])
    # right neighbour index in [1, n_src - 1]
    hi = np.clip(np.searchsorted(src, t, side="right"), 1, n_src - 1)
    lo = hi - 1
    frac = (t - src[lo]) / (src[hi] - src[lo])
    rows = np.arange(tgt.size)
    m[rows, lo] += 1.0 - frac
    m[rows, hi] += frac
    return m, int(clamped.sum())


def resample_vector(values: Sequence[float], matrix: np.ndarray) -> tuple[float, ...]:
    """Apply an interpolation matrix to a per-band vector (mean, std, ...)."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (matrix.shape[1],):
        raise ValueError(f"per-band vector: expected length {matrix.shape[1]}, found shape {v.shape}")
    return tuple(float(x) for x in matrix @ v)


def resample_conv_weight(weight: torch.Tensor, matrix: np.ndarray, scale: bool = True) -> torch.Tensor:
    """Resample a conv weight ``(C_out, B_src, ...)`` along its input-channel axis.

    Args:
        weight: Source weight; any float dtype (computed in float32 or float64).
        matrix: ``(B_tgt, B_src)`` interpolation matrix.
        scale: Multiply by ``B_src / B_tgt`` to keep activation magnitude.

    Returns:
        Weight of shape ``(C_out, B_tgt, ...)`` in the dtype of ``weight``.
    """
    b_tgt, b_src = matrix.shape
    if weight.ndim < 2 or weight.shape[1] != b_src:
        raise ValueError(
            f"conv weight: expected {b_src} input channels (dim 1), found shape {tuple(weight.shape)}")
    import torch  # here, not at the top: the readers use this module, and `s3r-zoo --help` imports them

    work_dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
    mat = torch.as_tensor(matrix, dtype=work_dtype, device=weight.device)
    out = torch.einsum("oi...,ji->oj...", weight.to(work_dtype), mat)
    if scale:
        out = out * (b_src / b_tgt)
    return out.to(weight.dtype).contiguous()


def describe_range(wavelengths: Optional[Sequence[float]]) -> str:
    """Short human text for a band set, e.g. ``'41 bands, 380-780 nm'``."""
    if wavelengths is None:
        return "unknown wavelengths"
    w = [float(x) for x in wavelengths]
    return f"{len(w)} bands, {w[0]:g}-{w[-1]:g} nm"
