"""The low-rank prior of S3R (METHOD.md Eq. 1-3): every band from all the others.

For pixels ``X`` (P x B) with Gram matrix ``G = X^T X`` and ``Q = (G + lam I)^{-1}``,
the leave-one-band-out ridge coefficients of every band come from ONE inverse:

    beta[b, i] = -Q[b, i] / Q[b, b]   (i != b),   beta[b, b] = 0

(block-inverse identity; exact least squares when ``lam = 0``). The residual sum of
squares of band ``b`` is ``w_b^T G w_b`` with ``w_b = e_b - beta[b]``.

All functions take torch tensors with any leading batch dimensions, accumulate in
float64 (also under AMP), and run on whatever device the input is on.
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["gram", "ridge_lambda", "loo_coefficients", "loo_coefficients_single", "loo_rss", "loo_r2"]


def gram(pixels: torch.Tensor, center: bool = False) -> torch.Tensor:
    """Gram matrix ``X^T X`` of ``pixels`` (..., P, B), in float64: (..., B, B)."""
    x = pixels.to(torch.float64)
    if center:
        x = x - x.mean(dim=-2, keepdim=True)
    return x.transpose(-1, -2) @ x


def ridge_lambda(g: torch.Tensor, ridge: float) -> torch.Tensor:
    """Ridge term scaled to the data: ``ridge * trace(G) / B`` (shape (..., 1, 1))."""
    b = g.shape[-1]
    return (ridge * torch.diagonal(g, dim1=-2, dim2=-1).sum(-1) / b)[..., None, None]


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


def loo_coefficients_single(g: torch.Tensor, band: torch.Tensor, ridge: float = 1e-6) -> torch.Tensor:
    """Coefficients for one target band per item, by solving the (B-1) system directly.

    Args:
        g: Gram matrix (N, B, B).
        band: Target band index per item (N,).
        ridge: As in :func:`loo_coefficients`.

    Returns:
        (N, B) float64 with a 0 at the target band; equals the matching row of
        :func:`loo_coefficients`.
    """
    n, b, _ = g.shape
    idx = torch.arange(b, device=g.device)
    keep = idx[None, :] != band[:, None]  # (N, B)
    others = idx[None, :].expand(n, b)[keep].view(n, b - 1)
    rows = torch.arange(n, device=g.device)[:, None]
    g_oo = g[rows[..., None], others[:, :, None], others[:, None, :]]  # (N, B-1, B-1)
    g_ob = g[rows, others, band[:, None]]  # (N, B-1)
    lam = ridge_lambda(g, ridge)
    eye = torch.eye(b - 1, dtype=g.dtype, device=g.device)
    coef = torch.linalg.solve(g_oo + lam * eye, g_ob[..., None])[..., 0]
    out = torch.zeros(n, b, dtype=g.dtype, device=g.device)
    out[keep] = coef.reshape(-1)
    return out


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
