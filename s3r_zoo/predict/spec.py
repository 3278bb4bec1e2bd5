"""Every option of ``s3r-zoo predict``, declared once (importable without torch, for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..data.nan import NAN_POLICIES
from ..options import option
from ..train.spec import AMP_MODES

__all__ = ["PredictSpec"]


@dataclass
class PredictSpec:
    """Every option of ``s3r-zoo predict``, declared once."""

    source: str = option("", "folder of cubes, split file (<path> <label>: accuracy is reported) or one cube",
                         positional=True)
    checkpoint: str = option("", "what finetune saved: <out>/seed_<k>/best.safetensors", required=True,
                             metavar="FILE")
    out: str = option("", "output folder", required=True, metavar="DIR")
    tile: Optional[int] = option(None, "window side; default: whole cube if it fits the training crop, else windows "
                                 "of the training crop; 0: always whole cubes (as finetune's test)", min=0)
    stride: Optional[int] = option(None, "step between windows (default: half a window)", min=1)
    batch_size: int = option(16, "windows per forward pass", min=1)
    amp: str = option("none", "mixed precision (default none: fp32, as finetune evaluates)", choices=AMP_MODES)
    nan: str = option("error", "NaN/Inf in the cubes: refuse (error) or repair them",
                      choices=tuple(p for p in NAN_POLICIES if p != "keep"))
