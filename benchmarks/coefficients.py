"""``python -m benchmarks coefficients``: the paper's Fig. 3 on the real HIMS cube, on held-out crops.

beta^_b predicted by an S3R-CR and an S3R-BR run (encoder + head, from the runs'
``state.safetensors``) for a few target bands b, on each run's HELD-OUT crops (the region
no training crop touched), masked exactly as in training with fixed masks, next to the
closed-form beta~. The paper's claim: CR's beta^_b is Gaussian-like around b (neighbouring
bands matter most), BR's is not. Reported per band and method, each beside its baselines
(:func:`s3r_zoo.pretrain.validation.coefficient_metrics`): the L1 distance of beta^ to
beta~ (zeros; the per-band mean beta~ of the training crops), the share of |beta^| within
+-2 bands of b (beta~'s own share), and the unexplained variance of band b rebuilt from the
other bands with beta^ (beta~, the least-squares floor; the per-band mean beta~).

Runs default to the released recipes' output (``runs/weights/s3r_resnet18.{cr,br}_hims41_v2``);
when absent, short CR/BR runs on the HIMS cube are made in the work folder.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from safetensors import safe_open

from s3r_zoo.data.stats import BandStats
from s3r_zoo.plots import beta_profiles
from s3r_zoo.pretrain import PretrainSpec, S3RObjective, coefficient_targets, run_pretrain
from s3r_zoo.pretrain.run import build_dataset, make_pretrain_objective
from s3r_zoo.pretrain.validation import (coefficient_metrics, crop_grams, mean_coefficients, split_train_val, summarize,
                                        validation_crops)
from s3r_zoo.train import Objective

from .common import REPO_BENCHMARKS, display_path, environment, hims_cube_path, write_result

TARGET_NM = (450.0, 550.0, 650.0)
MASK_SEED = 2  # the fixed masks of the measurement (added to each run's seed, as its validation does)


def _ensure_run(mode: str, given: Optional[str], work: Path, quick: bool) -> Path:
    default = REPO_BENCHMARKS.parent / "runs" / "weights" / f"s3r_resnet18.{mode}_hims41_v2"
    for cand in ([Path(given)] if given else []) + [default]:
        if (cand / "state.safetensors").is_file() and (cand / "summary.json").is_file():
            return cand
    if given:
        raise FileNotFoundError(f"--{mode}-run {given}: no finished pretrain run there (state.safetensors, "
                                f"summary.json)")
    cube = hims_cube_path()
    out = work / f"coefficients_{mode}"
    run_pretrain(PretrainSpec(data=str(cube) if cube else "synthetic:pdac_like", out=str(out), objective=mode,
                              epochs=2 if quick else 10, batch_size=8, crop=64, crops_per_cube=32 if quick else 128,
                              synthetic_n=32, nan="inpaint", patience=10, val_crops=8 if quick else 32,
                              resume=(out / "state.safetensors").exists()))
    return out


def _data_here(spec: PretrainSpec) -> PretrainSpec:
    """The run's spec with its data found on this machine (a run made elsewhere names another path)."""
    if spec.data.startswith("synthetic:") or Path(spec.data).exists():
        return spec
    cube = hims_cube_path()
    if cube is not None and Path(spec.data).name == cube.name:
        return replace(spec, data=str(cube))
    raise FileNotFoundError(f"{spec.out}: its data {Path(spec.data).name} is not here; set $S3R_ZOO_TEST_DATA")


def _measure(objective, x: torch.Tensor, band: int, seed: int, baseline: torch.Tensor, batch: int):
    """Metrics (one number each) and mean beta^ of ``objective`` for target ``band`` on crops ``x``."""
    idx = torch.full((x.shape[0],), band)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        beta = torch.cat([objective.predict(x[i:i + batch], idx[i:i + batch], mask=True)
                          for i in range(0, len(x), batch)])
    return summarize(coefficient_metrics(x, idx, beta, objective.ridge, baseline)), beta.mean(0).numpy()


def run(results_dir: Path, work: Path, quick: bool = False, cr_run: Optional[str] = None,
        br_run: Optional[str] = None) -> dict:
    runs = {m: _ensure_run(m, g, work, quick) for m, g in (("cr", cr_run), ("br", br_run))}
    loaded = {}
    for m, r in runs.items():
        obj, spec, stats = load_objective(r)
        crops, baseline, held_out = held_out_crops(_data_here(spec))
        loaded[m] = (obj, spec, crops, baseline, held_out)
        if m == "cr":
            wl_nm = stats.wavelengths_nm
    obj_cr, spec_cr, crops_cr = loaded["cr"][:3]
    wl = np.asarray(wl_nm, dtype=float) if wl_nm is not None else np.arange(crops_cr.shape[1], dtype=float)
    pool = obj_cr.target_bands.tolist() if obj_cr.target_bands is not None else list(range(crops_cr.shape[1]))
    bands = sorted({min(pool, key=lambda i: abs(wl[i] - nm)) for nm in TARGET_NM})
    hat = {m: [] for m in loaded}
    true, rows = [], {}
    for b in bands:
        row = rows.setdefault(f"{wl[b]:g}", {})
        for m, (obj, spec, crops, baseline, _) in loaded.items():
            metrics, mean_beta = _measure(obj, crops, b, spec.seed + MASK_SEED, baseline, spec.batch_size)
            row[f"S3R-{m.upper()}"] = metrics
            hat[m].append(mean_beta)
        idx = torch.full((crops_cr.shape[0],), b)
        true.append(coefficient_targets(crops_cr, idx, obj_cr.ridge).mean(0).float().numpy())
    n = crops_cr.shape[0]
    png = beta_profiles(bands, {f"S3R-{m.upper()}": np.stack(v) for m, v in hat.items()},
                        Path(results_dir) / "coefficients.png", beta_true=np.stack(true), wavelengths=wl,
                        title=f"beta^_b, mean of {n} held-out {spec_cr.crop}px crops, masked as in training")
    payload = {"name": "coefficients", "data": Path(spec_cr.data).name if not spec_cr.data.startswith("synthetic:")
               else spec_cr.data, "held_out": {m: v[4] for m, v in loaded.items()}, "tiles": list(crops_cr.shape),
               "masked": True, "runs": {m: display_path(r) for m, r in runs.items()},
               "target_bands_nm": [float(wl[b]) for b in bands], "per_band": rows, "plot": png.name,
               "beta_hat_mean": {m: np.stack(v).tolist() for m, v in hat.items()},
               "beta_tilde_mean": np.stack(true).tolist(), **environment(torch.device("cpu"))}
    write_result(results_dir, "coefficients", payload)
    return payload


def held_out_crops(spec: PretrainSpec) -> tuple[torch.Tensor, torch.Tensor, str]:
    """A run's fixed held-out crops, its per-band-mean beta~ baseline and what was held out,
    rebuilt from its spec as :func:`run_pretrain` built them (for analysis after the run)."""
    full, _, _ = build_dataset(spec)
    ds, val, held_out = split_train_val(full, spec.val_fraction, spec.crop, spec.seed, spec.val_crops)
    if val is None:
        raise ValueError(f"{spec.out}: this run held nothing out (--val-fraction 0); no held-out crops to measure on")
    return (validation_crops(val, spec.val_crops), mean_coefficients(crop_grams(ds, spec.stats_samples)[0], spec.ridge),
            held_out)


def load_objective(run_dir) -> tuple[Objective, PretrainSpec, BandStats]:
    """The full pre-training objective of a finished run (encoder AND head), for analysis.

    Released checkpoints hold the encoder only; the beta^ head of S3R lives in the run's
    ``state.safetensors``. Rebuilds the objective from ``summary.json``'s recipe and
    ``stats.json``, then loads the saved weights.
    """
    run = Path(run_dir)
    missing = [f for f in ("summary.json", "stats.json", "state.safetensors") if not (run / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{run}: expected a finished `s3r-zoo pretrain` folder; missing {missing}")
    summary = json.loads((run / "summary.json").read_text())
    recipe = summary["recipe"]
    spec = PretrainSpec(**{k: v for k, v in recipe.items() if k in PretrainSpec.__dataclass_fields__}, out=str(run))
    stats = BandStats.load(run / "stats.json")
    objective = make_pretrain_objective(spec, stats, summary.get("target_bands"))
    with safe_open(str(run / "state.safetensors"), framework="pt") as f:
        sd = {k[6:]: f.get_tensor(k) for k in f.keys() if k.startswith("model.")}
    if isinstance(objective, S3RObjective) and "beta_prior" not in sd:
        sd["beta_prior"] = objective.beta_prior  # a run from before the head prior: a zero prior
    objective.load_state_dict(sd)
    return objective.eval(), spec, stats
