"""``PretrainSpec``: every option of ``s3r-zoo pretrain`` (and key of its ``--config`` YAML)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..options import option
from ..train.spec import RunSpec
from .names import COEFFICIENT_OBJECTIVES, OBJECTIVE_NAMES, PRIOR_BY_DEFAULT

__all__ = ["PretrainSpec", "NOT_RECIPE", "HEAD_PRIORS", "uses_head_prior"]

# options that do not change what a run learns: left out of the recorded recipe
NOT_RECIPE = ("out", "resume", "num_workers", "tensorboard", "snapshot_every", "data_on_device")
HEAD_PRIORS = ("auto", "band-mean", "none")


@dataclass
class PretrainSpec(RunSpec):
    """Everything a pre-training run depends on; the options shared with fine-tuning come from RunSpec."""

    data: str = option("synthetic:plgc_like", "cube folder, split file (train split), a cube file, HIMS folder, "
                       "or synthetic:pdac_like|plgc_like", metavar="DATA")
    out: str = option("runs/pretrain", "output folder", metavar="DIR")
    objective: str = option("cr", "S3R (cr, br; local: cr plus a per-patch coefficient map), the Table 1 ablation (regress) or a Table 2 baseline",
                            choices=OBJECTIVE_NAMES)
    init: str = option("random", "random, imagenet, a tag (s3r_resnet18.cr_hims41_v2) or a zoo checkpoint path",
                       metavar="INIT")
    crop: int = option(128, "crop size in pixels", min=1)
    crops_per_cube: int = option(16, "random crops per cube per epoch", min=1)
    synthetic_n: int = option(256, "cubes in a synthetic: data set", min=1)
    gamma: float = option(0.99, "exponential lr decay per epoch", above=0, max=1)
    patience: int = option(10, "epochs without improvement of the held-out validation loss (the training loss "
                           "with --val-fraction 0) before early stop", min=1)
    min_delta: float = option(1e-4, "smallest loss decrease that counts as an improvement", min=0)
    mask_ratio: float = option(0.65, "fraction of patches masked, per band", min=0, max=1)
    mask_patch: int = option(16, "mask patch side in pixels", min=1)
    noise_std: float = option(0.0, "strong Gaussian noise on the masked input (normalised units)", min=0)
    mask: bool = option(True, "regress: mask the input (off: the Table 1 ablation without masking)")
    bands: Optional[int] = option(None, "simsiam/byol: feed this many random bands per sample (3 = the paper's "
                                  "'3 bands' rows; default: all bands)", min=1)
    stats_samples: int = option(64, "crops used to measure the per-band mean/std and the target bands' R2", min=1)
    val_fraction: float = option(0.15, "held out for validation: the bottom rows of a single cube, else a fraction "
                                 "of the cubes (0: no validation; early stop on the training loss)", min=0, max=0.5)
    val_crops: int = option(32, "validation crops (fixed positions, target bands and masks)", min=1)
    ridge: float = option(1e-4, "relative ridge of the closed-form coefficients beta~ (x trace(G) / B)", min=0)
    local_weight: float = option(1.0, "local: weight of the per-patch coefficient-map loss beside the global CR "
                                 "loss", min=0)
    head_prior: str = option("auto", "cr/br: the beta^ head learns a correction to the mean beta~ of band b on "
                             "the training crops (band-mean) or starts from nothing (none, the paper's head); "
                             "auto = band-mean for br, none for cr", choices=HEAD_PRIORS)
    target_r2_min: float = option(0.5, "cr/br/regress: bands whose leave-one-band-out R2 on the training crops is "
                                  "below this are never drawn as targets (they stay inputs)", min=0, max=1)
    snapshot_every: int = option(0, "also save the encoder every N epochs as snapshots/epoch_<N>.safetensors (what "
                                 "a convergence study probes; 0: none)", min=0)
    target_bands: Optional[list[int]] = option(None, "cr/br/regress: explicit target bands (0-based indices), "
                                               "instead of the R2 rule", metavar="B")


def uses_head_prior(spec: PretrainSpec) -> bool:
    """Whether S3R's beta^ head starts from the band-mean prior (``--head-prior``; docs/method.md says why
    auto means BR only: the prior cures BR's ill-conditioned start but held the CR head at the baseline)."""
    return spec.objective in COEFFICIENT_OBJECTIVES and (
        spec.head_prior == "band-mean" or (spec.head_prior == "auto" and spec.objective in PRIOR_BY_DEFAULT))
