"""Local S3R: the paper's S3R-CR plus a coefficient MAP regressed from an intermediate feature map.

Why (docs/method.md, "Local S3R"): S3R's target beta~ is a statistic of the whole crop, so an
encoder can meet it from the crop's average colour and never learn which tissue is where. Here
each patch of the crop (the stride of ``layer3``: 16 px on a ResNet) gets its own closed-form
coefficients (the Gram matrix of that patch's pixels, Eq. 1-3 per patch: cheap, batched), and a
small dense head (two 1x1 convolutions) on the encoder's ``layer3`` map of the masked input must
predict that map, band b's one-hot beside every position. The global S3R-CR loss on the pooled
``layer4`` feature stays, so every layer of the exported encoder trains:

    loss = L1(beta^, beta~) + local_weight * mean_patches L1(beta^_patch, beta~_patch)
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..lowrank import gram, loo_coefficients_rows
from .objectives import S3RObjective
from .targets import DEFAULT_RIDGE, coefficient_targets

__all__ = ["LocalS3RObjective", "patch_coefficient_targets", "patch_pixels"]


def patch_coefficient_targets(cube: torch.Tensor, band: torch.Tensor, patch: int,
                              ridge: float = DEFAULT_RIDGE) -> torch.Tensor:
    """beta~ of each sample's target band on every ``patch`` x ``patch`` tile of the crop.

    Args:
        cube: Raw cube ``(N, B, H, W)``; rows/columns past the last whole patch are left out.
        band: Target band per sample ``(N,)``.
        patch: Tile side in pixels.
        ridge: Relative ridge, per tile (as :func:`~.targets.coefficient_targets`).

    Returns:
        ``(N, B, H // patch, W // patch)`` float64, 0 at each sample's target band.
    """
    n, b, h, w = cube.shape
    pixels = patch_pixels(cube, patch)
    gh, gw = h // patch, w // patch
    with torch.autocast(device_type=cube.device.type, enabled=False):
        beta = loo_coefficients_rows(gram(pixels.reshape(n * gh * gw, patch * patch, b)),
                                     band.repeat_interleave(gh * gw), ridge)
    return beta.view(n, gh, gw, b).permute(0, 3, 1, 2)


def patch_pixels(cube: torch.Tensor, patch: int) -> torch.Tensor:
    """The pixels of every ``patch`` x ``patch`` tile of each crop, ``(N, tiles, patch * patch, B)`` with the tiles
    in row-major order; rows/columns past the last whole patch are left out (local S3R's patches)."""
    n, b, h, w = cube.shape
    gh, gw = h // patch, w // patch
    if gh < 1 or gw < 1:
        raise ValueError(f"local S3R: crop {h} x {w} is smaller than one {patch}-px patch")
    tiles = cube[:, :, :gh * patch, :gw * patch].reshape(n, b, gh, patch, gw, patch)
    return tiles.permute(0, 2, 4, 3, 5, 1).reshape(n, gh * gw, patch * patch, b)


class LocalS3RObjective(S3RObjective):
    """S3R-CR with a second, dense head: beta~ per ``layer3`` cell (module docstring).

    Args:
        encoder: A zoo ResNet (``conv1 ... layer4``).
        local_weight: Weight of the map loss beside the global CR loss.
        hidden: Width of both heads.
        Other arguments as :class:`~.objectives.S3RObjective`.
    """

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float], local_weight: float = 1.0,
                 mask_ratio: float = 0.65, mask_patch: int = 16, noise_std: float = 0.0,
                 ridge: float = DEFAULT_RIDGE, hidden: int = 512, target_bands: Optional[Sequence[int]] = None):
        super().__init__(encoder, mean, std, "cr", mask_ratio, mask_patch, noise_std, ridge, hidden, target_bands)
        info = {f["module"]: f for f in encoder.feature_info}
        if "layer3" not in info:
            raise ValueError(f"local S3R needs a ResNet encoder with a layer3, found {type(encoder).__name__}")
        self.local_weight = float(local_weight)
        self.patch = int(info["layer3"]["reduction"])
        self.local_head = nn.Sequential(nn.Conv2d(info["layer3"]["num_chs"] + self.num_bands, hidden, 1),
                                        nn.ReLU(inplace=True), nn.Conv2d(hidden, self.num_bands, 1))

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled layer4 feature ``(N, F)``, layer3 map) of the encoder for input ``x``."""
        e = self.encoder
        f = e.maxpool(e.act1(e.bn1(e.conv1(x))))
        f3 = e.layer3(e.layer2(e.layer1(f)))
        return e.forward_head(e.layer4(f3), pre_logits=True), f3

    def forward(self, cube: torch.Tensor, band: Optional[torch.Tensor] = None) -> dict:
        self.check_batch(cube)
        n = cube.shape[0]
        band = self.draw_bands(n, cube.device) if band is None else band
        feats, fmap = self._features(self.encoder_input(cube, band))
        beta_hat = self.head_coefficients(feats, band)
        onehot = F.one_hot(band, self.num_bands)
        target_map = patch_coefficient_targets(cube, band, self.patch, self.ridge).float()
        gh, gw = target_map.shape[-2:]
        if fmap.shape[-2:] != (gh, gw):  # crops that are not a multiple of the stride
            fmap = F.adaptive_avg_pool2d(fmap, (gh, gw))
        where = onehot.to(fmap.dtype)[:, :, None, None].expand(-1, -1, gh, gw)
        beta_map = self.local_head(torch.cat([fmap, where], dim=1)).float()
        beta_map = beta_map.masked_fill(onehot.bool()[:, :, None, None], 0.0)
        local = (beta_map - target_map).abs().sum(dim=1).mean()
        glob = (beta_hat - coefficient_targets(cube, band, self.ridge).float()).abs().sum(dim=1).mean()
        return {"loss": glob + self.local_weight * local, "beta_hat": beta_hat.detach(), "band": band,
                "local_l1": local.detach()}
