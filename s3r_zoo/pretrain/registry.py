"""Every pre-training objective by its ``--objective`` name: S3R, the ablation, the baselines.

To add an objective: subclass :class:`s3r_zoo.train.Objective`, add its name to :mod:`.names`
(``--objective`` takes its choices from there) and its builder here.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from torch import nn

from ..baselines import BYOLObjective, ConvDeconvObjective, MHSIMObjective, SimSiamObjective, SSADObjective
from ..train import Objective
from .names import COEFFICIENT_OBJECTIVES, OBJECTIVE_NAMES, PRIOR_BY_DEFAULT, SUBSET_OBJECTIVES, TARGETED
from .local import LocalS3RObjective
from .objectives import RegressObjective, S3RObjective

__all__ = ["OBJECTIVES", "OBJECTIVE_NAMES", "SUBSET_OBJECTIVES", "TARGETED", "COEFFICIENT_OBJECTIVES",
           "PRIOR_BY_DEFAULT", "make_objective"]

# builder(spec, encoder, mean, std, targets): the spec gives the objective's options, `targets`
# the bands S3R may draw as b (None = all of them)
Builder = Callable[[Any, nn.Module, Sequence[float], Sequence[float], Optional[Sequence[int]]], Objective]


def _pretext(spec: Any, targets: Optional[Sequence[int]]) -> dict:
    return dict(mask_ratio=spec.mask_ratio, mask_patch=spec.mask_patch, noise_std=spec.noise_std,
                target_bands=targets)


OBJECTIVES: dict[str, Builder] = {
    "cr": lambda s, e, m, d, t: S3RObjective(e, m, d, mode="cr", ridge=s.ridge, **_pretext(s, t)),
    "br": lambda s, e, m, d, t: S3RObjective(e, m, d, mode="br", ridge=s.ridge, **_pretext(s, t)),
    "local": lambda s, e, m, d, t: LocalS3RObjective(e, m, d, local_weight=s.local_weight, ridge=s.ridge,
                                                     **_pretext(s, t)),
    "regress": lambda s, e, m, d, t: RegressObjective(e, m, d, mask=s.mask, **_pretext(s, t)),
    "simsiam": lambda s, e, m, d, t: SimSiamObjective(e, m, d, bands=s.bands),
    "byol": lambda s, e, m, d, t: BYOLObjective(e, m, d, bands=s.bands),
    "mhsim": lambda s, e, m, d, t: MHSIMObjective(e, m, d, mask_ratio=s.mask_ratio, mask_patch=s.mask_patch),
    "convdeconv": lambda s, e, m, d, t: ConvDeconvObjective(e, m, d),
    "ssad": lambda s, e, m, d, t: SSADObjective(e, m, d),
}
assert tuple(OBJECTIVES) == OBJECTIVE_NAMES, "pretrain/names.py and OBJECTIVES list different objectives"


def make_objective(spec: Any, encoder: nn.Module, mean: Sequence[float], std: Sequence[float],
                   target_bands: Optional[Sequence[int]] = None) -> Objective:
    """The objective ``spec.objective`` around ``encoder`` (``target_bands``: S3R's possible b, None = all)."""
    if spec.objective not in OBJECTIVES:
        raise ValueError(f"--objective: expected one of {OBJECTIVE_NAMES}, found {spec.objective!r}")
    if spec.bands is not None and spec.objective not in SUBSET_OBJECTIVES:
        raise ValueError(f"--bands {spec.bands}: only {' and '.join(SUBSET_OBJECTIVES)} take a band subset, "
                         f"not {spec.objective}")
    return OBJECTIVES[spec.objective](spec, encoder, mean, std, target_bands)
