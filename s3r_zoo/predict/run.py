"""The ``s3r-zoo predict`` run (its options: :mod:`.spec`)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import timm
import torch

from ..checkpoint import load_checkpoint, read_checkpoint_info
from ..data.cache import open_cube
from ..data.sources import source_files
from ..data.report import false_colour
from ..data.stats import BandStats
from ..embed.run import embed_cube, relative_name, same_bands, windows
from ..files import check_writable_dir, write_csv, write_json
from ..models.names import model_name
from ..plots import pyplot, save_figure
from ..progress import progress
from ..train.engine import resolve_amp
from .spec import PredictSpec

__all__ = ["run_predict", "load_classifier"]



def load_classifier(path: str) -> tuple[torch.nn.Module, list[str], BandStats, dict]:
    """(model in eval mode, class names, band statistics, checkpoint facts) of a fine-tuned checkpoint."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    info = read_checkpoint_info(path)
    classes = info.extra_value("classes")
    if not classes:
        raise ValueError(f"{path}: not a fine-tuned checkpoint (no class names in its metadata); predict needs what "
                         f"`s3r-zoo finetune` saves (seed_<k>/best.safetensors)")
    if info.mean is None or info.std is None:
        raise ValueError(f"{path}: no per-band mean/std in its metadata; cannot normalise the input as in training")
    sd, _ = load_checkpoint(path)
    model = timm.create_model(model_name(info.architecture), in_chans=info.in_chans, num_classes=len(classes))
    model.load_state_dict(sd)
    facts = {"bands": info.in_chans, "wavelengths_nm": info.wavelengths_nm, "crop": info.extra_value("crop")}
    return model.eval(), list(classes), BandStats(mean=tuple(info.mean), std=tuple(info.std), count=0), facts


def _heatmap(cube, boxes, probs: np.ndarray, classes: list, title: str, path: Path) -> Path:
    """The mean window probability of each pixel, one panel per class (one for two classes: P(second class)),
    so a colour means the same class on every map; each colour scale spans that map's own range."""
    plt = pyplot()
    shown = [len(classes) - 1] if len(classes) == 2 else list(range(len(classes)))
    h, w = cube.shape[:2]
    fig, axes = plt.subplots(1, len(shown), figsize=(6 * len(shown), 6 * h / w + 0.8), dpi=110, squeeze=False)
    for ax, cls in zip(axes[0], shown):
        acc, cnt = np.zeros((h, w)), np.zeros((h, w))
        for (t, l, th, tw), p in zip(boxes, probs[:, cls]):
            acc[t:t + th, l:l + tw] += p
            cnt[t:t + th, l:l + tw] += 1
        m = acc / np.maximum(cnt, 1)
        lo, hi = float(m.min()), float(m.max())
        if hi - lo < 1e-3:  # a flat map: a small symmetric range, so it reads as flat
            lo, hi = lo - 5e-4, hi + 5e-4
        ax.imshow(false_colour(cube), interpolation="nearest")
        im = ax.imshow(m, cmap="viridis", alpha=0.55, vmin=lo, vmax=hi, interpolation="nearest")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02,
                     label=f"P({classes[cls]}), mean of the windows over each pixel ({m.min():.3f}-{m.max():.3f})")
        ax.set_axis_off()
    fig.suptitle(textwrap.fill(title, 70 * len(shown)), fontsize=9)  # wrapped: a long path never cuts it off
    fig.tight_layout()
    return save_figure(fig, path, dpi="figure")


def run_predict(spec: PredictSpec) -> dict:
    """Classify every cube of ``spec.source``; returns the summary (also ``predict.json``)."""
    if spec.tile is not None and spec.tile != 0 and spec.tile < 8:
        raise ValueError(f"--tile: expected 0 (whole cubes) or at least 8 pixels, found {spec.tile}")
    if spec.stride is not None and spec.stride < 1:
        raise ValueError(f"--stride: expected a positive step, found {spec.stride}")
    out = Path(spec.out)
    check_writable_dir(out)
    model, classes, stats, facts = load_classifier(spec.checkpoint)
    paths, base, labels = source_files(spec.source)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = resolve_amp(spec.amp, device)
    model = model.to(device).to(memory_format=torch.channels_last)
    rows, correct, tiled = [], 0, 0
    for k, path in enumerate(progress(paths, desc="predict", unit="cube", disable=len(paths) < 2)):
        cube = open_cube(path)
        if cube.num_bands != facts["bands"]:
            raise ValueError(f"{path}: {cube.num_bands} bands, but the checkpoint was fine-tuned on {facts['bands']}")
        wl = facts["wavelengths_nm"]
        if not same_bands(wl, cube.wavelengths):
            raise ValueError(f"{path}: wavelengths {cube.wavelengths[0]:g}-{cube.wavelengths[-1]:g} nm differ from the "
                             f"checkpoint's {wl[0]:g}-{wl[-1]:g} nm; fine-tune on this band set first")
        h, w = cube.shape[:2]
        crop = facts["crop"]
        tile = spec.tile if spec.tile is not None else (crop if crop and (h > crop or w > crop) else None)
        tile = None if tile == 0 else tile
        boxes = windows(h, w, tile, spec.stride or (max(tile // 2, 1) if tile else None))
        logits = torch.cat(list(embed_cube(model, cube, boxes, stats, device, spec.batch_size, amp, spec.nan)))
        probs = torch.softmax(logits.double(), dim=1).numpy()
        p = probs.mean(0)
        pred = int(np.argmax(p))
        rel = relative_name(path, base)
        if len(boxes) > 1:
            tiled += 1
            truth = f"; true {labels[k]}" if labels else ""
            _heatmap(cube, boxes, probs, classes, f"{rel}: predicted {classes[pred]} (P {p[pred]:.3f}){truth}; "
                     f"{len(boxes)} windows of {boxes[0][2]} px", out / "heatmaps" / (rel.replace("/", "__") + ".png"))
        row = {"path": rel, **({"label": labels[k]} if labels else {}), "predicted": classes[pred],
               **{f"p_{c}": round(float(v), 6) for c, v in zip(classes, p)}, "windows": len(boxes),
               "tile": tile or "whole"}
        correct += int(labels is not None and labels[k] == classes[pred])
        rows.append(row)
    write_csv(out / "predictions.csv", list(rows[0]), [list(r.values()) for r in rows])
    summary = {"checkpoint": Path(spec.checkpoint).name, "classes": classes, "cubes": len(rows),
               "tiled_cubes": tiled, "tile": spec.tile if spec.tile is not None else
               f"auto: whole cubes up to the training crop ({facts['crop']} px), windows of it in larger scenes",
               "stride": spec.stride or "half a window", "amp": amp, "device": device.type,
               "predicted_counts": {c: sum(r["predicted"] == c for r in rows) for c in classes}}
    if labels is not None:
        summary["accuracy"] = correct / len(rows)
    write_json(out / "predict.json", summary)
    return summary
