"""The low-rank prior of S3R (docs/method.md, Eq. 1-3): every band from all the others.

For pixels ``X`` (P x B) with Gram matrix ``G = X^T X`` and ``Q = (G + lam I)^{-1}``,
the leave-one-band-out ridge coefficients of every band come from ONE inverse:

    beta[b, i] = -Q[b, i] / Q[b, b]   (i != b),   beta[b, b] = 0

(block-inverse identity; exact least squares when ``lam = 0``). The residual sum of
squares of band ``b`` is ``w_b^T G w_b`` with ``w_b = e_b - beta[b]``.

All functions take torch tensors with any leading batch dimensions, return float64
(also under AMP), and run on whatever device the input is on. :func:`gram` accumulates
float64 inputs in float64 and everything else in float32 around the band means (see there).
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["gram", "ridge_lambda", "loo_coefficients", "loo_coefficients_rows", "loo_rss",
           "loo_r2"]


def gram(pixels: torch.Tensor, center: bool = False) -> torch.Tensor:
    """Gram matrix ``X^T X`` of ``pixels`` (..., P, B), returned in float64: (..., B, B).

    float64 inputs are accumulated in float64. Any other input (float32 crops, float16
    files, AMP) is accumulated in float32 AROUND THE BAND MEANS ``m``, and the shift is
    added back in float64 with the identity

        X^T X = Xc^T Xc + s m^T + m s^T + P m m^T,   Xc = X - m,   s = sum_p Xc

    which is exact for ANY shift ``m``; it only has to be close to the mean for the
    float32 sums to keep their digits, so ``m`` is the mean of evenly spaced
    pixels (about 256: one cheap pass less than the exact mean).

    Raw float32 sums of large positive intensities lose digits (beta~ off by ~2 % on real
    HIMS tiles); the shifted float32 sums give beta~ within 1e-3 of float64 (default ridge;
    2e-3 without ridge) and the same residual to 7 digits, finer than the 1e-3 quantisation
    of float16 sensor data. They run 2.5-4x faster on CPU, and float32 is the only fast
    path on consumer GPUs whose float64 rate is 1/64 of float32 (the paper's RTX 3090).

    Args:
        pixels: (..., P, B) finite values.
        center: Subtract the band means first (the Gram matrix of a fit with intercept).
    """
    with torch.autocast(device_type=pixels.device.type, enabled=False):
        xt = pixels.transpose(-1, -2)  # (..., B, P): contiguous for cube.reshape(N, B, -1) input
        if pixels.dtype == torch.float64:
            xt = xt - xt.mean(dim=-1, keepdim=True) if center else xt
            return xt @ xt.transpose(-1, -2)
        xt = xt.to(torch.float32)
        m = xt if center else xt[..., ::max(1, xt.shape[-1] // 256)]
        m = m.mean(dim=-1, keepdim=True)  # (..., B, 1): the exact mean when centring, else the shift
        xc = xt - m
        g = (xc @ xc.transpose(-1, -2)).to(torch.float64)
        if center:
            return g
        m, s = m.to(torch.float64), xc.sum(dim=-1, keepdim=True).to(torch.float64)
        mt = m.transpose(-1, -2)
        return g + s @ mt + m @ s.transpose(-1, -2) + xt.shape[-1] * (m @ mt)


def ridge_lambda(g: torch.Tensor, ridge: float) -> torch.Tensor:
    """Ridge term scaled to the data: ``ridge * trace(G) / B`` (shape (..., 1, 1))."""
    b = g.shape[-1]
    # floored, so an all-zero (or constant, once centred) crop gives beta = 0 instead of a singular solve
    return (ridge * torch.diagonal(g, dim1=-2, dim2=-1).sum(-1) / b).clamp_min(1e-30)[..., None, None]


def loo_coefficients(g: torch.Tensor, ridge: float = 1e-6) -> torch.Tensor:
    """Leave-one-out coefficients of every band from one inverse.

    Args:
        g: Gram matrix (..., B, B).
        ridge: Relative ridge strength (see :func:`ridge_lambda`); 0 = plain least squares.

    Returns:
        ``beta`` (..., B, B) float64: row ``b`` predicts band ``b``; ``beta[..., b, b] = 0``.
    """
    b = g.shape[-1]
    eye = torch.eye(b, dtype=g.dtype, device=g.device)
    q = torch.linalg.inv(g + ridge_lambda(g, ridge) * eye)
    beta = -q / torch.diagonal(q, dim1=-2, dim2=-1)[..., :, None]
    return beta * (1 - eye)


def loo_coefficients_rows(g: torch.Tensor, band: torch.Tensor, ridge: float = 1e-6) -> torch.Tensor:
    """Row ``band`` of :func:`loo_coefficients` for each item, from one column of the inverse.

    ``Q e_b`` is column ``b`` of ``Q = (G + lam I)^{-1}`` (= row ``b``, Q is symmetric), so
    one right-hand side per item gives the same identity without forming all of ``Q``:
    the training targets' path (one target band per sample).

    Args:
        g: Gram matrix (N, B, B).
        band: Target band index per item (N,).
        ridge: As in :func:`loo_coefficients`.

    Returns:
        (N, B) float64 with a 0 at the target band.
    """
    n, b, _ = g.shape
    eye = torch.eye(b, dtype=g.dtype, device=g.device)
    q = torch.linalg.solve(g + ridge_lambda(g, ridge) * eye, eye[band][..., None])[..., 0]  # (N, B)
    rows = torch.arange(n, device=g.device)
    beta = -q / q[rows, band][:, None]
    beta[rows, band] = 0
    return beta


def loo_rss(g: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Residual sum of squares per band (..., B) for coefficients ``beta`` (..., B, B)."""
    eye = torch.eye(g.shape[-1], dtype=g.dtype, device=g.device)
    w = eye - beta.to(g.dtype)
    return torch.einsum("...bi,...ij,...bj->...b", w, g, w)


def loo_r2(pixels: torch.Tensor, ridge: float = 1e-9, center: bool = True,
           g: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-band R^2 of predicting each band linearly from all the others.

    Args:
        pixels: (..., P, B) finite values.
        ridge: Relative ridge (tiny: only guards singular Gram matrices).
        center: Fit with an intercept (standard R^2); the S3R prior itself has none.
        g: Precomputed Gram matrix matching ``center``.

    Returns:
        (..., B) float64; 1 = perfectly predictable, 0 = no better than the band mean.
    """
    g = gram(pixels, center=center) if g is None else g
    beta = loo_coefficients(g, ridge)
    tss = torch.diagonal(g, dim1=-2, dim2=-1)
    if not center:
        p = pixels.to(torch.float64)
        tss = tss - p.shape[-2] * p.mean(dim=-2) ** 2
    return 1 - loo_rss(g, beta) / tss.clamp_min(torch.finfo(torch.float64).tiny)
