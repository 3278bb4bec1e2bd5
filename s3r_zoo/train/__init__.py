"""Training, shared by pre-training and fine-tuning: the objective contract, the one loop, its state.

* :class:`Objective` (:mod:`.objective`): what every task implements (``forward`` returns
  ``{"loss": ...}``, ``uses_labels``, ``after_step``, ``exported``);
* :class:`Trainer` / :class:`TrainConfig` (:mod:`.engine`): the loop (AMP, DDP, resume);
* :mod:`.state`: the resumable ``state.safetensors``;
* :mod:`.masking`: per-band random patch masks, used by S3R and MHSIM.
"""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".objective": ("Objective",),
    ".engine": ("Trainer", "TrainConfig", "NonFiniteError", "NonFiniteLossError", "seed_everything"),
    ".setup": ("RunInterrupted",),
    ".state": ("ResumeError", "drop_states"),
    ".masking": ("band_patch_masks", "patch_grid", "normalize_zero_patches", "apply_masks"),
    ".spec": ("AMP_MODES", "RunSpec", "result_fields"),
})
