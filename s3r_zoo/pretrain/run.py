"""``s3r-zoo pretrain``: data -> band stats -> objective -> trainer -> export + plots.

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
from ..data.stats import BandStats, compute_band_stats
from ..data.synthetic import PRESETS, SyntheticHSI
from ..files import write_json
from ..models import arch_of, build_encoder
from ..lowrank import loo_r2
from ..options import check_spec
from ..plots import beta_profiles, loss_curve, validation_curves
from ..train import Objective, TrainConfig, Trainer, seed_everything
from .objectives import S3RObjective
from .registry import COEFFICIENT_OBJECTIVES, TARGETED, make_objective
from .spec import NOT_RECIPE, PretrainSpec, uses_head_prior
from .targets import coefficient_targets
from .validation import PretextValidation, crop_grams, mean_coefficients, split_train_val, validation_crops

__all__ = ["run_pretrain", "build_dataset", "make_pretrain_objective", "select_target_bands"]

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


def _stats(spec: PretrainSpec, ds, wavelengths) -> BandStats:
    path = Path(spec.out) / "stats.json"
    if spec.resume and path.exists():
        stats = BandStats.load(path)
        if len(stats.mean) != ds[0][0].shape[0]:
            raise ValueError(f"{path}: band stats of {len(stats.mean)} bands, but --data has {ds[0][0].shape[0]}; "
                             f"this --out folder belongs to other data")
        return stats
    n = min(len(ds), spec.stats_samples)
    stats = compute_band_stats((ds[i] for i in range(n)), num_bands=ds[0][0].shape[0], wavelengths=wavelengths,
                               total=n, desc="band stats")
    stats.save(path)
    return stats


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


def run_pretrain(spec: PretrainSpec) -> dict:
    """Run (or resume) a pre-training and export the encoder; returns the summary."""
    spec = check_spec(spec)  # the checks of the command line, for library callers too
    out = Path(spec.out)
    full, wavelengths, data_desc = build_dataset(spec)
    ds, val_ds, held_out = split_train_val(full, spec.val_fraction, spec.crop, spec.seed, spec.val_crops)
    for d in (ds, val_ds):
        if isinstance(d, CubeDataset):
            d.check_files()  # NaN/Inf policy against every file once, before any training
    recipe = {k: v for k, v in asdict(spec).items() if k not in NOT_RECIPE}
    grams = crop_grams(ds, spec.stats_samples) if spec.objective in COEFFICIENT_OBJECTIVES else None
    targets, target_record = select_target_bands(spec, ds, wavelengths, grams)
    extra = {k: v for k, v in recipe.items() if k not in asdict(TrainConfig())}
    if targets is not None:  # part of the fingerprint: a resume must draw from the same bands
        extra["resolved_target_bands"] = targets
    cfg = TrainConfig.from_spec(spec, extra=extra)
    trainer = Trainer(cfg, out)
    trainer.preflight(spec.resume)  # a refused run writes nothing, not even stats.json
    stats = _stats(spec, ds, wavelengths)
    validate, crops = None, None
    band_mean = mean_coefficients(grams[0], spec.ridge) if grams is not None else None
    if val_ds is not None:
        crops = validation_crops(val_ds, spec.val_crops)
        validate = PretextValidation(crops, band_mean, seed=spec.seed + 2, batch_size=spec.batch_size,
                                     autocast=trainer.autocast, ridge=spec.ridge)
    seed_everything(spec.seed)  # the seed fixes the initial weights too: build the models after it
    objective = make_pretrain_objective(spec, stats, targets)
    if band_mean is not None and uses_head_prior(spec):
        objective.start_from(band_mean)  # a resumed run then loads its trained state over it
    subset = spec.bands is not None  # random bands per sample: no fixed wavelengths or per-band stats

    def save_encoder(path: Path, **extra) -> None:
        save_checkpoint(path, objective.exported().state_dict(), architecture=arch_of(spec.model),
                        objective=spec.objective + (f"_{spec.bands}bands" if subset else ""), data=data_desc,
                        recipe=recipe, wavelengths_nm=None if wavelengths is None or subset else wavelengths.tolist(),
                        mean=None if subset else stats.mean, std=None if subset else stats.std, extra=extra)

    def snapshot(epoch: int, loss: float) -> None:  # before the epoch's state save: a resume never skips one
        if trainer.is_main and epoch % spec.snapshot_every == 0:
            save_encoder(out / "snapshots" / f"epoch_{epoch}.safetensors", epoch=epoch, loss=loss)

    summary = trainer.fit(objective, ds, resume=spec.resume, validate=validate,
                          on_epoch_end=snapshot if spec.snapshot_every else None)
    best = trainer.best_weights()
    if best is not None:  # export the weights of the best validation epoch, not the last
        objective.load_state_dict(best)
    summary["validation"] = _validation_record(summary, held_out)
    if not trainer.is_main:
        return summary
    device_name = (torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda"
                   else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                        f"{torch.get_num_threads()} threads")
    ckpt = out / "encoder.safetensors"
    save_encoder(ckpt, final_loss=summary["final_loss"], best_loss=summary["best_loss"], epochs=summary["epochs"],
                 steps=summary["steps"], stop=summary["stop"], wall_time_s=round(summary["wall_time_s"], 1),
                 hardware=f"{trainer.device.type}: {device_name}", torch=torch.__version__,
                 validation=summary["validation"],
                 **({"target_bands": targets, "target_band_rule": target_record} if targets else {}))
    summary.update(checkpoint=str(ckpt), data=data_desc, recipe=recipe)
    if targets is not None:
        summary.update(target_bands=targets, target_band_rule=target_record)
    if summary["history"]:
        summary["loss_curve_png"] = str(loss_curve(summary["history"], out / "loss_curve.png",
                                                   title=f"{spec.model} {spec.objective}: {data_desc}"))
    if isinstance(objective, S3RObjective) and any("cr_l1" in (h.get("val") or {}) for h in summary["history"]):
        summary["validation_curve_png"] = str(validation_curves(
            summary["history"], out / "validation_curve.png",
            title=f"{spec.model} S3R-{spec.objective.upper()}, held out: {summary['validation']['held_out']}"))
    if isinstance(objective, S3RObjective):
        if crops is None:
            crops = torch.stack([ds[i][0] for i in range(min(16, len(ds)))])
        summary["beta_profile_png"] = str(_beta_plot(spec, objective, crops, wavelengths, trainer.device,
                                                     held_out=val_ds is not None))
    write_json(out / "summary.json", summary)
    return summary


def _validation_record(summary: dict, held_out: str) -> dict:
    """What was held out, which epoch's weights are exported, and that epoch's held-out metrics."""
    if held_out == "none":
        return {"held_out": "none", "exported": "last epoch"}
    best = next((h for h in summary["history"] if h["epoch"] == summary.get("best_epoch")), None)
    return {"held_out": held_out, "exported": f"best validation epoch {summary.get('best_epoch')}",
            "best_epoch": summary.get("best_epoch"), "metrics": best.get("val") if best else None}
