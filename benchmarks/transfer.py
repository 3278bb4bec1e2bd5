"""``python -m benchmarks transfer``: an encoder pre-trained on one sensor, used on another.

The source is S3R-CR pre-trained on the ``pdac_like`` labelled train split of ``bench labels``
(40 bands, 450-750 nm). The targets are the same tissue (same cubes, seeds and split) seen by
other sensors: 32 bands 470-670 nm and 36 bands 460-740 nm. The first conv is brought to the
target bands four ways: by wavelength (the zoo's stem: each target band interpolated from its
neighbours in wavelength), by timm's cyclic repeat (``adapt_input_conv``: source channel
``i % 40`` for target channel ``i``, which ignores what the bands are), with a random first conv
(the rest pre-trained), and by pre-training S3R-CR on the target sensor itself (the upper
reference); random-init features (probe) and scratch (fine-tuning) are the floor. Reported:
linear probe at every label fraction and full fine-tuning at the lowest fine-tuning fraction,
with the powered protocol's statistics (paired tests against the wavelength stem).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import timm
import torch

from s3r_zoo.checkpoint import save_checkpoint
from s3r_zoo.data.synthetic import PRESETS
from s3r_zoo.data.simulated_sets import write_dataset
from s3r_zoo.evaluate import compare_rows, summarise_correct
from s3r_zoo.models import arch_of
from s3r_zoo.plots import accuracy_vs_labels

from .common import budget_record, environment, run_device, write_result
from .labels import Cubes, LabelBudget, features, finetune_correct, prepare, pretrain_method, probe_runs
from .protocol import finetune

SOURCE = "pdac_like"
TARGETS = {"32 bands, 470-670 nm": np.linspace(470, 670, 32), "36 bands, 460-740 nm": np.linspace(460, 740, 36)}
STEMS = {"wavelength": "stem resampled by wavelength (the zoo)", "repeat": "timm's cyclic repeat",
         "random_stem": "random first conv, rest pre-trained", "target": "pre-trained on the target sensor",
         "random": "random-init features", "scratch": "scratch"}


def target_data(root: Path, n: int, b: LabelBudget, wavelengths: np.ndarray) -> Path:
    """The source's labelled cubes (same seeds, labels and split) as the other sensor records them."""
    out = root / f"{SOURCE}_labelled_{n}x{b.size}_m{b.magnification:g}_d{b.difficulty:g}_{len(wavelengths)}b"
    if not (out / "meta.json").is_file():
        write_dataset(out, SOURCE, n=n, size=b.size, seed=0, difficulty=b.difficulty, dtype="float16",
                      magnification=b.magnification, stain_balance=1.0, split=b.split, wavelengths=wavelengths)
    return out


def adapted(source_ckpt: str, b: LabelBudget, wavelengths: np.ndarray, how: str, out: Path) -> str:
    """The source encoder with its first conv brought to ``wavelengths``, saved as a zoo checkpoint."""
    model = timm.create_model(b.model, pretrained=True, pretrained_cfg_overlay=dict(file=source_ckpt),
                              in_chans=len(wavelengths), wavelengths=list(wavelengths), num_classes=0,
                              band_adapt="repeat" if how == "repeat" else "interp")
    if how == "random_stem":
        torch.manual_seed(0)
        fresh = timm.create_model(b.model, pretrained=False, in_chans=len(wavelengths), num_classes=0)
        model.conv1.weight.data.copy_(fresh.conv1.weight.data)
    path = out / f"{how}_{len(wavelengths)}b.safetensors"
    save_checkpoint(path, model.state_dict(), architecture=arch_of(b.model), objective=f"cr, stem: {how}",
                    data=f"{SOURCE} (40 bands) -> {len(wavelengths)} bands", wavelengths_nm=list(wavelengths))
    return str(path)


def plot(results_dir: Path, payload: dict) -> Path:
    """transfer.png: probe accuracy against label fraction per stem, one panel per target sensor."""
    return accuracy_vs_labels({f"{SOURCE} -> {name}: linear probe": t["probe"]
                               for name, t in payload["targets"].items()}, STEMS, Path(results_dir) / "transfer.png",
                              f"{payload['source']}, moved to other sensors", dashed=("random", "target"), chance=50.0)


def replot(results_dir: Path) -> None:
    """Redraw transfer.png from ``transfer.json`` (if present)."""
    path = Path(results_dir) / "transfer.json"
    if path.is_file():
        plot(results_dir, json.loads(path.read_text()))


def run(results_dir: Path, b: LabelBudget, work: Path, amp: str = "auto") -> dict:
    n = b.presets.get(SOURCE, next(iter(b.presets.values())))
    source = pretrain_method("s3r_cr", prepare(work / "data", SOURCE, n, b), b, work, amp)["checkpoint"]
    src_wl = PRESETS[SOURCE].wavelengths_nm
    payload = {"name": "transfer", "source": f"S3R-CR pre-trained on the {SOURCE} labelled train split "
                                              f"({len(src_wl)} bands, {src_wl[0]:g}-{src_wl[-1]:g} nm)",
               "stems": STEMS, "targets": {}, "complete": False, "budget": budget_record(b),
               **environment(run_device())}
    frac = min(b.finetune_fractions)
    for name, wl in TARGETS.items():
        data = target_data(work / "data", n, b, wl)
        cubes = Cubes(data)
        inits = {how: adapted(source, b, wl, how, work / "transfer") for how in ("wavelength", "repeat", "random_stem")}
        inits["target"] = pretrain_method("s3r_cr", data, b, work, amp)["checkpoint"]
        probe, tuned = {}, {}
        for how, init in {**inits, "random": "random"}.items():
            for f, correct in probe_runs(features(init, b, cubes), cubes, b).items():
                probe.setdefault(f"{f:g}", {})[how] = summarise_correct(correct)
        for how, init in {**inits, "scratch": "scratch"}.items():
            agg = finetune(init, data, b.size, b.for_runs(b.crops_per_cube), frac,
                           work / "finetune" / data.name / f"transfer_{how}_f{frac:g}", amp=amp)
            tuned[how] = summarise_correct(finetune_correct(agg))
        for rows in probe.values():
            compare_rows(rows, "wavelength")
        compare_rows(tuned, "wavelength")
        payload["targets"][name] = {"data": f"the {SOURCE} labelled cubes recorded with {len(wl)} bands, "
                                            f"{wl[0]:g}-{wl[-1]:g} nm", "probe": probe,
                                    "finetune": {f"{frac:g}": tuned}}
        write_result(results_dir, "transfer", payload)
    plot(results_dir, payload)
    payload["complete"] = True
    write_result(results_dir, "transfer", payload)
    return payload
