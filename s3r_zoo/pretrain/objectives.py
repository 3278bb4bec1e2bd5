"""Pre-training objectives that plug into the one trainer loop (:mod:`.engine`).

An objective is an ``nn.Module`` that owns an ``encoder`` (a registered zoo model, so
the pretrained encoder IS the zoo model) and whose ``forward(cube)`` takes a RAW batch
``(N, B, H, W)`` and returns a dict with at least ``loss``. It normalises the input for
the encoder itself (``mean``/``std`` buffers), so targets can use physical units.

Which band is the target? (METHOD.md) The encoder keeps all B input channels and sees
band b zeroed (and the other bands masked); the head additionally receives a one-hot of
b next to the pooled feature. So the pretrained stem has exactly B inputs and transfers
to B-band downstream data with no adaptation at all, and the head cannot confuse which
coefficient vector it must produce.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import timm
import torch
import torch.nn.functional as F
from torch import nn

from .masking import apply_masks, band_patch_masks
from .targets import DEFAULT_RIDGE, coefficient_targets

__all__ = ["S3RObjective", "RegressObjective", "BandNormalised", "transposed_decoder", "build_encoder", "OBJECTIVES"]

OBJECTIVES = ("cr", "br", "regress")


def build_encoder(model: str, num_bands: int, init: str = "random", num_classes: int = 0,
                  wavelengths: Optional[Sequence[float]] = None) -> nn.Module:
    """A zoo model taking ``num_bands`` channels (headless unless ``num_classes``).

    Args:
        model: ``s3r_resnet18`` or ``s3r_resnet50``.
        num_bands: Input bands.
        init: ``random``/``scratch``, ``imagenet`` (timm's ImageNet weights, stem adapted by
            timm), a registered tag (``s3r_resnet18.cr_hims41``), or a zoo checkpoint path.
        num_classes: Classifier outputs (0 = pooled features).
        wavelengths: Band centres of the data (nm): stems are resampled by wavelength.
    """
    if init in ("random", "scratch"):
        return timm.create_model(model, pretrained=False, in_chans=num_bands, num_classes=num_classes)
    if init == "imagenet":
        arch = model.replace("s3r_", "")
        try:
            return timm.create_model(f"{arch}.a1_in1k", pretrained=True, in_chans=num_bands, num_classes=num_classes)
        except Exception as e:
            raise RuntimeError(
                f"init=imagenet: cannot load timm's ImageNet weights for {arch} ({type(e).__name__}: {e}). "
                f"They come from the Hugging Face hub: run once with network access so they are cached, "
                f"or use --init random / a zoo checkpoint.") from None
    kw = dict(pretrained=True, in_chans=num_bands, num_classes=num_classes,
              wavelengths=None if wavelengths is None else list(wavelengths))
    if Path(init).exists():
        from ..checkpoint import read_checkpoint_info

        info = read_checkpoint_info(init)
        if info.in_chans != num_bands and info.objective.endswith("bands") and info.wavelengths_nm is None:
            # pre-trained on a random band subset per sample (BYOL / SimSiam, "3 bands"): its input
            # channels have no fixed wavelength, so transfer like ImageNet RGB -> B (timm's repeat)
            kw["band_adapt"] = "repeat"
        elif info.in_chans != num_bands and (info.wavelengths_nm is None or wavelengths is None):
            side = "the checkpoint" if info.wavelengths_nm is None else "the data"
            raise ValueError(
                f"{init}: checkpoint has {info.in_chans} bands, the data {num_bands}, and {side} does not record "
                f"wavelengths; pass the data's band centres with --wavelengths (nm) so the stem is resampled "
                f"by wavelength")
        return timm.create_model(model, pretrained_cfg_overlay=dict(file=str(init)), **kw)
    if "." in init and init.split(".")[0] == model:
        return timm.create_model(init, **kw)
    raise ValueError(f"init: expected random, scratch, imagenet, a tag such as {model}.cr_hims41, or an existing "
                     f"checkpoint file; found {init!r}")


def transposed_decoder(in_ch: int, out_ch: int, width: int = 256) -> nn.Sequential:
    """Five stride-2 transposed convolutions (32x upsampling: undoes the ResNet's stride)."""
    chans = [in_ch, width, width // 2, width // 4, width // 8]
    layers: list[nn.Module] = []
    for i in range(4):
        layers += [nn.ConvTranspose2d(chans[i], chans[i + 1], 4, stride=2, padding=1),
                   nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
    layers.append(nn.ConvTranspose2d(chans[4], out_ch, 4, stride=2, padding=1))
    return nn.Sequential(*layers)


class BandNormalised(nn.Module):
    """Base of every objective: the ``encoder`` and per-band ``mean``/``std`` buffers."""

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float],
                 encoder_bands: Optional[int] = None):
        super().__init__()
        b = len(mean)
        if len(std) != b:
            raise ValueError(f"std has {len(std)} bands, mean has {b}")
        in_chans = encoder.conv1.in_channels
        expected = b if encoder_bands is None else encoder_bands
        if in_chans != expected:
            raise ValueError(f"encoder takes {in_chans} bands, the data has {b}"
                             + (f" (objective feeds it {expected})" if encoder_bands is not None else ""))
        self.encoder = encoder
        self.num_bands = b
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, b, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, b, 1, 1))

    def _check(self, cube: torch.Tensor) -> None:
        if cube.ndim != 4 or cube.shape[1] != self.num_bands:
            raise ValueError(f"batch: expected (N, {self.num_bands}, H, W), found {tuple(cube.shape)}")

    def normalise(self, cube: torch.Tensor) -> torch.Tensor:
        self._check(cube)
        return (cube - self.mean) / self.std


class _Pretext(BandNormalised):
    """S3R's shared parts: target-band draw and per-band masking."""

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float], mask_ratio: float,
                 mask_patch: int, noise_std: float):
        if len(mean) < 3:
            raise ValueError(f"S3R needs at least 3 bands (one target, two or more predictors), found {len(mean)}")
        super().__init__(encoder, mean, std)
        self.mask_ratio, self.mask_patch, self.noise_std = mask_ratio, mask_patch, noise_std

    def encoder_input(self, cube: torch.Tensor, band: torch.Tensor, mask: bool = True) -> torch.Tensor:
        """Normalised cube with independent per-band patch masks and band b zeroed."""
        n, b, h, w = cube.shape
        x = (cube - self.mean) / self.std
        if mask and self.mask_ratio > 0:
            masks = band_patch_masks(n, b, h, w, self.mask_ratio, self.mask_patch, device=cube.device)
            x = apply_masks(x, masks, self.noise_std)
        target = F.one_hot(band, b).to(torch.bool)[:, :, None, None]
        return x.masked_fill(target, 0.0)

    def draw_bands(self, n: int, device) -> torch.Tensor:
        return torch.randint(0, self.num_bands, (n,), device=device)


class S3RObjective(_Pretext):
    """S3R-CR (``cr``: L1 between beta^ and the closed-form beta~) or S3R-BR (``br``: beta^
    re-weights the unmasked other bands to rebuild band b, L1 on pixels)."""

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float], mode: str = "cr",
                 mask_ratio: float = 0.65, mask_patch: int = 16, noise_std: float = 0.0,
                 ridge: float = DEFAULT_RIDGE, hidden: int = 512):
        super().__init__(encoder, mean, std, mask_ratio, mask_patch, noise_std)
        if mode not in ("cr", "br"):
            raise ValueError(f"objective: expected 'cr' or 'br', found {mode!r}")
        self.mode, self.ridge = mode, ridge
        feat = encoder.num_features
        self.head = nn.Sequential(nn.Linear(feat + self.num_bands, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, self.num_bands))

    def predict(self, cube: torch.Tensor, band: torch.Tensor, mask: bool = True) -> torch.Tensor:
        """beta^ ``(N, B)`` (float32) with 0 at each sample's target band."""
        feats = self.encoder(self.encoder_input(cube, band, mask))
        onehot = F.one_hot(band, self.num_bands).to(feats.dtype)
        beta = self.head(torch.cat([feats, onehot], dim=1)).float()
        return beta.masked_fill(onehot.bool(), 0.0)

    def forward(self, cube: torch.Tensor, band: Optional[torch.Tensor] = None) -> dict:
        self._check(cube)
        band = self.draw_bands(cube.shape[0], cube.device) if band is None else band
        beta_hat = self.predict(cube, band)
        if self.mode == "cr":
            beta_true = coefficient_targets(cube, band, self.ridge).float()
            loss = (beta_hat - beta_true).abs().sum(dim=1).mean()
        else:
            with torch.autocast(device_type=cube.device.type, enabled=False):
                raw = cube.float()
                recon = torch.einsum("nb,nbhw->nhw", beta_hat, raw)
                target = raw[torch.arange(raw.shape[0], device=raw.device), band]
                loss = (recon - target).abs().mean() / self.std.flatten()[band].mean()
        return {"loss": loss, "beta_hat": beta_hat.detach(), "band": band}


class RegressObjective(_Pretext):
    """Table 1 ablation, "straightforward regression": encoder on the (masked or unmasked)
    other bands, a decoder of five stride-2 transposed convolutions regresses band b
    (normalised) pixel-wise, L1."""

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float], mask: bool = True,
                 mask_ratio: float = 0.65, mask_patch: int = 16, noise_std: float = 0.0, width: int = 256):
        super().__init__(encoder, mean, std, mask_ratio, mask_patch, noise_std)
        self.mask = mask
        self.decoder = transposed_decoder(encoder.num_features, 1, width)

    def forward(self, cube: torch.Tensor, band: Optional[torch.Tensor] = None) -> dict:
        self._check(cube)
        n, _, h, w = cube.shape
        band = self.draw_bands(n, cube.device) if band is None else band
        fmap = self.encoder.forward_features(self.encoder_input(cube, band, self.mask))
        pred = self.decoder(fmap).float()
        pred = F.interpolate(pred, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        target = ((cube - self.mean) / self.std)[torch.arange(n, device=cube.device), band].float()
        return {"loss": (pred - target).abs().mean(), "band": band}
