"""S3R ResNets: timm ResNets whose pretrained stems adapt to any number of bands.

``s3r_resnet18`` / ``s3r_resnet50`` are timm's own :class:`~timm.models.resnet.ResNet`
(same modules, same state-dict keys as ``resnet18`` / ``resnet50``); only their
pretrained configs and the loading path differ:

* weights are S3R encoders pre-trained on hyperspectral cubes (headless,
  ``num_classes=0`` by default, ``input_size[0]`` = the checkpoint's band count);
* ``create_model(..., in_chans=B, wavelengths=[...])`` resamples ``conv1`` and the
  per-band mean/std from the checkpoint's bands to the requested ones
  (:func:`s3r_zoo.bands.plan_band_adaptation`) inside timm's ``pretrained_filter_fn``;
* weight files are looked up by :func:`s3r_zoo.weights.resolve_weights`.

Paper: Xie et al., "S3R: Self-supervised Spectral Regression for Hyperspectral
Histopathology Image Classification", MICCAI 2022.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any, Optional

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._builder import resolve_pretrained_cfg
from timm.models._pretrained import PretrainedCfg
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

from ..bands import BandAdaptation, BandInfo, plan_band_adaptation
from ..checkpoint import CheckpointError, read_checkpoint_info
from ..weights import resolve_weights

__all__ = ["BAND_SETS", "PRETRAINED_BANDS", "checkpoint_filter_fn"]

HUB_ORG = "s3r-zoo"

# Band sets the released checkpoints were trained on. Checkpoint metadata is
# authoritative; this table describes a tag before its file is downloaded.
# hims41: FDA HIMS microscope, 41 bands 380-780 nm in 10 nm steps, transmittance;
# mean/std measured on the public bladder core (../shared/data/hims_bladder, NaNs skipped).
BAND_SETS: dict[str, BandInfo] = {
    "hims41": BandInfo(
        wavelengths_nm=tuple(380.0 + 10.0 * i for i in range(41)),
        mean=(0.8405, 0.9297, 0.9417, 0.9283, 0.9350, 0.9309, 0.9347, 0.9128, 0.9023, 0.8850, 0.8450,
              0.7922, 0.7561, 0.7241, 0.6416, 0.5978, 0.6363, 0.7473, 0.8360, 0.8816, 0.8867, 0.8879,
              0.8866, 0.8866, 0.9003, 0.9135, 0.9117, 0.9257, 0.9379, 0.9600, 0.9640, 0.9823, 0.9919,
              0.9927, 0.9911, 0.9964, 0.9987, 0.9992, 1.0022, 0.9988, 0.9542),
        std=(0.1201, 0.0553, 0.0572, 0.0602, 0.0628, 0.0645, 0.0677, 0.0712, 0.0826, 0.0999, 0.1261,
             0.1643, 0.1884, 0.2140, 0.2553, 0.2851, 0.2648, 0.2014, 0.1509, 0.1378, 0.1377, 0.1381,
             0.1383, 0.1370, 0.1344, 0.1281, 0.1152, 0.1016, 0.0833, 0.0645, 0.0473, 0.0352, 0.0266,
             0.0201, 0.0168, 0.0152, 0.0146, 0.0127, 0.0120, 0.0119, 1.4534),
        source="band table hims41 (FDA HIMS, 380-780 nm)",
    ),
}

_OBJECTIVES = {"cr": "S3R-CR (coefficient regression)", "br": "S3R-BR (band regression)"}
_ARCH = {"s3r_resnet18": "resnet18", "s3r_resnet50": "resnet50"}


def _cfg(name: str, bands: str, objective: str, **kwargs: Any) -> dict[str, Any]:
    band_set = BAND_SETS[bands]
    return {
        "hf_hub_id": f"{HUB_ORG}/{name}",
        "num_classes": 0, "input_size": (band_set.in_chans, 224, 224), "pool_size": (7, 7),
        "crop_pct": 1.0, "interpolation": "bilinear",
        "mean": band_set.mean, "std": band_set.std,
        "first_conv": "conv1", "classifier": "fc",
        "license": "apache-2.0",
        "description": f"{_OBJECTIVES[objective]} encoder pre-trained on {bands} hyperspectral cubes",
        "paper_name": "S3R: Self-supervised Spectral Regression for Hyperspectral Histopathology Image Classification",
        **kwargs,
    }


# name -> band set; the first tag of each model is its default.
PRETRAINED_BANDS: dict[str, str] = {
    "s3r_resnet18.cr_hims41": "hims41",
    "s3r_resnet18.br_hims41": "hims41",
    "s3r_resnet50.cr_hims41": "hims41",
    "s3r_resnet50.br_hims41": "hims41",
}

default_cfgs = generate_default_cfgs({
    name: _cfg(name, bands, objective=name.split(".")[1].split("_")[0])
    for name, bands in PRETRAINED_BANDS.items()
})


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: ResNet, plan: BandAdaptation,
                         where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """timm ``pretrained_filter_fn``: adapt the stem to the model's bands, check the rest.

    Runs before timm's own stem handling; afterwards shapes match, so timm loads as is.
    A classifier that does not fit the model is dropped (zoo checkpoints are encoders).
    """
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
    table = BAND_SETS.get(PRETRAINED_BANDS.get(model_tag, ""))
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
        path = resolve_weights(model_tag, file=cfg.file, hf_hub_id=cfg.hf_hub_id,
                               hf_hub_filename=cfg.hf_hub_filename, cache_dir=kwargs.get("cache_dir"))
        ckpt_info = read_checkpoint_info(path)
        if ckpt_info.architecture != _ARCH[variant]:
            raise CheckpointError(f"{path}: metadata architecture '{ckpt_info.architecture}' does not fit "
                                  f"{variant} (expects '{_ARCH[variant]}')")
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
