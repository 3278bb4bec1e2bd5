"""Every option of ``s3r-zoo finetune``, declared once (importable without torch, for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..models.names import MODEL_NAMES
from ..options import option
from ..train.spec import RunSpec

__all__ = ["FinetuneSpec", "MAX_DEFAULT_CROP"]


MAX_DEFAULT_CROP = 256  # the default crop: whole cubes up to this side (larger scenes: random crops of it)


@dataclass
class FinetuneSpec(RunSpec):
    """A fine-tuning run: every option of ``s3r-zoo finetune`` (and key of its ``--config`` YAML)."""

    data: str = option("", "folder with train.txt, val.txt, test.txt split files (<path> <label> lines)",
                       metavar="DIR")
    out: str = option("runs/finetune", "output folder", metavar="DIR")
    model: Optional[str] = option(None, "zoo model (default: the --init tag's or checkpoint's, else s3r_resnet18)",
                                  choices=MODEL_NAMES)
    init: str = option("scratch", "scratch, imagenet, a tag (s3r_resnet18.cr_hims41_v2) or a zoo checkpoint path",
                       metavar="INIT")
    wavelengths: Optional[list[float]] = option(None, "band centres of the data in nm (if its files have none)",
                                                metavar="NM")
    epochs: int = option(70, "most epochs to train", min=1)
    crop: Optional[int] = option(None, "training crop size in pixels (default: the smallest side of the training "
                                 f"cubes, at most {MAX_DEFAULT_CROP})", min=1)
    eval_crop: Optional[int] = option(None, "centre crop for validation/test (default: whole cube)", min=1)
    linear_probe: bool = option(False, "freeze the encoder, train the linear head")
    label_fraction: float = option(1.0, "stratified fraction of the training labels to use", above=0, max=1)
    seeds: int = option(1, "number of seeds (runs); mean +- std are reported", min=1)
    min_steps: int = option(0, "floor on optimiser steps: a small training set gets more epochs (validated about "
                            "--epochs times in all), so 20 cubes train as long as the floor says, not one step per "
                            "epoch", min=0)
    noise_std: float = option(0.02, "augmentation: Gaussian noise (normalised units)", min=0)
    max_degrees: float = option(15.0, "augmentation: largest rotation in degrees", min=0, max=180)
