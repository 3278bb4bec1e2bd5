"""The ``--objective`` names and the groups they fall in, without importing the objectives.

:mod:`.registry` maps each name to its builder (and checks that both lists agree); the option
declarations (:mod:`.spec`) take their choices from here, so ``s3r-zoo pretrain --help`` does
not import torch.
"""

from __future__ import annotations

__all__ = ["OBJECTIVE_NAMES", "TARGETED", "SUBSET_OBJECTIVES", "COEFFICIENT_OBJECTIVES", "PRIOR_BY_DEFAULT"]

OBJECTIVE_NAMES = ("cr", "br", "local", "regress", "simsiam", "byol", "mhsim", "convdeconv", "ssad")
TARGETED = ("cr", "br", "local", "regress")  # the objectives that draw a target band b
SUBSET_OBJECTIVES = ("simsiam", "byol")  # the ones that can take a random band subset per sample (--bands)
COEFFICIENT_OBJECTIVES = ("cr", "br", "local")  # S3R: a beta^ head regressing closed-form coefficients (Gram of the crops)
PRIOR_BY_DEFAULT = ("br",)  # --head-prior auto starts these heads from the band-mean beta~ (docs/method.md)
