"""The zoo's model names and the timm architectures they are built on: the one mapping.

A zoo model ``s3r_<arch>`` is timm's ``<arch>`` (same modules, same state-dict keys) with
a band-adaptive pretrained stem; checkpoints record ``<arch>`` as their architecture.
"""

from __future__ import annotations

__all__ = ["MODEL_NAMES", "ARCHITECTURES", "arch_of", "model_name"]

ARCHITECTURES = {"s3r_resnet18": "resnet18", "s3r_resnet50": "resnet50"}
MODEL_NAMES = tuple(ARCHITECTURES)
_MODELS = {arch: name for name, arch in ARCHITECTURES.items()}


def arch_of(model: str) -> str:
    """timm architecture of a zoo model (``s3r_resnet50`` -> ``resnet50``); also takes ``model.tag``."""
    name = model.split(".", 1)[0]
    if name not in ARCHITECTURES:
        raise ValueError(f"model: expected one of {list(MODEL_NAMES)}, found {model!r}")
    return ARCHITECTURES[name]


def model_name(arch: str) -> str:
    """Zoo model of a timm architecture (``resnet50`` -> ``s3r_resnet50``)."""
    if arch not in _MODELS:
        raise ValueError(f"architecture: expected one of {list(_MODELS)}, found {arch!r}")
    return _MODELS[arch]
