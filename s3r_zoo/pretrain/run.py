"""``s3r-zoo pretrain``: the run template (:mod:`s3r_zoo.train.template`) with S3R's steps: data (and the
Gram matrices of the training crops) -> band stats -> objective -> trainer -> export + plots.

Objectives: S3R (``cr``, ``br``), the Table 1 ablation (``regress``) and the Table 2
baselines (``simsiam``, ``byol`` with ``bands=3`` or all, ``mhsim``, ``convdeconv``,
``ssad``), all through the same trainer and export.

Outputs in ``out``: ``state.safetensors`` (resumable state), ``metrics.jsonl``,
``stats.json`` (per-band mean/std of the raw training data), ``encoder.safetensors``
(the zoo checkpoint: load it with ``timm.create_model(model, pretrained=True,
pretrained_cfg_overlay=dict(file=...))``), ``summary.json``, ``loss_curve.png`` and, for
CR/BR, ``beta_profile.png`` (beta^_b against band, next to the closed-form beta~).
"""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..checkpoint import save_checkpoint
from ..data.datasets import CubeDataset, open_source
from ..data.sources import resolved_source
from ..data.stats import BandStats
from ..data.synthetic import PRESETS
from ..data.simulated_sets import SyntheticHSI
from ..files import write_json
from ..models import arch_of, build_encoder
from ..lowrank import loo_r2
from ..options import check_spec
from ..plots import beta_profiles, loss_curve, validation_curves
from ..train import Objective, TrainConfig, Trainer
from ..train.template import RunTemplate
from .objectives import S3RObjective
from .registry import COEFFICIENT_OBJECTIVES, TARGETED, make_objective
from .spec import NOT_RECIPE, PretrainSpec, uses_head_prior
from .targets import coefficient_targets
from .validation import (PretextValidation, crop_grams, mean_coefficients, pretext_verdict, split_train_val,
                         validation_crops)

__all__ = ["run_pretrain", "PretrainRun", "format_summary", "build_dataset", "make_pretrain_objective", "select_target_bands"]

_logger = logging.getLogger(__name__)


def build_dataset(spec: PretrainSpec) -> tuple[CubeDataset | SyntheticHSI, Optional[np.ndarray], str]:
    """(dataset of raw cubes, wavelengths, human description of the data)."""
    if spec.data.startswith("synthetic:"):
        preset = spec.data.split(":", 1)[1]
        if preset not in PRESETS:
            raise ValueError(f"--data synthetic:NAME: expected one of {sorted(PRESETS)}, found {preset!r}")
        ds = SyntheticHSI(preset, n=spec.synthetic_n, size=spec.crop, seed=spec.seed)
        return ds, ds.wavelengths, f"simulated {preset} ({spec.synthetic_n} cubes of {spec.crop}px)"
    path = Path(spec.data)
    ds = open_source(path, crop=spec.crop, crops_per_cube=spec.crops_per_cube, nan=spec.nan, seed=spec.seed)
    first = ds.cube(0)
    # named by the file or folder, never by the machine's path to it
    return ds, first.wavelengths, f"{path.name} ({len(ds.items)} cubes, {spec.crop}px crops, nan={spec.nan})"


def make_pretrain_objective(spec: PretrainSpec, stats: BandStats,
                            target_bands: Optional[list[int]] = None) -> Objective:
    """The run's objective: its encoder (``spec.init``) inside ``spec.objective``."""
    encoder = build_encoder(spec.model, spec.bands or len(stats.mean), spec.init)
    return make_objective(spec, encoder, stats.mean, stats.std, target_bands)


def select_target_bands(spec: PretrainSpec, ds, wavelengths,
                        grams: Optional[tuple[torch.Tensor, torch.Tensor, int]] = None
                        ) -> tuple[Optional[list[int]], dict]:
    """The bands S3R may draw as b, and why: ``(indices or None for all, record)``.

    ``grams``: :func:`~.validation.crop_grams` of the training crops, when already computed.

    Rule (docs/method.md): a band whose leave-one-band-out R2 on the training crops (the
    ``stats_samples`` crops of the band statistics) is below ``target_r2_min`` is sensor noise
    as far as the low-rank prior can tell; its beta~ is meaningless and, drawn as b, its huge
    coefficients would dominate the loss. It stays an encoder input and a predictor.
    ``target_bands`` overrides the rule.
    """
    if spec.objective not in TARGETED:
        return None, {}
    b = ds[0][0].shape[0]
    if spec.target_bands is not None:
        bad = [t for t in spec.target_bands if not 0 <= t < b]
        if bad:
            raise ValueError(f"--target-bands: expected band indices in 0..{b - 1}, found {bad}")
        return sorted(set(spec.target_bands)), {"rule": "explicit --target-bands"}
    grams_, sums, pixels = grams if grams is not None else crop_grams(ds, spec.stats_samples)
    n = len(grams_)
    count = n * pixels  # the centred Gram matrix over every pixel of the crops
    m = sums.sum(0) / count
    r2 = loo_r2(None, g=grams_.sum(0) - count * torch.outer(m, m)).tolist()
    keep = [i for i in range(b) if r2[i] >= spec.target_r2_min]
    if not keep:
        raise ValueError(f"--target-r2-min {spec.target_r2_min}: no band reaches it (best R2 {max(r2):.3f}); "
                         f"lower it or give --target-bands")

    def name(i):
        return f"{wavelengths[i]:g} nm" if wavelengths is not None else f"band {i}"

    excluded = [i for i in range(b) if i not in keep]
    if excluded:
        _logger.warning("target bands: %s excluded (leave-one-band-out R2 < %g on %d training crops); they stay "
                        "encoder inputs", ", ".join(f"{name(i)} (R2 {r2[i]:.3f})" for i in excluded),
                        spec.target_r2_min, n)
    return keep, {"rule": f"leave-one-band-out R2 >= {spec.target_r2_min:g} on {n} training crops",
                  "r2": [round(v, 5) for v in r2], "excluded": excluded,
                  "excluded_nm": [float(wavelengths[i]) for i in excluded] if wavelengths is not None else None}


def _beta_plot(spec: PretrainSpec, objective: S3RObjective, crops: torch.Tensor, wavelengths, device,
               held_out: bool) -> Path:
    """beta^_b (masked input, as in training) against the closed-form beta~ for four target bands (Fig. 3)."""
    objective.eval()
    x = crops[:16].to(device)
    b = x.shape[1]
    pool = objective.target_bands.tolist() if objective.target_bands is not None else list(range(b))
    bands = sorted({pool[int(len(pool) * f)] for f in (0.2, 0.4, 0.6, 0.8)})
    hat, true = [], []
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed + 3)
        for band in bands:
            idx = torch.full((x.shape[0],), band, device=device)
            hat.append(objective.predict(x, idx, mask=True).mean(0).cpu().numpy())
            true.append(coefficient_targets(x, idx, objective.ridge).mean(0).cpu().numpy())
    where = "held-out" if held_out else "training"
    return beta_profiles(bands, np.stack(hat), Path(spec.out) / "beta_profile.png", beta_true=np.stack(true),
                         wavelengths=wavelengths,
                         title=f"{spec.model} S3R-{spec.objective.upper()}: beta^_b on {len(x)} {where} crops, masked")


class PretrainRun(RunTemplate):
    """S3R (or a baseline) pre-training as the run template's steps; the encoder is exported."""

    def __init__(self, spec: PretrainSpec):
        super().__init__(spec, Path(spec.out))
        self.stats_samples = spec.stats_samples
        self.recipe = {k: v for k, v in asdict(spec).items() if k not in NOT_RECIPE}

    def prepare(self):
        spec = self.spec
        full, self.wavelengths, self.data_desc = build_dataset(spec)
        if isinstance(full, CubeDataset):  # every file once, before the split (one band set across both parts)
            full.check_files()  # and the NaN/Inf policy, before any training
        ds, self.val_ds, self.held_out = split_train_val(full, spec.val_fraction, spec.crop, spec.seed,
                                                         spec.val_crops)
        for d in (ds, self.val_ds):
            if isinstance(d, CubeDataset):
                d.check_files(show_progress=False)  # each part keeps its files' band means for NaN repair
        # S3R's coefficient heads need the Gram matrices of the training crops (target bands, head prior)
        self.grams = crop_grams(ds, spec.stats_samples) if spec.objective in COEFFICIENT_OBJECTIVES else None
        self.targets, self.target_record = select_target_bands(spec, ds, self.wavelengths, self.grams)
        self.band_mean = mean_coefficients(self.grams[0], spec.ridge) if self.grams is not None else None
        self.train = ds
        return ds

    def config(self, train) -> TrainConfig:
        extra = {k: v for k, v in self.recipe.items() if k not in asdict(TrainConfig())}
        extra.update({k: resolved_source(extra[k]) for k in ("data", "init") if isinstance(extra.get(k), str)})
        if self.targets is not None:  # part of the fingerprint: a resume must draw from the same bands
            extra["resolved_target_bands"] = self.targets
        spec = self.spec
        return TrainConfig.from_spec(spec, gamma=spec.gamma, patience=spec.patience, min_delta=spec.min_delta,
                                     extra=extra)

    def validation(self, trainer: Trainer):
        self.crops = None
        if self.val_ds is None:
            return None
        self.crops = validation_crops(self.val_ds, self.spec.val_crops)
        return PretextValidation(self.crops, self.band_mean, seed=self.spec.seed + 2, batch_size=self.spec.batch_size,
                                 autocast=trainer.autocast, ridge=self.spec.ridge)

    def build(self, stats: BandStats) -> Objective:
        objective = make_pretrain_objective(self.spec, stats, self.targets)
        if self.band_mean is not None and uses_head_prior(self.spec):
            objective.start_from(self.band_mean)  # a resumed run then loads its trained state over it
        return objective

    def save_encoder(self, objective: Objective, path: Path, **extra) -> None:
        spec, subset = self.spec, self.spec.bands is not None  # a random band subset: no fixed bands or stats
        save_checkpoint(path, objective.exported().state_dict(), architecture=arch_of(spec.model),
                        objective=spec.objective + (f"_{spec.bands}bands" if subset else ""), data=self.data_desc,
                        recipe=self.recipe, wavelengths_nm=None if self.wavelengths is None or subset
                        else self.wavelengths.tolist(), mean=None if subset else self.stats.mean,
                        std=None if subset else self.stats.std, extra=extra)

    def epoch_end(self, trainer: Trainer, objective: Objective):
        every = self.spec.snapshot_every
        if not every:
            return None

        def snapshot(epoch: int, loss: float) -> None:  # before the epoch's state save: a resume never skips one
            if trainer.is_main and epoch % every == 0:
                self.save_encoder(objective, self.out / "snapshots" / f"epoch_{epoch}.safetensors", epoch=epoch,
                                  loss=loss)

        return snapshot

    def export(self, trainer: Trainer, objective: Objective, summary: dict) -> dict:
        spec, out, targets = self.spec, self.out, self.targets
        summary["validation"] = _validation_record(summary, self.held_out)
        device_name = (torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda"
                       else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                            f"{torch.get_num_threads()} threads")
        ckpt = out / "encoder.safetensors"
        self.save_encoder(objective, ckpt, final_loss=summary["final_loss"], best_loss=summary["best_loss"],
                          epochs=summary["epochs"], steps=summary["steps"], stop=summary["stop"],
                          wall_time_s=round(summary["wall_time_s"], 1), hardware=f"{trainer.device.type}: {device_name}",
                          torch=torch.__version__, validation=summary["validation"],
                          **({"target_bands": targets, "target_band_rule": self.target_record} if targets else {}))
        summary.update(checkpoint=str(ckpt), data=self.data_desc, recipe=self.recipe,
                       warnings=pretext_verdict(summary["validation"].get("metrics")))
        if targets is not None:
            summary.update(target_bands=targets, target_band_rule=self.target_record)
        if summary["history"]:
            summary["loss_curve_png"] = str(loss_curve(summary["history"], out / "loss_curve.png",
                                                       title=f"{spec.model} {spec.objective}: {self.data_desc}"))
        if isinstance(objective, S3RObjective):
            if any("cr_l1" in (h.get("val") or {}) for h in summary["history"]):
                summary["validation_curve_png"] = str(validation_curves(
                    summary["history"], out / "validation_curve.png",
                    title=f"{spec.model} S3R-{spec.objective.upper()}, held out: {summary['validation']['held_out']}"))
            crops = self.crops if self.crops is not None else torch.stack(
                [self.train[i][0] for i in range(min(16, len(self.train)))])
            summary["beta_profile_png"] = str(_beta_plot(spec, objective, crops, self.wavelengths, trainer.device,
                                                         held_out=self.val_ds is not None))
        write_json(out / "summary.json", summary)
        return summary


def run_pretrain(spec: PretrainSpec) -> dict:
    """Run (or resume) a pre-training and export the encoder; returns the summary."""
    return PretrainRun(check_spec(spec)).run()  # the checks of the command line, for library callers too


def _validation_record(summary: dict, held_out: str) -> dict:
    """What was held out, which epoch's weights are exported, and that epoch's held-out metrics."""
    if held_out == "none":
        return {"held_out": "none", "exported": "last epoch"}
    best = next((h for h in summary["history"] if h["epoch"] == summary.get("best_epoch")), None)
    return {"held_out": held_out, "exported": f"best validation epoch {summary.get('best_epoch')}",
            "best_epoch": summary.get("best_epoch"), "metrics": best.get("val") if best else None}


def format_summary(summary: dict) -> str:
    """The console report of a pre-training: budget used, which weights were exported, their held-out pretext
    metrics next to the baselines that need no encoder, and a warning where they are not better."""
    lines = [f"{summary['epochs']} epochs, {summary['steps']} steps ({summary['stop']}), {summary['wall_time_s']:.0f} s; "
             f"exported {summary['validation']['exported']} -> {summary['checkpoint']}"]
    m = summary["validation"].get("metrics") or {}
    if "cr_l1" in m:
        lines.append(f"held-out ({summary['validation']['held_out']}): CR L1 {m['cr_l1']:.3f} (zeros "
                     f"{m['cr_l1_zeros']:.3f}, band-mean {m['cr_l1_band_mean']:.3f}); BR unexplained variance "
                     f"{m['br_error']:.4f} (least-squares floor {m['br_error_closed_form']:.4f})")
    elif "loss" in m:
        lines.append(f"held-out ({summary['validation']['held_out']}): pretext loss {m['loss']:.4f}")
    else:
        lines.append(f"final training loss {summary['final_loss']:.4f}; nothing held out (--val-fraction 0)")
    lines += [f"WARNING: {w}" for w in summary.get("warnings", [])]
    return "\n".join(lines)
