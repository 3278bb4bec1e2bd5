"""Turn a pre-training run into a released checkpoint: fp16 file, release record, hub folder.

``s3r-zoo release RUN --tag cr_hims41`` (RUN: a ``pretrain`` output folder or its
``encoder.safetensors``) checks the run against the tag's record in
``s3r_zoo/models/releases.json`` (:mod:`s3r_zoo.models.releases`: architecture and bands),
writes ``weights/<model>.<tag>.safetensors`` (float16, encoder only), records the file's
sha256 and size and how it was trained in that record, and optionally writes the hub
repository folder whose ``model.safetensors`` is the same file byte for byte, so one
record guards both the local file and the hub download. ``s3r-zoo releases`` prints the
records as the model card's table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import timm
import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .files import file_digest
from .hub import export_hub_folder
from .models.names import model_name
from .models import releases as _releases
from .models.releases import Release, load_releases, record_release
from .weights import REPO_WEIGHTS_DIR

__all__ = ["release_checkpoint", "model_card_table"]

TRAINING_KEYS = ("epochs", "stop", "final_loss", "best_loss", "wall_time_s", "hardware", "torch")


def release_checkpoint(run: Union[str, Path], tag: str, weights_dir: Union[str, Path, None] = None,
                       hub_dir: Union[str, Path, None] = None, hardware: Optional[str] = None,
                       records: Union[str, Path, None] = None) -> dict:
    """Release a pre-trained encoder under ``<model>.<tag>``.

    Args:
        run: A ``pretrain`` output folder (its ``encoder.safetensors`` is used) or a checkpoint file.
        tag: Pretrained tag, e.g. ``cr_hims41``; ``<model>.<tag>`` must have a record in ``records``.
        weights_dir: Destination folder (default: the repository's ``weights/``).
        hub_dir: Also write the hub repository folder here (``s3r-zoo push`` uploads it).
        hardware: What the run ran on, for checkpoints that do not record it (overrides theirs).
        records: The releases file whose record is updated (default: the package's ``releases.json``).

    Returns:
        What was recorded (``file`` and ``training``), with ``path`` and, if written, ``hub_dir``.
    """
    run = Path(run)
    ckpt = run / "encoder.safetensors" if run.is_dir() else run
    if not ckpt.is_file():
        raise FileNotFoundError(f"{run}: expected a pretrain output folder with encoder.safetensors, or a "
                                f"checkpoint file; found no {ckpt}")
    state_dict, info = load_checkpoint(ckpt)
    name = f"{model_name(info.architecture)}.{tag}"
    records = Path(records) if records is not None else _releases.RELEASES_FILE
    releases, _ = load_releases(records)
    if name not in releases:
        raise ValueError(f"--tag {tag}: '{name}' has no release record (known: {sorted(releases)}); add one "
                         f"(band_set, objective, data, recipe) to {records.name}")
    release = releases[name]
    if info.in_chans != release.bands.in_chans:
        raise ValueError(f"{ckpt}: {info.in_chans} bands, but tag '{tag}' declares {release.bands.in_chans} "
                         f"({release.bands.source})")
    weights_dir = Path(weights_dir) if weights_dir is not None else REPO_WEIGHTS_DIR
    out = weights_dir / release.file_name
    extra = dict(info.extra, release=name, recipe_file=release.recipe)
    if hardware:
        extra["hardware"] = hardware
    save_checkpoint(out, {k: v for k, v in state_dict.items() if not k.startswith("fc.")},
                    architecture=info.architecture, objective=info.objective, data=info.data, recipe=info.recipe,
                    wavelengths_nm=info.wavelengths_nm, mean=info.mean, std=info.std, extra=extra,
                    dtype=torch.float16)
    sha256, size = file_digest(out)
    file = {"sha256": sha256, "size": size, "dtype": "float16"}
    training = {k: info.extra_value(k) for k in TRAINING_KEYS}
    if hardware:
        training["hardware"] = hardware
    training["timm"] = timm.__version__
    record_release(name, file, training, path=records)
    entry = {"file": file, "training": training, "path": str(out)}
    if hub_dir is not None:
        entry["hub_dir"] = str(export_hub_folder(out, hub_dir, name=name, repo_id=release.hf_hub_id))
    return entry


def _row(r: Release) -> str:
    t = r.training
    wl = r.bands.wavelengths_nm
    bands = f"{r.bands.in_chans}, {wl[0]:g}-{wl[-1]:g} nm" if wl else str(r.bands.in_chans)
    if not r.sha256:
        return f"| `{r.name}` | {r.architecture} | {bands} | S3R-{r.objective.upper()} | not released yet |||||"
    stop = {"early_stop": "early stop", "max_epochs": "budget"}.get(t.get("stop"), t.get("stop"))
    return (f"| `{r.name}` | {r.architecture} | {bands} | S3R-{r.objective.upper()} | {t.get('epochs')} ({stop}) | "
            f"{t.get('final_loss', float('nan')):.3f} / {t.get('best_loss', float('nan')):.3f} | "
            f"{t.get('wall_time_s', 0):.0f} s | {r.size / 1e6:.1f} MB | `{r.sha256[:16]}...` |")


def model_card_table(records: Union[str, Path, None] = None) -> str:
    """The model card's table of released weights, from the release records (markdown)."""
    releases, _ = load_releases(Path(records) if records is not None else _releases.RELEASES_FILE)
    head = ("| name | architecture | bands | objective | epochs (stop) | final / best loss | wall time | size | sha256 |\n"
            "|---|---|---|---|---|---|---|---|---|")
    return "\n".join([head] + [_row(r) for r in releases.values()])
