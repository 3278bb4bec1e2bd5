"""S3R's objectives for the one training loop: S3R-CR, S3R-BR and the Table 1 ablation.

Each is an :class:`s3r_zoo.train.Objective` (the contract: raw batch in, ``{"loss": ...}``
out, per-band normalisation inside). docs/method.md describes the method.

Which band is the target? The encoder keeps all B input channels and sees
band b zeroed (and the other bands masked); the head additionally receives a one-hot of
b next to the pooled feature. So the pretrained stem has exactly B inputs and transfers
to B-band downstream data with no adaptation at all, and the head cannot confuse which
coefficient vector it must produce.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models.heads import transposed_decoder
from ..train import Objective, apply_masks, band_patch_masks, normalize_zero_patches, patch_grid
from .targets import DEFAULT_RIDGE, coefficient_targets

__all__ = ["S3RObjective", "RegressObjective", "band_regression_error"]


def band_regression_error(cube: torch.Tensor, band: torch.Tensor, beta: torch.Tensor,
                          data_std: torch.Tensor) -> torch.Tensor:
    """Per-sample, scale-free error of rebuilding band b from the other bands: ``(N,)``.

    ``mean_pixels |Y_b - sum_i beta_i Y_i| / max(std_pixels(Y_b), data_std_b / 10)``.

    Args:
        cube: Raw, unmasked ``(N, B, H, W)``.
        band: Target band per sample ``(N,)``.
        beta: Coefficients ``(N, B)`` (0 at b).
        data_std: The data's std of each sample's target band ``(N,)`` (the floor of the scale).
    """
    recon = torch.einsum("nb,nbhw->nhw", beta, cube)
    target = cube[torch.arange(cube.shape[0], device=cube.device), band]
    scale = target.flatten(1).std(dim=1).clamp_min(0.1 * data_std)
    return (recon - target).abs().flatten(1).mean(dim=1) / scale


class _Pretext(Objective):
    """S3R's shared parts: target-band draw and per-band masking.

    ``target_bands`` (indices) are the bands that may be drawn as b; the others stay encoder
    inputs and predictors but are never targets (noise bands, whose beta~ is meaningless).
    None = every band.
    """

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float], mask_ratio: float,
                 mask_patch: int, noise_std: float, target_bands: Optional[Sequence[int]] = None):
        if len(mean) < 3:
            raise ValueError(f"S3R needs at least 3 bands (one target, two or more predictors), found {len(mean)}")
        super().__init__(encoder, mean, std)
        self.mask_ratio, self.mask_patch, self.noise_std = mask_ratio, mask_patch, noise_std
        self.target_bands: Optional[torch.Tensor] = None
        if target_bands is not None:
            tb = sorted({int(b) for b in target_bands})
            if not tb or tb[0] < 0 or tb[-1] >= self.num_bands:
                raise ValueError(f"target_bands: expected band indices in 0..{self.num_bands - 1}, found {tb}")
            if len(tb) < self.num_bands:
                self.target_bands = torch.tensor(tb, dtype=torch.long)

    def encoder_input(self, cube: torch.Tensor, band: torch.Tensor, mask: bool = True) -> torch.Tensor:
        """Normalised cube with independent per-band patch masks and band b zeroed."""
        self.check_batch(cube)
        n, b, h, w = cube.shape
        target = F.one_hot(band, b).to(torch.bool)[:, :, None, None]
        p = self.mask_patch
        if not (mask and self.mask_ratio > 0):
            return self.normalize(cube).masked_fill_(target, 0.0)  # in place: normalize's own tensor
        total, part = self.global_batch(n)  # drawn for the global batch (torchrun), this process's part
        if self.noise_std == 0 and h % p == 0 and w % p == 0:
            # the same masks (same random draws) with band b folded in, normalised and masked in one pass
            grid = patch_grid(total, b, h, w, self.mask_ratio, p, device=cube.device)[part]
            return normalize_zero_patches(cube, self.mean, self.std, grid | target, p)
        masks = band_patch_masks(total, b, h, w, self.mask_ratio, p, device=cube.device)[part]
        # in place: apply_masks returns this call's own tensor, in cube's layout
        return apply_masks(self.normalize(cube), masks, self.noise_std).masked_fill_(target, 0.0)

    def draw_bands(self, n: int, device) -> torch.Tensor:
        """One target band per sample, uniformly among the target bands (drawn for the global batch)."""
        total, part = self.global_batch(n)
        if self.target_bands is None:
            return torch.randint(0, self.num_bands, (total,), device=device)[part]
        pick = torch.randint(0, len(self.target_bands), (total,), device=device)[part]
        return self.target_bands.to(device)[pick]


class S3RObjective(_Pretext):
    """S3R-CR or S3R-BR.

    * ``cr``: ``sum_i |beta^_i - beta~_i|`` per sample (the paper's L1 on the coefficient
      vector), averaged over the batch. beta~ is scale-free already (a ratio of bands).
    * ``br``: beta^ re-weights the unmasked other bands to rebuild band b; the mean absolute
      pixel error of each sample is divided by THAT sample's spread of band b (its pixel std,
      floored at a tenth of the data's std of band b, so a flat crop of glass does not blow
      up), then averaged over the batch: one bright or noisy sample cannot dominate a batch.

    The head's output is ``beta_prior[b] + mlp(features, onehot(b))``. ``beta_prior`` is zero
    (the paper's plain head) until :meth:`start_from` sets it, to the mean beta~ of each band
    over the training crops (``--head-prior band-mean``, the default): the head then learns
    the crop's departure from what the data's bands do on average. Why: the BR loss sees
    beta only through ``sum_i beta_i Y_i`` of almost collinear bands, so first-order descent
    needs thousands of steps to find even that average (docs/method.md); CR starts at the
    per-band-mean baseline instead of at zero.
    """

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float], mode: str = "cr",
                 mask_ratio: float = 0.65, mask_patch: int = 16, noise_std: float = 0.0,
                 ridge: float = DEFAULT_RIDGE, hidden: int = 512, target_bands: Optional[Sequence[int]] = None):
        super().__init__(encoder, mean, std, mask_ratio, mask_patch, noise_std, target_bands)
        if mode not in ("cr", "br"):
            raise ValueError(f"objective: expected 'cr' or 'br', found {mode!r}")
        self.mode, self.ridge = mode, ridge
        feat = encoder.num_features
        self.head = nn.Sequential(nn.Linear(feat + self.num_bands, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, self.num_bands))
        self.register_buffer("beta_prior", torch.zeros(self.num_bands, self.num_bands))

    @torch.no_grad()
    def start_from(self, prior: torch.Tensor) -> None:
        """Predict ``prior[b]`` (``(B, B)``, row b = band b's coefficients) before any training:
        the prior becomes the head's offset and the head's last layer starts at zero."""
        if prior.shape != self.beta_prior.shape or not torch.isfinite(prior).all():
            raise ValueError(f"head prior: expected finite ({self.num_bands}, {self.num_bands}) coefficients, "
                             f"found {tuple(prior.shape)}")
        self.beta_prior.copy_(prior.float())
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def predict(self, cube: torch.Tensor, band: torch.Tensor, mask: bool = True) -> torch.Tensor:
        """beta^ ``(N, B)`` (float32) with 0 at each sample's target band."""
        return self.head_coefficients(self.encoder(self.encoder_input(cube, band, mask)), band)

    def head_coefficients(self, feats: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
        """The head's beta^ ``(N, B)`` (float32, 0 at band b) from pooled features ``(N, F)``."""
        onehot = F.one_hot(band, self.num_bands).to(feats.dtype)
        beta = self.beta_prior[band] + self.head(torch.cat([feats, onehot], dim=1)).float()
        return beta.masked_fill(onehot.bool(), 0.0)

    def forward(self, cube: torch.Tensor, band: Optional[torch.Tensor] = None) -> dict:
        self.check_batch(cube)
        band = self.draw_bands(cube.shape[0], cube.device) if band is None else band
        beta_hat = self.predict(cube, band)
        if self.mode == "cr":
            beta_true = coefficient_targets(cube, band, self.ridge).float()
            loss = (beta_hat - beta_true).abs().sum(dim=1).mean()
        else:
            with torch.autocast(device_type=cube.device.type, enabled=False):
                loss = band_regression_error(cube.float(), band, beta_hat, self.std.flatten()[band]).mean()
        return {"loss": loss, "beta_hat": beta_hat.detach(), "band": band}


class RegressObjective(_Pretext):
    """Table 1 ablation, "straightforward regression": encoder on the (masked or unmasked)
    other bands, a decoder of five stride-2 transposed convolutions regresses band b
    (normalised) pixel-wise, L1."""

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float], mask: bool = True,
                 mask_ratio: float = 0.65, mask_patch: int = 16, noise_std: float = 0.0, width: int = 256,
                 target_bands: Optional[Sequence[int]] = None):
        super().__init__(encoder, mean, std, mask_ratio, mask_patch, noise_std, target_bands)
        self.mask = mask
        self.decoder = transposed_decoder(encoder.num_features, 1, width)

    def forward(self, cube: torch.Tensor, band: Optional[torch.Tensor] = None) -> dict:
        self.check_batch(cube)
        n, _, h, w = cube.shape
        band = self.draw_bands(n, cube.device) if band is None else band
        fmap = self.encoder.forward_features(self.encoder_input(cube, band, self.mask))
        pred = self.decoder(fmap).float()
        pred = F.interpolate(pred, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        target = self.normalize(cube)[torch.arange(n, device=cube.device), band].float()
        return {"loss": (pred - target).abs().mean(), "band": band}
