"""Every pre-training objective by its ``--objective`` name: S3R, the ablation, the baselines.

To add an objective: subclass :class:`s3r_zoo.train.Objective` and add one entry here;
``--objective`` takes its choices from this table.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from torch import nn

from ..baselines import BYOLObjective, ConvDeconvObjective, MHSIMObjective, SimSiamObjective, SSADObjective
from ..train import Objective
from .objectives import RegressObjective, S3RObjective

__all__ = ["OBJECTIVES", "OBJECTIVE_NAMES", "SUBSET_OBJECTIVES", "make_objective"]

Builder = Callable[[Any, nn.Module, Sequence[float], Sequence[float]], Objective]


def _masking(spec: Any) -> dict:
    return dict(mask_ratio=spec.mask_ratio, mask_patch=spec.mask_patch, noise_std=spec.noise_std)


# name -> builder(spec, encoder, mean, std); the spec gives the objective's options
OBJECTIVES: dict[str, Builder] = {
    "cr": lambda s, e, m, d: S3RObjective(e, m, d, mode="cr", **_masking(s)),
    "br": lambda s, e, m, d: S3RObjective(e, m, d, mode="br", **_masking(s)),
    "regress": lambda s, e, m, d: RegressObjective(e, m, d, mask=s.mask, **_masking(s)),
    "simsiam": lambda s, e, m, d: SimSiamObjective(e, m, d, bands=s.bands),
    "byol": lambda s, e, m, d: BYOLObjective(e, m, d, bands=s.bands),
    "mhsim": lambda s, e, m, d: MHSIMObjective(e, m, d, mask_ratio=s.mask_ratio, mask_patch=s.mask_patch),
    "convdeconv": lambda s, e, m, d: ConvDeconvObjective(e, m, d),
    "ssad": lambda s, e, m, d: SSADObjective(e, m, d),
}
OBJECTIVE_NAMES = tuple(OBJECTIVES)
SUBSET_OBJECTIVES = ("simsiam", "byol")  # the ones that can take a random band subset per sample (--bands)


def make_objective(spec: Any, encoder: nn.Module, mean: Sequence[float], std: Sequence[float]) -> Objective:
    """The objective ``spec.objective`` around ``encoder``."""
    if spec.objective not in OBJECTIVES:
        raise ValueError(f"--objective: expected one of {OBJECTIVE_NAMES}, found {spec.objective!r}")
    if spec.bands is not None and spec.objective not in SUBSET_OBJECTIVES:
        raise ValueError(f"--bands {spec.bands}: only {' and '.join(SUBSET_OBJECTIVES)} take a band subset, "
                         f"not {spec.objective}")
    return OBJECTIVES[spec.objective](spec, encoder, mean, std)
