"""The zoo's models; importing :mod:`.s3r_resnet` registers them with timm (``import s3r_zoo`` does).

* :mod:`.s3r_resnet`: ``s3r_resnet18`` / ``s3r_resnet50`` (timm factories, band-adaptive stem);
* :mod:`.releases`: one record per released tag (``releases.json``);
* :mod:`.names`: zoo model name <-> timm architecture;
* :mod:`.encoders`: :func:`build_encoder` (random, ImageNet, a tag or a checkpoint);
* :mod:`.heads`: heads and decoders that objectives put on an encoder.
"""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".s3r_resnet": ("s3r_resnet18", "s3r_resnet50"),
    ".encoders": ("build_encoder", "model_of"),
    ".names": ("MODEL_NAMES", "arch_of", "model_name"),
    ".releases": ("RELEASES", "BAND_SETS", "Release"),
})
