"""Ground-truth coefficients beta~ (docs/method.md, Eq. 1-3), closed form, batched on the device.

Computed on the UNMASKED cube in its raw (physical) units with autocast off: the Gram
matrix is accumulated in float32 around the band means (float64 for float64 cubes, see
:func:`s3r_zoo.lowrank.gram`) and solved in float64.
``coefficient_targets`` uses the one-inverse identity of :mod:`s3r_zoo.lowrank`, solved
only for each sample's target band (one right-hand side per sample).
"""

from __future__ import annotations

import torch

from ..lowrank import gram, loo_coefficients_rows

__all__ = ["coefficient_targets", "DEFAULT_RIDGE"]

DEFAULT_RIDGE = 1e-4


def coefficient_targets(cube: torch.Tensor, band: torch.Tensor, ridge: float = DEFAULT_RIDGE) -> torch.Tensor:
    """beta~ of each sample's target band.

    Args:
        cube: Raw cube ``(N, B, H, W)``.
        band: Target band per sample ``(N,)``.
        ridge: Relative ridge strength (highly correlated bands make G ill-conditioned).

    Returns:
        ``(N, B)`` float64, 0 at the target band.
    """
    with torch.autocast(device_type=cube.device.type, enabled=False):
        n, b = cube.shape[:2]
        if b > 1 and cube.is_contiguous(memory_format=torch.channels_last):  # (N, P, B) as a view, no copy
            pixels = cube.permute(0, 2, 3, 1).reshape(n, -1, b)
        else:
            pixels = cube.reshape(n, b, -1).transpose(1, 2)  # (N, P, B)
        return loo_coefficients_rows(gram(pixels), band, ridge)
