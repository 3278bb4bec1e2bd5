"""Turn a pre-training run into a released checkpoint: fp16 file, manifest entry, hub folder.

``s3r-zoo release RUN --tag cr_hims41`` (RUN: a ``pretrain`` output folder or its
``encoder.safetensors``) writes ``weights/<model>.<tag>.safetensors`` (float16, encoder
only), records its sha256 and size with the bands, recipe, final losses, hardware and wall
time in ``weights/manifest.json``, and optionally writes the hub repository folder whose
``model.safetensors`` is the same file byte for byte, so one manifest entry guards both the
local file and the hub download.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import torch

from .checkpoint import atomic_write, load_checkpoint, save_checkpoint
from .weights import REPO_WEIGHTS_DIR, file_digest

__all__ = ["release_checkpoint", "update_manifest"]

_MANIFEST_COMMENT = ("One entry per released file in this folder, keyed <model>.<tag>: sha256, size (bytes), "
                     "bands, wavelengths, recipe, final losses, hardware, wall time. Files that do not match are "
                     "never loaded. Written by `s3r-zoo release`.")


def update_manifest(manifest: Path, model_tag: str, entry: dict) -> None:
    """Set ``files[model_tag] = entry`` in a manifest JSON file, atomically (other entries kept)."""
    data = {"comment": _MANIFEST_COMMENT, "files": {}}
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{manifest}: not valid JSON ({e}); fix or delete it before releasing") from None
        if not isinstance(data.get("files"), dict):
            raise ValueError(f"{manifest}: expected a 'files' mapping, found {type(data.get('files')).__name__}")
    data["comment"] = _MANIFEST_COMMENT
    data["files"][model_tag] = entry
    data["files"] = dict(sorted(data["files"].items()))
    atomic_write(manifest, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"))


def _json_or_str(value: Optional[str]):
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def release_checkpoint(run: Union[str, Path], tag: str, weights_dir: Union[str, Path, None] = None,
                       recipe_file: Optional[str] = None, hub_dir: Union[str, Path, None] = None,
                       hardware: Optional[str] = None) -> dict:
    """Release a pre-trained encoder under ``<model>.<tag>``.

    Args:
        run: A ``pretrain`` output folder (its ``encoder.safetensors`` is used) or a checkpoint file.
        tag: Pretrained tag, e.g. ``cr_hims41``; ``<model>.<tag>`` must be registered in timm.
        weights_dir: Destination folder (default: the repository's ``weights/``).
        recipe_file: The recipe YAML to record (default ``<weights_dir>/recipes/<model>.<tag>.yaml`` if present).
        hub_dir: Also write the hub repository folder here (``s3r-zoo push`` uploads it).
        hardware: What the run ran on, for checkpoints that do not record it (overrides theirs).

    Returns:
        The manifest entry (with ``path`` and, if written, ``hub_dir``).
    """
    import timm

    from .hub import export_hub_folder
    from .models.s3r_resnet import BAND_SETS, PRETRAINED_BANDS

    run = Path(run)
    ckpt = run / "encoder.safetensors" if run.is_dir() else run
    if not ckpt.is_file():
        raise FileNotFoundError(f"{run}: expected a pretrain output folder with encoder.safetensors, or a "
                                f"checkpoint file; found no {ckpt}")
    state_dict, info = load_checkpoint(ckpt)
    model = f"s3r_{info.architecture}"
    model_tag = f"{model}.{tag}"
    if model_tag not in PRETRAINED_BANDS:
        raise ValueError(f"--tag {tag}: '{model_tag}' is not a registered pretrained tag (known: "
                         f"{sorted(PRETRAINED_BANDS)}); add it to PRETRAINED_BANDS in s3r_zoo/models/s3r_resnet.py")
    band_set = BAND_SETS[PRETRAINED_BANDS[model_tag]]
    if info.in_chans != band_set.in_chans:
        raise ValueError(f"{ckpt}: {info.in_chans} bands, but tag '{tag}' declares {band_set.in_chans} "
                         f"({band_set.source})")
    weights_dir = Path(weights_dir) if weights_dir is not None else REPO_WEIGHTS_DIR
    if recipe_file is None and (weights_dir / "recipes" / f"{model_tag}.yaml").is_file():
        recipe_file = f"weights/recipes/{model_tag}.yaml"
    out = weights_dir / f"{model_tag}.safetensors"
    encoder = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    extra = dict(info.extra)
    extra["release"] = model_tag
    if hardware:
        extra["hardware"] = hardware
    if recipe_file:
        extra["recipe_file"] = str(recipe_file)
    save_checkpoint(out, encoder, architecture=info.architecture, objective=info.objective, data=info.data,
                    recipe=info.recipe, wavelengths_nm=info.wavelengths_nm, mean=info.mean, std=info.std,
                    extra=extra, dtype=torch.float16)
    sha256, size = file_digest(out)
    e = {k: _json_or_str(extra.get(k)) for k in ("final_loss", "best_loss", "epochs", "stop", "hardware",
                                                        "wall_time_s", "torch")}
    entry = {"sha256": sha256, "size": size, "dtype": "float16", "architecture": info.architecture,
             "objective": info.objective, "bands": info.in_chans,
             "wavelengths_nm": list(info.wavelengths_nm) if info.wavelengths_nm else None,
             "data": info.data, "recipe": recipe_file or info.recipe, **e, "timm": timm.__version__}
    update_manifest(weights_dir / "manifest.json", model_tag, entry)
    entry = dict(entry, path=str(out))
    if hub_dir is not None:
        entry["hub_dir"] = str(export_hub_folder(out, hub_dir, name=model_tag,
                                                 repo_id=timm.models.get_pretrained_cfg(model_tag).hf_hub_id))
    return entry
