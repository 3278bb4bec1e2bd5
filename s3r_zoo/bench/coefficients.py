"""``s3r-zoo bench coefficients``: the paper's Fig. 3 on the real HIMS cube, on held-out crops.

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

from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..plots import beta_profiles
from ..pretrain import PretrainSpec, coefficient_targets, load_objective, run_pretrain
from ..pretrain.run import held_out_crops
from ..pretrain.validation import coefficient_metrics, summarize
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
