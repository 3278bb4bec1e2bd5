"""The options every training run shares (pre-training and fine-tuning), declared once.

:class:`RunSpec` is the base of ``PretrainSpec`` and ``FinetuneSpec``: each field is one
option of ``s3r-zoo pretrain`` / ``s3r-zoo finetune`` and one key of their ``--config``
YAML, with its type, default, help and allowed values (see :mod:`s3r_zoo.options`).
:meth:`~s3r_zoo.train.TrainConfig.from_spec` hands the trainer's share to the loop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Optional

from ..data.nan import NAN_POLICIES
from ..models.names import MODEL_NAMES
from ..options import option

__all__ = ["RunSpec", "result_fields", "AMP_MODES", "OPERATIONAL", "DATA_ON_DEVICE"]

AMP_MODES = ("auto", "none", "bf16", "fp16")
DATA_ON_DEVICE = ("auto", "on", "off")
# options that change how a run is carried out (workers, logging, how often the state is saved), never its numbers
OPERATIONAL = ("num_workers", "log_every", "ckpt_every", "state_every", "tensorboard", "data_on_device")


@dataclass
class RunSpec:
    """Options shared by ``pretrain`` and ``finetune``."""

    model: str = option("s3r_resnet18", "zoo model to train", choices=MODEL_NAMES)
    epochs: int = option(200, "most epochs to train", min=1)
    batch_size: int = option(16, "crops per optimiser step (per process under torchrun)", min=1)
    lr: float = option(1e-4, "AdamW learning rate", above=0, max=1e6)
    weight_decay: float = option(0.05, "AdamW weight decay", min=0)
    grad_clip: Optional[float] = option(1.0, "clip the gradient norm to this value (0 or none: no clipping)", min=0)
    amp: str = option("auto", "mixed precision: auto = bf16 autocast where the CPU (AVX-512-BF16 / AMX) or GPU runs "
                      "bf16 natively, else fp32; fp16 = autocast + GradScaler (CUDA)", choices=AMP_MODES)
    channels_last: bool = option(True, "channels_last memory format (faster convolutions on CPU and GPU)")
    compile: bool = option(False, "torch.compile the model")
    nan: str = option("error", "NaN/Inf values in the cubes: refuse (error) or repair them while reading",
                      choices=tuple(p for p in NAN_POLICIES if p != "keep"))
    seed: int = option(0, "seed of initial weights, crops, masks and augmentation", min=0, max=2**32 - 1)
    num_workers: int = option(0, "data loader worker processes", min=0)
    data_on_device: str = option("auto", "hold the training cubes on the GPU and cut crops there (auto: when they "
                                 "take at most half its free memory; the same crops as the loader)",
                                 choices=DATA_ON_DEVICE)
    ckpt_every: int = option(0, "also save the resumable state every N steps (0: at epoch ends only)", min=0)
    state_every: int = option(1, "save the resumable state every N epochs and after the last one (a kill loses at "
                              "most N epochs; each save writes model + optimiser)", min=1)
    tensorboard: bool = option(False, "also log to <out>/tensorboard (pip install tensorboard)")
    resume: bool = option(False, "continue the run in --out")


def result_fields(spec: Any) -> dict:
    """What a run's numbers depend on: a spec (or its ``asdict``) without the options that only change how
    it is carried out (workers, logging, state saving) and ``resume``. Two runs with equal result fields give
    the same results, so a finished one can stand in for the other (``s3r-zoo evaluate``'s cache)."""
    d = asdict(spec) if is_dataclass(spec) else dict(spec)
    return {k: v for k, v in d.items() if k not in (*OPERATIONAL, "resume")}
