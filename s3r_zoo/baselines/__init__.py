"""The paper's baselines as objectives for the one trainer loop (Table 2).

Each is an :class:`s3r_zoo.train.Objective` with an ``encoder`` (a zoo ResNet) and
``forward(cube) -> {"loss": ...}``; BYOL and SSAD also override ``after_step`` for their
EMA teachers. Scratch and ImageNet initialisation are
``s3r-zoo finetune --init scratch|imagenet``.
"""

from .byol import BYOLObjective
from .convdeconv import ConvDeconvObjective
from .mhsim import MHSIMObjective, masked_l1
from .simsiam import SimSiamObjective
from .ssad import SSADObjective

BASELINES = ("simsiam", "byol", "mhsim", "convdeconv", "ssad")

__all__ = ["BYOLObjective", "ConvDeconvObjective", "MHSIMObjective", "SimSiamObjective", "SSADObjective",
           "masked_l1", "BASELINES"]
