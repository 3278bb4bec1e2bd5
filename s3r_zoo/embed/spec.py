"""Every option of ``s3r-zoo embed``, declared once (importable without torch, for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..data.nan import NAN_POLICIES
from ..models.names import MODEL_NAMES
from ..options import option
from ..train.spec import AMP_MODES

__all__ = ["EmbedSpec", "STATS_CUBES"]


STATS_CUBES = 32  # cubes whose statistics --normalize data uses


@dataclass
class EmbedSpec:
    """Every option of ``s3r-zoo embed``, declared once."""

    source: str = option("", "folder of cubes, split file (<path> <label> lines) or one cube", positional=True)
    init: str = option("", "a tag (s3r_resnet50.cr_hims41_v2), a checkpoint file, hf-hub:ORG/NAME or local-dir:FOLDER",
                       required=True,
                       metavar="INIT")
    out: str = option("", "output folder", required=True, metavar="DIR")
    model: Optional[str] = option(None, "architecture (default: the checkpoint's or tag's)", choices=MODEL_NAMES)
    tile: Optional[int] = option(None, "window side in pixels (default: one feature per whole cube)", min=1)
    stride: Optional[int] = option(None, "step between windows (default: --tile)", min=1)
    batch_size: int = option(16, "windows per forward pass", min=1)
    amp: str = option("auto", "auto: bf16 where the CPU or GPU runs it natively", choices=AMP_MODES)
    nan: str = option("error", "NaN/Inf in the cubes: refuse (error) or repair them",
                      choices=tuple(p for p in NAN_POLICIES if p != "keep"))
    wavelengths: Optional[list[float]] = option(None, "band centres of the data in nm (if its files have none)",
                                                metavar="NM")
    normalize: str = option("checkpoint", "checkpoint: the checkpoint's per-band mean/std, resampled to the data's "
                            "bands (a cube's features never depend on which other cubes are embedded); data: the "
                            f"mean/std of (up to {STATS_CUBES}) cubes of SOURCE", choices=("checkpoint", "data"))
