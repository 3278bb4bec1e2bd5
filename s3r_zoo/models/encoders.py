"""Build the encoder a run starts from: random, timm's ImageNet weights, a released tag or a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import timm
from torch import nn

from ..checkpoint import read_checkpoint_info
from ..weights import init_file
from . import s3r_resnet  # noqa: F401  (registers the zoo's models with timm)
from .names import MODEL_NAMES, arch_of, model_name

__all__ = ["build_encoder", "model_of"]


def build_encoder(model: str, num_bands: int, init: str = "random", num_classes: int = 0,
                  wavelengths: Optional[Sequence[float]] = None) -> nn.Module:
    """A zoo model taking ``num_bands`` channels (headless unless ``num_classes``).

    Args:
        model: ``s3r_resnet18`` or ``s3r_resnet50``.
        num_bands: Input bands.
        init: ``random``/``scratch``, ``imagenet`` (timm's ImageNet weights, stem adapted by
            timm), a registered tag (``s3r_resnet18.cr_hims41_v2``), a zoo checkpoint path, or
            ``hf-hub:ORG/NAME`` or ``local-dir:FOLDER`` (a repository or folder written by ``s3r-zoo export``).
        num_classes: Classifier outputs (0 = pooled features).
        wavelengths: Band centres of the data (nm): stems are resampled by wavelength.
    """
    arch = arch_of(model)
    if init in ("random", "scratch"):
        return timm.create_model(model, pretrained=False, in_chans=num_bands, num_classes=num_classes)
    if init == "imagenet":
        try:
            return timm.create_model(f"{arch}.a1_in1k", pretrained=True, in_chans=num_bands, num_classes=num_classes)
        except Exception as e:
            raise RuntimeError(
                f"init=imagenet: cannot load timm's ImageNet weights for {arch} ({type(e).__name__}: {e}). "
                f"They come from the Hugging Face hub: run once with network access so they are cached, "
                f"or use --init random / a zoo checkpoint.") from None
    kw = dict(pretrained=True, in_chans=num_bands, num_classes=num_classes,
              wavelengths=None if wavelengths is None else list(wavelengths))
    init = init_file(init)  # hf-hub: / local-dir: (folders written by `s3r-zoo export`): their model.safetensors
    if Path(init).exists():
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
    raise ValueError(f"init: expected random, scratch, imagenet, a tag such as {model}.cr_hims41_v2, or an existing "
                     f"checkpoint file; found {init!r}")


def model_of(init: str) -> Optional[str]:
    """The zoo model an init names: a tag's (``s3r_resnet50.cr_hims41_v2``), a checkpoint file's or an
    ``hf-hub:`` / ``local-dir:`` folder's architecture; None for ``random``, ``scratch`` and ``imagenet``."""
    if init in ("random", "scratch", "imagenet"):
        return None
    init = init_file(init)
    if Path(init).is_file():
        return model_name(read_checkpoint_info(init).architecture)
    if init.split(".")[0] in MODEL_NAMES:
        return init.split(".")[0]
    raise ValueError(f"init: expected random, scratch, imagenet, a tag such as s3r_resnet18.cr_hims41_v2, an existing "
                     f"checkpoint file, hf-hub:ORG/NAME or local-dir:FOLDER; found {init!r}")
