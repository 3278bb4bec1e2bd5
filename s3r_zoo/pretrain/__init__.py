"""S3R pre-training: masking, closed-form targets, objectives, the trainer loop, the runner."""

from .engine import NonFiniteLossError, ResumeError, TrainConfig, Trainer
from .masking import apply_masks, band_patch_masks
from .objectives import RegressObjective, S3RObjective, build_encoder
from .run import PretrainSpec, run_pretrain
from .targets import coefficient_targets

__all__ = ["Trainer", "TrainConfig", "ResumeError", "NonFiniteLossError", "band_patch_masks", "apply_masks",
           "S3RObjective", "RegressObjective", "build_encoder", "PretrainSpec", "run_pretrain",
           "coefficient_targets"]
