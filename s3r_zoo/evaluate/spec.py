"""``EvaluateSpec``: every option of ``s3r-zoo evaluate`` (and key of its ``--config`` YAML), declared once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..data.nan import NAN_POLICIES
from ..models.names import MODEL_NAMES
from ..options import option
from ..train.spec import AMP_MODES

__all__ = ["EvaluateSpec", "BASELINES"]

# rows every evaluation measures beside the user's encoders (what a pre-trained encoder must beat)
BASELINES = {"mean_spectrum": "mean spectrum (linear probe)", "random": "random-init features",
             "scratch": "from scratch (fine-tuning)"}


@dataclass
class EvaluateSpec:
    """Does pre-training help on this data? Linear probes and fine-tuning at label fractions, paired seeds."""

    data: str = option("", "labelled data: a folder with train.txt, val.txt and test.txt (s3r-zoo data split), a "
                       "folder with one sub-folder per class, or a CSV with the header path,label[,patient]",
                       metavar="DATA")
    encoders: Optional[list[str]] = option(None, "pre-trained encoders to compare: tags (s3r_resnet18.cr_hims41_v2), "
                                           "zoo checkpoint files or hf-hub:ORG/NAME; the mean spectrum, random-init "
                                           "features and fine-tuning from scratch are always measured beside them",
                                           metavar="INIT")
    out: str = option("runs/evaluate", "output folder (evaluate.json, evaluate.png, runs; reruns reuse what "
                      "finished)", metavar="DIR")
    model: Optional[str] = option(None, "architecture of the random-init and scratch rows (default: the "
                                  "encoders', else s3r_resnet18)", choices=MODEL_NAMES)
    probe_fractions: list[float] = option([0.05, 0.1, 0.25, 1.0], "label fractions of the linear probes (at "
                                          "least one training cube per class is kept)", metavar="F")
    finetune_fractions: list[float] = option([0.1, 1.0], "label fractions of full fine-tuning", metavar="F")
    finetune: bool = option(True, "full fine-tuning rows (the expensive part; --no-finetune: probes only)")
    seeds: int = option(3, "paired seeds: every row trains on the same label subsets", min=1)
    epochs: int = option(30, "fine-tuning epochs (at least; see --min-steps)", min=1)
    min_steps: int = option(300, "fine-tuning floor on optimiser steps at every label fraction", min=0)
    batch_size: int = option(16, "fine-tuning batch size", min=1)
    lr: float = option(1e-4, "fine-tuning AdamW learning rate", above=0, max=1)
    crop: Optional[int] = option(None, "fine-tuning crop in pixels (default: the smallest training cube side, at "
                                 "most 256)", min=1)
    eval_crop: Optional[int] = option(None, "centre crop of validation/test cubes and probe features (default: "
                                      "whole cubes)", min=1)
    split: list[float] = option([0.5, 0.2, 0.3], "train/val/test shares when DATA is not split yet (whole "
                                "patients per split when the CSV names them)", metavar="SHARE")
    amp: str = option("auto", "fine-tuning mixed precision (auto: bf16 where the device runs it natively)",
                      choices=AMP_MODES)
    nan: str = option("error", "NaN/Inf values in the cubes: refuse (error) or repair them while reading",
                      choices=tuple(p for p in NAN_POLICIES if p != "keep"))
    wavelengths: Optional[list[float]] = option(None, "band centres of the data in nm (if its files have none)",
                                                metavar="NM")
    seed: int = option(0, "first seed (of the split, the label subsets and the runs)", min=0)
