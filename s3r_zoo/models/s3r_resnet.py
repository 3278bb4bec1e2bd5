"""S3R ResNets: timm ResNets whose pretrained stems adapt to any number of bands.

``s3r_resnet18`` / ``s3r_resnet50`` are timm's own :class:`~timm.models.resnet.ResNet`
(same modules, same state-dict keys as ``resnet18`` / ``resnet50``); only their
pretrained configs and the loading path differ:

* weights are S3R encoders pre-trained on hyperspectral cubes (headless,
  ``num_classes=0`` by default, ``input_size[0]`` = the checkpoint's band count);
* ``create_model(..., in_chans=B, wavelengths=[...])`` resamples ``conv1`` and the
  per-band mean/std from the checkpoint's bands to the requested ones
  (:func:`s3r_zoo.bands.plan_band_adaptation`) inside timm's ``pretrained_filter_fn``;
* the pretrained tags, their band sets and their files' sha256 come from one record per
  release (:mod:`.releases`); weight files are looked up and checked by
  :func:`s3r_zoo.weights.resolve_weights`.

Paper: Xie et al., "S3R: Self-supervised Spectral Regression for Hyperspectral
Histopathology Image Classification", MICCAI 2022.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any, Optional

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._builder import resolve_pretrained_cfg
from timm.models._pretrained import PretrainedCfg
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

from ..bands import BandAdaptation, BandInfo, plan_band_adaptation
from ..checkpoint import CheckpointError, check_finite, read_checkpoint_info
from ..weights import resolve_weights, verify_file
from .names import arch_of
from .releases import RELEASES, RETIRED, Release, retired_message

__all__ = ["checkpoint_filter_fn", "default_cfgs"]


def _cfg(release: Release, **kwargs: Any) -> dict[str, Any]:
    return {
        "hf_hub_id": release.hf_hub_id,
        "num_classes": 0, "input_size": (release.bands.in_chans, 224, 224), "pool_size": (7, 7),
        "crop_pct": 1.0, "interpolation": "bilinear",
        "mean": release.bands.mean, "std": release.bands.std,
        "first_conv": "conv1", "classifier": "fc",
        "license": "apache-2.0",
        "description": release.description,
        "paper_name": "S3R: Self-supervised Spectral Regression for Hyperspectral Histopathology Image Classification",
        **kwargs,
    }


# one pretrained cfg per release record; the first tag of each model is its default
default_cfgs = generate_default_cfgs({name: _cfg(release) for name, release in RELEASES.items()})


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: ResNet, plan: BandAdaptation,
                         where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """timm ``pretrained_filter_fn``: adapt the stem to the model's bands, check the rest.

    Runs before timm's own stem handling; afterwards shapes match, so timm loads as is.
    A classifier that does not fit the model is dropped (zoo checkpoints are encoders).
    """
    check_finite(state_dict, where)  # every load path (explicit file, weights folder, hub) passes here
    out = dict(state_dict)
    out["conv1.weight"] = plan.adapt_conv(out["conv1.weight"])
    target = model.state_dict()
    for key in [k for k in out if k.startswith("fc.")]:
        if key not in target or target[key].shape != out[key].shape:
            del out[key]
    body = [k for k in target if not k.startswith("fc.")]
    missing = [k for k in body if k not in out]
    unexpected = [k for k in out if k not in target]
    wrong = [f"{k}: checkpoint {tuple(out[k].shape)} vs model {tuple(target[k].shape)}"
             for k in body if k in out and out[k].shape != target[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches ({'; '.join(wrong[:3])})")
        if missing:
            parts.append(f"{len(missing)} missing keys ({', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:3])})")
        raise CheckpointError(f"{where}: state dict does not fit {type(model).__name__} "
                              f"(expected timm '{getattr(model, 'pretrained_cfg', {}).get('architecture')}' "
                              f"keys and shapes): " + "; ".join(parts))
    return out


def _source_bands(cfg: PretrainedCfg, model_tag: str, ckpt_info=None, explicit_file: bool = False) -> BandInfo:
    """Bands of the weights.

    Checkpoint metadata first. The tag's band table fills gaps only for the tag's own
    file (local weights dir or hub), never for an explicit ``file=``: a user's file
    without wavelengths has unknown wavelengths, and without mean/std gets 0/1.
    """
    table = RELEASES[model_tag].bands if model_tag in RELEASES else None
    if table is None and len(cfg.mean) == cfg.input_size[0] == len(cfg.std):
        table = BandInfo(None, tuple(cfg.mean), tuple(cfg.std), source="pretrained_cfg")
    if ckpt_info is None:
        if table is None:
            raise ValueError(f"{model_tag}: pretrained_cfg mean/std do not match input_size {cfg.input_size}")
        return table
    n = ckpt_info.in_chans
    fallback = table if table is not None and table.in_chans == n and not explicit_file else None
    wl = ckpt_info.wavelengths_nm or (fallback.wavelengths_nm if fallback else None)
    mean = ckpt_info.mean or (fallback.mean if fallback else (0.0,) * n)
    std = ckpt_info.std or (fallback.std if fallback else (1.0,) * n)
    return BandInfo(wl, tuple(mean), tuple(std), source=f"checkpoint {ckpt_info.path}")


def _resolve_cfg(variant: str, pretrained_cfg: Any, overlay: Optional[dict]) -> tuple[PretrainedCfg, str]:
    """timm's cfg resolution, with a clear error for unknown tags."""
    names = sorted(n for n in default_cfgs[variant].cfgs)
    if isinstance(pretrained_cfg, str) and f"{variant}.{pretrained_cfg}" in RETIRED:
        raise ValueError(retired_message(f"{variant}.{pretrained_cfg}", RETIRED[f"{variant}.{pretrained_cfg}"]))
    if isinstance(pretrained_cfg, str) and pretrained_cfg not in default_cfgs[variant].cfgs:
        raise ValueError(f"{variant}: unknown pretrained tag '{pretrained_cfg}'; available: "
                         + ", ".join(f"{variant}.{t}" for t in names))
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=pretrained_cfg, pretrained_cfg_overlay=overlay)
    tag = cfg.tag or (pretrained_cfg if isinstance(pretrained_cfg, str) else default_cfgs[variant].tags[0])
    return cfg, f"{variant}.{tag}"


def _create_s3r_resnet(variant: str, pretrained: bool = False, **kwargs: Any) -> ResNet:
    """Build an S3R ResNet; see the module docstring for the extra kwargs.

    Extra kwargs:
        wavelengths: Band centres (nm) of the model's input channels.
        band_adapt: ``'interp'`` (default) or ``'repeat'`` (timm's cyclic tiling).
    """
    wavelengths = kwargs.pop("wavelengths", None)
    band_adapt = kwargs.pop("band_adapt", "interp")
    cfg, model_tag = _resolve_cfg(variant, kwargs.pop("pretrained_cfg", None),
                                  kwargs.pop("pretrained_cfg_overlay", None))
    ckpt_info, path = None, None
    if pretrained:
        release = RELEASES.get(model_tag)
        path = resolve_weights(model_tag, file=cfg.file, hf_hub_id=cfg.hf_hub_id,
                               hf_hub_filename=cfg.hf_hub_filename, cache_dir=kwargs.get("cache_dir"),
                               expected=release.file_facts() if release is not None else None)
        ckpt_info = read_checkpoint_info(path)
        claimed = RELEASES.get(str(ckpt_info.extra.get("release", "")))
        if cfg.file is not None and claimed is not None:  # a file that says it is a release must be that release
            verify_file(Path(path), claimed.file_facts(), claimed.name)
        if ckpt_info.architecture != arch_of(variant):
            raise CheckpointError(f"{path}: metadata architecture '{ckpt_info.architecture}' does not fit "
                                  f"{variant} (expects '{arch_of(variant)}')")
    src = _source_bands(cfg, model_tag, ckpt_info=ckpt_info, explicit_file=cfg.file is not None)
    in_chans = kwargs.get("in_chans")
    if in_chans is None:
        in_chans = len(wavelengths) if wavelengths is not None else src.in_chans
    plan = plan_band_adaptation(src, in_chans, wavelengths, band_adapt, name=str(path) if path else model_tag,
                                log_level=logging.WARNING if pretrained else logging.INFO)
    kwargs["in_chans"] = plan.tgt.in_chans
    overlay = dict(input_size=(plan.tgt.in_chans,) + tuple(cfg.input_size[1:]), mean=plan.tgt.mean,
                   std=plan.tgt.std)
    if path is not None:
        overlay["file"] = str(path)
    model = build_model_with_cfg(
        ResNet, variant, pretrained,
        pretrained_cfg=cfg,
        pretrained_cfg_overlay=overlay,
        pretrained_filter_fn=partial(checkpoint_filter_fn, plan=plan, where=str(path)),
        **kwargs,
    )
    model.band_info = plan.tgt
    return model


@register_model
def s3r_resnet18(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-18 with an S3R-pretrained, band-adaptive stem."""
    model_args = dict(block=BasicBlock, layers=(2, 2, 2, 2))
    return _create_s3r_resnet("s3r_resnet18", pretrained, **dict(model_args, **kwargs))


@register_model
def s3r_resnet50(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet-50 with an S3R-pretrained, band-adaptive stem."""
    model_args = dict(block=Bottleneck, layers=(3, 4, 6, 3))
    return _create_s3r_resnet("s3r_resnet50", pretrained, **dict(model_args, **kwargs))
