"""Ground-truth coefficients beta~ (METHOD.md Eq. 1-3), closed form, batched on the device.

Computed on the UNMASKED cube in its raw (physical) units, in float64 even under AMP.
``coefficient_targets`` uses the one-inverse identity of :mod:`s3r_zoo.lowrank` for all
bands and picks each sample's target band.
"""

from __future__ import annotations

import torch

from ..lowrank import gram, loo_coefficients

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
        pixels = cube.reshape(n, b, -1).transpose(1, 2)  # (N, P, B)
        beta = loo_coefficients(gram(pixels), ridge)  # (N, B, B)
        return beta[torch.arange(n, device=cube.device), band]
