"""s3r_zoo: S3R (Self-supervised Spectral Regression) pre-trained encoders for
hyperspectral histopathology, as a timm model zoo.

``import s3r_zoo`` registers ``s3r_resnet18`` and ``s3r_resnet50`` with timm::

    import s3r_zoo, timm
    model = timm.create_model("s3r_resnet50", in_chans=40, pretrained=True,
                              wavelengths=[450 + i * 300 / 39 for i in range(40)])
    s3r_zoo.band_info(model)  # wavelengths, per-band mean/std of the adapted model
"""

from . import hub, models  # noqa: F401  (models: registers them with timm)
from .bands import BandInfo, band_info
from .checkpoint import CheckpointError, CheckpointInfo, load_checkpoint, read_checkpoint_info, save_checkpoint
from .version import __version__
from .weights import WeightsIntegrityError, WeightsNotFoundError

__all__ = [
    "__version__", "BandInfo", "band_info", "CheckpointError", "CheckpointInfo", "load_checkpoint",
    "read_checkpoint_info", "save_checkpoint", "WeightsNotFoundError", "WeightsIntegrityError",
]
