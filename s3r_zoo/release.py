"""Turn a pre-training run into a released checkpoint: fp16 file, release record, hub folder.

``s3r-zoo release RUN --tag cr_hims41_v2`` (RUN: a ``pretrain`` output folder or its
``encoder.safetensors``) checks the run against the tag's record in
``s3r_zoo/models/releases.json`` (:mod:`s3r_zoo.models.releases`: architecture and bands),
writes ``weights/<model>.<tag>.safetensors`` (float16, encoder only), records the file's
sha256 and size and how it was trained in that record, and optionally writes the hub
repository folder whose ``model.safetensors`` is the same file byte for byte, so one
record guards both the local file and the hub download. ``s3r-zoo releases`` prints the
records as the model card's table.
"""

from __future__ import annotations

import textwrap
import json
import math
from pathlib import Path
from typing import Optional, Union

import timm
import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .files import file_digest, write_json
from .hub import export_hub_folder
from .models.names import model_name
from .models import releases as _releases
from .models.releases import Release, load_releases, load_retired, record_release
from .weights import REPO_WEIGHTS_DIR

__all__ = ["release_checkpoint", "model_card_table", "write_manifest", "verify_manifest", "MANIFEST"]

TRAINING_KEYS = ("epochs", "steps", "stop", "final_loss", "best_loss", "wall_time_s", "hardware", "torch",
                 "validation", "target_bands")


def _records(records: Union[str, Path, None]) -> Path:
    """The releases file to read or update: ``records``, else the package's ``releases.json``."""
    return Path(records) if records is not None else _releases.RELEASES_FILE


def _validation(info, ckpt: Path) -> dict:
    """The run's held-out record; a release without finite held-out metrics is refused."""
    val = info.extra_value("validation")
    metrics = val.get("metrics") if isinstance(val, dict) else None
    if not metrics:
        raise ValueError(f"{ckpt}: no held-out validation metrics in its metadata; release only runs trained with "
                         f"--val-fraction > 0 (the model card reports them)")
    bad = [k for k, v in metrics.items() if not isinstance(v, (int, float)) or not math.isfinite(v)]
    if bad:
        raise ValueError(f"{ckpt}: held-out validation metrics {bad} are not finite numbers; this run cannot be "
                         f"released")
    return val


def _steps(info, run: Path) -> Optional[int]:
    """Optimiser steps: the checkpoint's record, else the trainer's saved position in the run folder."""
    steps = info.extra_value("steps")
    state = run / "state.safetensors" if run.is_dir() else None
    if steps is None and state is not None and state.is_file():
        from safetensors import safe_open

        with safe_open(str(state), framework="pt") as f:
            steps = json.loads(f.metadata()["position"])["global_step"]
    return steps


def _portable(recipe: dict) -> dict:
    """The recipe with its data named by file, not by where it was on the training machine."""
    data = recipe.get("data")
    if isinstance(data, str) and not data.startswith("synthetic:"):
        return {**recipe, "data": Path(data).name}
    return recipe


def release_checkpoint(run: Union[str, Path], tag: str, weights_dir: Union[str, Path, None] = None,
                       hub_dir: Union[str, Path, None] = None, hardware: Optional[str] = None,
                       records: Union[str, Path, None] = None) -> dict:
    """Release a pre-trained encoder under ``<model>.<tag>``.

    Args:
        run: A ``pretrain`` output folder (its ``encoder.safetensors`` is used) or a checkpoint file.
        tag: Pretrained tag, e.g. ``cr_hims41_v2``; ``<model>.<tag>`` must have a record in ``records``.
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
    validation = _validation(info, ckpt)
    name = f"{model_name(info.architecture)}.{tag}"
    records = _records(records)
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
    steps = _steps(info, run)
    extra = dict(info.extra, release=name, recipe_file=release.recipe, **({"steps": steps} if steps else {}))
    if hardware:
        extra["hardware"] = hardware
    save_checkpoint(out, {k: v for k, v in state_dict.items() if not k.startswith("fc.")},
                    architecture=info.architecture, objective=info.objective, data=info.data,
                    recipe=_portable(info.recipe),
                    wavelengths_nm=info.wavelengths_nm, mean=info.mean, std=info.std, extra=extra,
                    dtype=torch.float16)
    sha256, size = file_digest(out)
    file = {"sha256": sha256, "size": size, "dtype": "float16"}
    training = {k: info.extra_value(k) for k in TRAINING_KEYS}
    training.update(steps=steps, validation=validation, recipe=_portable(info.recipe))
    if hardware:
        training["hardware"] = hardware
    training["timm"] = timm.__version__
    record_release(name, file, training, path=records)
    write_manifest(weights_dir, records)
    entry = {"file": file, "training": training, "path": str(out)}
    if hub_dir is not None:
        entry["hub_dir"] = str(export_hub_folder(out, hub_dir, name=name, repo_id=release.hf_hub_id))
    return entry


MANIFEST = "manifest.json"


def write_manifest(weights_dir: Union[str, Path], records: Union[str, Path, None] = None) -> Path:
    """``<weights_dir>/manifest.json``: the release record of every weight file in the folder (sha256, size,
    steps, epochs, wall time, hardware, held-out metrics, recipe), so a copied folder describes itself.
    Derived from the records; :func:`verify_manifest` checks it against them and the files."""
    weights_dir = Path(weights_dir)
    releases, _ = load_releases(_records(records))
    files = {r.file_name: {"release": r.name, "sha256": r.sha256, "size": r.size, "dtype": r.dtype,
                           "objective": r.objective, "data": r.data, "recipe_file": r.recipe, **r.training}
             for r in releases.values() if r.sha256 and (weights_dir / r.file_name).is_file()}
    for name, r in load_retired(_records(records)).items():
        if (weights_dir / f"{name}.safetensors").is_file():  # still in the folder: listed, marked as retired
            files[f"{name}.safetensors"] = {"release": name, "retired": True, "successor": r["successor"],
                                            **(r.get("file") or {})}
    return write_json(weights_dir / MANIFEST, {"comment": "written by `s3r-zoo release` from "
                                               "s3r_zoo/models/releases.json; `s3r-zoo releases --verify` checks it",
                                               "files": files})


def verify_manifest(weights_dir: Union[str, Path], records: Union[str, Path, None] = None) -> list[str]:
    """Problems of a weights folder (empty list = it verifies): every ``.safetensors`` listed, every listed file
    present with its sha256 and size, every entry equal to its release record."""
    weights_dir = Path(weights_dir)
    path = weights_dir / MANIFEST
    if not path.is_file():
        return [f"{path}: missing"]
    listed = json.loads(path.read_text()).get("files", {})
    releases, _ = load_releases(_records(records))
    retired = load_retired(_records(records))
    by_file = {r.file_name: r for r in releases.values()}
    problems = [f"{f.name}: not in {MANIFEST}" for f in sorted(weights_dir.glob("*.safetensors"))
                if f.name not in listed]
    for name, entry in listed.items():
        f = weights_dir / name
        if not f.is_file():
            problems.append(f"{name}: listed in {MANIFEST} but missing")
            continue
        if (entry.get("sha256"), entry.get("size")) != file_digest(f):
            problems.append(f"{name}: sha256/size differ from {MANIFEST}")
        if entry.get("retired"):
            old = retired.get(entry["release"])
            if old is None or (old.get("file") or {}).get("sha256") != entry.get("sha256"):
                problems.append(f"{name}: {MANIFEST} lists it as retired, but its retired record differs")
            continue
        r = by_file.get(name)
        if r is None or (r.sha256, r.size) != (entry.get("sha256"), entry.get("size")) or any(
                entry.get(k) != v for k, v in r.training.items()):
            problems.append(f"{name}: {MANIFEST} entry differs from its release record")
    return problems


def _objective(r: Release) -> str:
    return {"local": "local S3R"}.get(r.objective, f"S3R-{r.objective.upper()}")


def _row(r: Release) -> str:
    t = r.training
    wl = r.bands.wavelengths_nm
    bands = f"{r.bands.in_chans}, {wl[0]:g}-{wl[-1]:g} nm" if wl else str(r.bands.in_chans)
    if not r.sha256:
        return f"| `{r.name}` | {r.architecture} | {bands} | {_objective(r)} | not released yet |" + " |" * 6
    stop = {"early_stop": "early stop", "max_epochs": "budget"}.get(t.get("stop"), t.get("stop"))
    m = (t.get("validation") or {}).get("metrics") or {}

    def f(key, fmt=".3f"):
        return format(m[key], fmt) if isinstance(m.get(key), (int, float)) else "n/a"

    return (f"| `{r.name}` | {r.architecture} | {bands} | {_objective(r)} | {t.get('steps') or '?'} "
            f"({t.get('epochs')}, {stop}) | {f('cr_l1')} ({f('cr_l1_zeros')} / {f('cr_l1_band_mean')}) | "
            f"{f('locality')} ({f('locality_closed_form')}) | {f('br_error', '.4f')} "
            f"({f('br_error_closed_form', '.4f')}"
            f" / {f('br_error_band_mean', '.4f')}) | {t.get('wall_time_s', 0):.0f} s | {r.size / 1e6:.1f} MB | "
            f"`{r.sha256[:16]}...` |")


def model_card_table(records: Union[str, Path, None] = None) -> str:
    """The model card's table of released weights, from the release records (markdown)."""
    releases, _ = load_releases(_records(records))
    head = ("| name | architecture | bands | objective | steps (epochs, stop) | held-out CR L1 (zeros / band-mean) "
            "| locality (closed form) | BR unexplained variance (floor / band-mean) | wall time | size | sha256 |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    return "\n".join([head] + [_row(r) for r in releases.values()])


def releases_view(records: Union[str, Path, None] = None) -> str:
    """``s3r-zoo releases``: the released weights in under 100 columns, each with a warning where its held-out
    pretext metrics are not better than a baseline that needs no encoder (the full table: MODEL_CARD.md)."""
    from .pretrain.validation import pretext_verdict

    releases, _ = load_releases(_records(records))
    lines = [f"{'name':<30}{'bands':<15}{'obj':<6}{'steps':>6}  {'CR L1 (band-mean)':<19}BR unexpl. (floor)"]
    for r in releases.values():
        wl = r.bands.wavelengths_nm
        bands = f"{r.bands.in_chans} {wl[0]:g}-{wl[-1]:g} nm" if wl else str(r.bands.in_chans)
        m = ((r.training or {}).get("validation") or {}).get("metrics") or {}
        cr = f"{m['cr_l1']:.3f} ({m['cr_l1_band_mean']:.3f})" if "cr_l1" in m else "n/a"
        br = f"{m['br_error']:.4f} ({m['br_error_closed_form']:.4f})" if "br_error" in m else "n/a"
        steps = (r.training or {}).get("steps") if r.sha256 else "-"
        lines.append(f"{r.name:<30}{bands:<15}{r.objective.upper():<6}{steps or '?':>6}  {cr:<19}{br}".rstrip())
        if not r.sha256:
            lines.append("  not released yet")
        lines += [textwrap.fill(w, 98, initial_indent="  warning: ", subsequent_indent="    ")
                  for w in pretext_verdict(m)]
    return "\n".join(lines) + "\n(held-out metrics; MODEL_CARD.md: the full table with baselines, sizes, sha256)"
