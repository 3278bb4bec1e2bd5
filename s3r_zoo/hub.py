"""Export a zoo checkpoint as a Hugging Face model repository folder that plain timm loads.

Layout of the folder:

* ``model.safetensors`` - the state dict, with the zoo's metadata in its header;
* ``config.json`` - timm's hub format: ``architecture`` is timm's own ``resnet18`` /
  ``resnet50`` (so ``timm.create_model('hf-hub:ORG/NAME', pretrained=True)`` and
  ``'local-dir:DIR'`` work WITHOUT importing s3r_zoo), ``num_classes`` 0, and a strict
  ``pretrained_cfg`` (``input_size`` = (B, 224, 224), per-band mean/std). The S3R extras
  (wavelengths, objective, data, recipe) sit under a separate top-level ``s3r_zoo`` key,
  which timm ignores, and never in ``model_args`` (plain timm would pass them to ResNet);
* ``README.md`` - a model card with the hub's YAML header.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional, Union

import timm

from .checkpoint import FORMAT, load_checkpoint, read_checkpoint_info, save_checkpoint
from .files import atomic_write, first_line, write_json

__all__ = ["export_hub_folder", "hub_config", "model_card", "push_hub_folder", "held_out_evidence", "HUB_FILES"]

HUB_FILES = ("model.safetensors", "config.json", "README.md")

_PAPER = "S3R: Self-supervised Spectral Regression for Hyperspectral Histopathology Image Classification"


def hub_config(info, num_features: int, name: str) -> dict:
    """config.json content for a checkpoint's :class:`~s3r_zoo.checkpoint.CheckpointInfo`."""
    b = info.in_chans
    return {
        "architecture": info.architecture,
        "num_classes": 0,
        "num_features": num_features,
        "pretrained_cfg": {
            "tag": name.split(".", 1)[1] if "." in name else name,
            "custom_load": False,
            "input_size": [b, 224, 224],
            "fixed_input_size": False,
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "crop_mode": "center",
            "mean": list(info.mean) if info.mean else [0.0] * b,
            "std": list(info.std) if info.std else [1.0] * b,
            "num_classes": 0,
            "pool_size": [7, 7],
            "first_conv": "conv1",
            "classifier": "fc",
            "license": "apache-2.0",
            "description": f"{info.objective} encoder ({b} bands) pre-trained on {info.data}",
            "paper_name": _PAPER,
        },
        "s3r_zoo": {"format": FORMAT, "wavelengths_nm": list(info.wavelengths_nm) if info.wavelengths_nm else None,
                    "objective": info.objective, "data": info.data, "recipe": info.recipe, "extra": info.extra},
    }


def held_out_evidence(validation: Optional[dict]) -> str:
    """What the run measured on its held-out region (masking as in training), next to its baselines."""
    from .pretrain.validation import pretext_verdict  # here: `import s3r_zoo` stays light

    m = (validation or {}).get("metrics")
    if not m:
        return "No held-out validation was recorded for this checkpoint."
    lines = [f"On {validation.get('held_out', 'held-out data')} ({m.get('crops', '?')} fixed crops, masked as in "
             f"training; {validation.get('exported', '')}):", ""]
    if "cr_l1" in m:
        lines.append(f"- CR L1(beta^, beta~) {m['cr_l1']:.3f}; predicting zeros "
                     f"{m.get('cr_l1_zeros', float('nan')):.3f}, "
                     f"predicting each band's mean beta~ {m.get('cr_l1_band_mean', float('nan')):.3f}")
        lines.append(f"- locality (share of |beta^| within +-2 bands of b) {m['locality']:.3f}; closed form "
                     f"{m.get('locality_closed_form', float('nan')):.3f}")
        lines.append(f"- BR: median unexplained variance of band b {m['br_error']:.4f}; least-squares floor "
                     f"{m.get('br_error_closed_form', float('nan')):.4f}, band-mean beta~ "
                     f"{m.get('br_error_band_mean', float('nan')):.4f}")
    else:
        lines.append(f"- pretext loss {m['loss']:.4f}")
    lines += ["", *(f"**Warning**: {w}." for w in pretext_verdict(m))]
    return "\n".join(lines).rstrip()


def model_card(info, name: str, repo_id: Optional[str]) -> str:
    """README.md: hub YAML header and honest sections."""
    wl = info.wavelengths_nm
    bands = f"{info.in_chans} bands" + (f", {wl[0]:g}-{wl[-1]:g} nm" if wl else " (wavelengths not recorded)")
    hub = repo_id or "ORG/NAME"
    recipe = json.dumps(info.recipe, indent=2, sort_keys=True) if not isinstance(info.recipe, str) else info.recipe
    losses = {k: info.extra[k] for k in ("final_loss", "best_loss", "epochs", "steps", "hardware", "wall_time_s")
              if k in info.extra}
    return f"""---
license: apache-2.0
library_name: timm
pipeline_tag: image-feature-extraction
tags:
- timm
- image-feature-extraction
- hyperspectral
- histopathology
- self-supervised
- s3r
metrics:
- loss
- cr_l1
- locality
- br_error
---

# {name}

A {info.architecture} encoder pre-trained with self-supervision (objective `{info.objective}`)
on hyperspectral histology cubes with {bands}. Headless (`num_classes=0`): it returns pooled
features for fine-tuning or linear probing.

## Loading

```python
import timm
model = timm.create_model("hf-hub:{hub}", pretrained=True)            # plain timm, {info.in_chans} bands

import s3r_zoo                                                      # adds band adaptation
model = timm.create_model("s3r_{info.architecture}", pretrained=True, in_chans=B, wavelengths=[...],
                          pretrained_cfg_overlay=dict(file="model.safetensors"))
```

Normalise inputs with the per-band `mean`/`std` of `config.json` (transmittance units).

## Training data

{info.data}

## Training recipe

```json
{recipe}
```

Result: {json.dumps(losses) if losses else "not recorded"}.

## Held-out evidence

{held_out_evidence(info.extra_value("validation"))}

## Intended use

A starting point for hyperspectral histopathology classification with few labels, for
research. Not a diagnostic device.

## Limitations

- Trained on the data above only; performance on other tissues, stains, microscopes or
  illumination is unknown. Recompute the per-band statistics on your own data.
- Band adaptation to other sensors interpolates the first convolution along wavelength; it
  assumes narrow bands sampling a smooth spectrum.
- The evidence above is a pretext metric on held-out data, a proxy: it says what the
  pre-training learnt, not whether its features help on your task. Measure that on your
  labelled scans with `s3r-zoo evaluate --encoders hf-hub:{hub}` (linear probes and
  fine-tuning against random init, scratch and the mean spectrum). No clinical validation.

Method: Xie et al., "{_PAPER}", MICCAI 2022. Produced with s3r_zoo.
"""


def export_hub_folder(checkpoint: Union[str, Path], out_dir: Union[str, Path], name: Optional[str] = None,
                      repo_id: Optional[str] = None) -> Path:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` for a zoo checkpoint.

    Args:
        checkpoint: A zoo ``.safetensors`` checkpoint.
        out_dir: Folder to create (files are written atomically).
        name: Model name for the card (default: the checkpoint's file stem).
        repo_id: Hub repository (``ORG/NAME``) for the card's loading snippet.
    """
    state_dict, info = load_checkpoint(checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(checkpoint).stem  # a run's generic file name says nothing: name it by model, objective and run
    name = name or (stem if stem not in ("encoder", "model", "best", "best_val")
                    else f"s3r_{info.architecture}.{info.objective}_{Path(checkpoint).resolve().parent.name}")
    num_features = timm.create_model(info.architecture, pretrained=False, in_chans=info.in_chans,
                                     num_classes=0).num_features
    if any(k.startswith("fc.") for k in state_dict):
        save_checkpoint(out / "model.safetensors", {k: v for k, v in state_dict.items() if not k.startswith("fc.")},
                        architecture=info.architecture, objective=info.objective, data=info.data,
                        recipe=info.recipe, wavelengths_nm=info.wavelengths_nm, mean=info.mean, std=info.std,
                        extra=info.extra)
    else:  # byte for byte, so the release record's sha256 also guards the hub copy
        atomic_write(out / "model.safetensors", lambda tmp: shutil.copyfile(checkpoint, tmp))
    config = hub_config(info, num_features, name)
    write_json(out / "config.json", config)
    card = model_card(info, name, repo_id)
    atomic_write(out / "README.md", lambda tmp: Path(tmp).write_text(card))
    return out


def _check_hub_folder(folder: Path) -> None:
    """A folder written by :func:`export_hub_folder`: the three files, a valid checkpoint and config."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (write one with `s3r-zoo export CKPT --out {folder}`)")
    missing = [f for f in HUB_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: expected {', '.join(HUB_FILES)} (from `s3r-zoo export`); "
                                f"missing {', '.join(missing)}")
    info = read_checkpoint_info(folder / "model.safetensors")
    try:
        config = json.loads((folder / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{folder / 'config.json'}: not valid JSON ({e})") from None
    if config.get("architecture") != info.architecture:
        raise ValueError(f"{folder / 'config.json'}: architecture {config.get('architecture')!r} does not match "
                         f"model.safetensors ({info.architecture!r}); re-run `s3r-zoo export`")
    size = config.get("pretrained_cfg", {}).get("input_size", [None])[0]
    if size != info.in_chans:
        raise ValueError(f"{folder / 'config.json'}: pretrained_cfg.input_size[0] = {size}, but model.safetensors "
                         f"has {info.in_chans} bands; re-run `s3r-zoo export`")


def push_hub_folder(folder: Union[str, Path], repo_id: str, token: Optional[str] = None, private: bool = False,
                    message: Optional[str] = None, endpoint: Optional[str] = None) -> str:
    """Create ``repo_id`` on the hub (if needed) and upload an exported folder in one commit.

    Uses :mod:`huggingface_hub`'s upload API, so the token comes from ``token``, else
    ``$HF_TOKEN``, else the token saved by ``hf auth login``; the hub is ``endpoint``, else
    ``$HF_ENDPOINT``, else huggingface.co.

    Returns:
        The URL of the new commit.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    folder = Path(folder)
    _check_hub_folder(folder)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"--repo {repo_id!r}: expected ORG/NAME")
    api = HfApi(endpoint=endpoint, token=token)
    where = api.endpoint
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                   allow_patterns=list(HUB_FILES),
                                   commit_message=message or f"Upload {folder.name} with s3r_zoo")
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        hint = (" Log in with `hf auth login`, set $HF_TOKEN, or pass --token (a token with write access)."
                if status in (401, 403) else "")
        raise ValueError(f"push {folder} to {repo_id} at {where} failed (HTTP {status}): "
                         f"{first_line(e) or type(e).__name__}.{hint}") from None
    return commit.commit_url
