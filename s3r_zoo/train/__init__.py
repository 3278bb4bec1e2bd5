"""Training, shared by pre-training and fine-tuning: the objective contract, the one loop, its state.

* :class:`Objective` (:mod:`.objective`): what every task implements (``forward`` returns
  ``{"loss": ...}``, ``uses_labels``, ``after_step``, ``exported``);
* :class:`Trainer` / :class:`TrainConfig` (:mod:`.engine`): the loop (AMP, DDP, resume);
* :mod:`.state`: the resumable ``state.safetensors``;
* :mod:`.masking`: per-band random patch masks, used by S3R and MHSIM.
"""

from .engine import AMP_MODES, NonFiniteError, NonFiniteLossError, TrainConfig, Trainer, seed_everything
from .masking import apply_masks, band_patch_masks, patch_grid, zero_patches
from .objective import Objective
from .spec import RunSpec, result_fields
from .state import ResumeError, drop_states

__all__ = ["Objective", "Trainer", "TrainConfig", "ResumeError", "NonFiniteError", "NonFiniteLossError", "seed_everything",
           "AMP_MODES", "band_patch_masks", "patch_grid", "zero_patches", "apply_masks", "RunSpec", "result_fields",
           "drop_states"]
