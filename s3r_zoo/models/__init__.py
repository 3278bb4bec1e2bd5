"""The zoo's models; importing this package registers them with timm.

* :mod:`.s3r_resnet`: ``s3r_resnet18`` / ``s3r_resnet50`` (timm factories, band-adaptive stem);
* :mod:`.releases`: one record per released tag (``releases.json``);
* :mod:`.names`: zoo model name <-> timm architecture;
* :mod:`.encoders`: :func:`build_encoder` (random, ImageNet, a tag or a checkpoint);
* :mod:`.heads`: heads and decoders that objectives put on an encoder.
"""

from .encoders import build_encoder, model_of
from .names import MODEL_NAMES, arch_of, model_name
from .releases import BAND_SETS, RELEASES, Release
from .s3r_resnet import s3r_resnet18, s3r_resnet50

__all__ = ["s3r_resnet18", "s3r_resnet50", "build_encoder", "model_of", "MODEL_NAMES", "arch_of", "model_name", "RELEASES",
           "BAND_SETS", "Release"]
