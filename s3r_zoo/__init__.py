"""s3r_zoo: S3R (Self-supervised Spectral Regression) pre-trained encoders for
hyperspectral histopathology, as a timm model zoo.

``import s3r_zoo`` registers ``s3r_resnet18`` and ``s3r_resnet50`` with timm::

    import s3r_zoo, timm
    model = timm.create_model("s3r_resnet50", in_chans=40, pretrained=True,
                              wavelengths=[450 + i * 300 / 39 for i in range(40)])
    s3r_zoo.band_info(model)  # wavelengths, per-band mean/std of the adapted model

The public names below load their modules on first use (:mod:`s3r_zoo.lazy`). The
registration itself happens here, at import, except under the ``s3r-zoo`` command
(:mod:`s3r_zoo_cli`), which registers the models after parsing its arguments so that
``--help`` never imports torch.
"""

import sys

from .lazy import lazy_exports
from .version import __version__

__getattr__, __dir__, _names = lazy_exports(__name__, {
    ".bands": ("BandInfo", "band_info"),
    ".checkpoint": ("CheckpointError", "CheckpointInfo", "load_checkpoint", "read_checkpoint_info", "save_checkpoint"),
    ".weights": ("WeightsNotFoundError", "WeightsIntegrityError"),
    ".hub": ("",), ".models": ("",),
})
__all__ = ["__version__", *_names]

if not getattr(sys.modules.get("s3r_zoo_cli"), "DEFER_REGISTRATION", False):
    from .models import s3r_resnet  # noqa: F401,E402  (registers s3r_resnet18 / s3r_resnet50 with timm)
