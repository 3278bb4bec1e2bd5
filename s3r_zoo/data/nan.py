"""NaN/Inf in hyperspectral cubes: find them (per band, in row chunks) and apply the ``nan=`` policy.

``'error'`` (default) names the file, bands and counts; ``'keep'`` returns the data untouched;
``'zero'``, ``'band_mean'`` and ``'inpaint'`` (mean of finite 3x3 neighbours, repeated until filled)
replace them. :func:`~.io.read_cube` and the datasets apply it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["CubeReadError", "NAN_POLICIES", "apply_nan_policy", "nonfinite_scan", "nonfinite_summary", "band_name"]

NAN_POLICIES = ("error", "keep", "zero", "band_mean", "inpaint")


class CubeReadError(ValueError):
    """A cube could not be read, or holds NaN/Inf its policy refuses: names the file and what was wrong."""


def _nonfinite_report(data: np.ndarray, chunk_rows: int = 64) -> dict[int, int]:
    """{band: count} of NaN/Inf values, scanning in row chunks (memory maps stay cheap)."""
    return nonfinite_scan(data, chunk_rows)[0]


def nonfinite_scan(data: np.ndarray, chunk_rows: int = 64) -> tuple[dict[int, int], np.ndarray]:
    """({band: count of NaN/Inf}, per-band mean of the finite values (NaN where none)), in row chunks."""
    counts = np.zeros(data.shape[-1], dtype=np.int64)
    sums = np.zeros(data.shape[-1], dtype=np.float64)
    for r in range(0, data.shape[0], chunk_rows):
        block = np.asarray(data[r:r + chunk_rows], dtype=np.float64)
        finite = np.isfinite(block)
        counts += (~finite).sum(axis=(0, 1))
        sums += np.where(finite, block, 0.0).sum(axis=(0, 1))
    n_finite = data.shape[0] * data.shape[1] - counts
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(n_finite > 0, sums / np.maximum(n_finite, 1), np.nan)
    return {int(b): int(c) for b, c in enumerate(counts) if c}, means


def band_name(b: int, wavelengths: Optional[np.ndarray]) -> str:
    """``band 41 (780 nm)``: 1-based, with its wavelength when known."""
    return f"band {b + 1}" + (f" ({wavelengths[b]:g} nm)" if wavelengths is not None else "")


def _inpaint(band: np.ndarray) -> np.ndarray:
    """Fill non-finite pixels with the mean of finite 3x3 neighbours, repeatedly."""
    out = band.copy()
    bad = ~np.isfinite(out)
    for _ in range(max(out.shape)):
        if not bad.any():
            break
        vals = np.where(bad, 0.0, out)
        pv = np.pad(vals, 1)
        pw = np.pad((~bad).astype(np.float64), 1)
        h, w = out.shape
        s = sum(pv[i:i + h, j:j + w] for i in range(3) for j in range(3))
        n = sum(pw[i:i + h, j:j + w] for i in range(3) for j in range(3))
        fill = bad & (n > 0)
        out[fill] = (s[fill] / n[fill]).astype(out.dtype)
        bad = bad & ~fill
    if bad.any():  # a band with no finite pixel at all
        out[bad] = 0.0
    return out


def apply_nan_policy(data: np.ndarray, nan: str, where: str, wavelengths: Optional[np.ndarray] = None,
                     band_fill: Optional[np.ndarray] = None) -> np.ndarray:
    """Check or repair NaN/Inf values according to ``nan`` (see module docstring).

    ``band_fill`` (one value per band) repairs a band of ``data`` with no finite value at all
    (a crop inside a NaN region of its file); without it such a band is an error under
    ``band_mean`` / ``inpaint``, since there is nothing to repair it from.
    """
    if nan not in NAN_POLICIES:
        raise ValueError(f"nan: expected one of {NAN_POLICIES}, found {nan!r}")
    if nan == "keep":
        return data
    bad = _nonfinite_report(data)
    if not bad:
        return data
    if nan == "error":
        raise CubeReadError(f"{where}: {nonfinite_summary(bad, wavelengths)}; choose a repair with --nan "
                            f"(nan=): 'zero', 'band_mean' or 'inpaint'")
    out = np.array(data, dtype=np.float32)  # a writable in-memory copy
    pixels = out.shape[0] * out.shape[1]
    for b in bad:
        band = out[..., b]
        finite = np.isfinite(band)
        if nan != "zero" and bad[b] == pixels:
            if band_fill is None or not np.isfinite(band_fill[b]):
                raise CubeReadError(f"{where}: {band_name(b, wavelengths)} holds no finite value, so nan={nan!r} "
                                    f"has nothing to repair it from; use nan='zero' to accept an all-zero band, "
                                    f"or leave the band out")
            band[:] = band_fill[b]
        elif nan == "zero":
            band[~finite] = 0.0
        elif nan == "band_mean":
            band[~finite] = band[finite].mean()
        else:
            out[..., b] = _inpaint(band)
    return out


def nonfinite_summary(bad: dict[int, int], wavelengths: Optional[np.ndarray] = None) -> str:
    """``2 NaN/Inf values (band 41 (780 nm): 2)``: at most five bands listed."""
    listed = ", ".join(f"{band_name(b, wavelengths)}: {c}" for b, c in list(bad.items())[:5])
    more = f" and {len(bad) - 5} more bands" if len(bad) > 5 else ""
    return f"{sum(bad.values())} NaN/Inf values ({listed}{more})"
