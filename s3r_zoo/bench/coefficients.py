"""``s3r-zoo bench coefficients``: the paper's Fig. 3 on the real HIMS cube.

beta^_b predicted by an S3R-CR and an S3R-BR run (encoder + head, from the runs'
``state.safetensors``) for a few target bands b, next to the closed-form beta~, on unmasked
real HIMS tiles. The paper's claim: CR's beta^_b is Gaussian-like around b (neighbouring
bands matter most), BR's is not. Reported per band and method: L1 distance of beta^ to
beta~, the share of |beta^| within +-2 bands of b ("locality"), and the relative error of
reconstructing band b from the other bands with beta^ (beta~ gives the floor).

Runs default to the released recipes' output (``runs/weights/s3r_resnet18.{cr,br}_hims41``);
when absent, short CR/BR runs on the HIMS cube are made in the work folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..plots import beta_profiles
from ..pretrain import PretrainSpec, coefficient_targets, load_objective, run_pretrain
from .common import REPO_BENCHMARKS, display_path, environment, hims_cube_path, hims_tiles, write_result

TARGET_NM = (450.0, 550.0, 650.0)


def _ensure_run(mode: str, given: Optional[str], work: Path, quick: bool) -> Path:
    default = REPO_BENCHMARKS.parent / "runs" / "weights" / f"s3r_resnet18.{mode}_hims41"
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
                              synthetic_n=32, nan="inpaint", patience=10, resume=(out / "state.safetensors").exists()))
    return out


def _reconstruction_error(x: torch.Tensor, band: int, beta: torch.Tensor) -> float:
    """sum ||x_b - sum_k beta_k x_k||^2 / sum ||x_b - mean(x_b)||^2 over tiles (beta: (N, B))."""
    pix = x.double().flatten(2)  # (N, B, P)
    pred = torch.einsum("nb,nbp->np", beta.double(), pix)
    target = pix[:, band]
    return float(((target - pred) ** 2).sum() / ((target - target.mean(1, keepdim=True)) ** 2).sum())


def run(results_dir: Path, work: Path, quick: bool = False, cr_run: Optional[str] = None,
        br_run: Optional[str] = None) -> dict:
    runs = {m: _ensure_run(m, g, work, quick) for m, g in (("cr", cr_run), ("br", br_run))}
    objs = {m: load_objective(r) for m, r in runs.items()}
    crop = objs["cr"][1].crop
    x, source = hims_tiles(crop, 8 if quick else 32, seed=1)
    wl = objs["cr"][2].wavelengths_nm
    wl = np.asarray(wl) if wl is not None else np.arange(x.shape[1], dtype=float)
    bands = [int(np.argmin(np.abs(wl - nm))) for nm in TARGET_NM]
    hat = {m: [] for m in objs}
    true, rows = [], {}
    with torch.no_grad():
        for b in bands:
            idx = torch.full((x.shape[0],), b)
            t = coefficient_targets(x, idx, objs["cr"][0].ridge).float()
            true.append(t.mean(0).numpy())
            rows[f"{wl[b]:g}"] = {"closed form": {"reconstruction_error": _reconstruction_error(x, b, t)}}
            for m, (obj, _, _) in objs.items():
                p = obj.predict(x, idx, mask=False)
                hat[m].append(p.mean(0).numpy())
                a = p.abs().mean(0)
                near = a[max(0, b - 2):b + 3].sum() / a.sum().clamp_min(1e-12)
                rows[f"{wl[b]:g}"][f"S3R-{m.upper()}"] = {
                    "l1_to_closed_form": float((p - t).abs().sum(1).mean()),
                    "locality_pm2": float(near), "reconstruction_error": _reconstruction_error(x, b, p)}
    png = beta_profiles(bands, {f"S3R-{m.upper()}": np.stack(v) for m, v in hat.items()},
                        Path(results_dir) / "coefficients.png", beta_true=np.stack(true), wavelengths=wl,
                        title=f"beta^_b on {x.shape[0]} real HIMS tiles ({crop}px): CR vs BR vs closed form")
    payload = {"name": "coefficients", "data": source, "tiles": list(x.shape), "runs": {m: display_path(r) for m, r in runs.items()},
               "target_bands_nm": [float(wl[b]) for b in bands], "per_band": rows, "plot": png.name,
               "beta_hat_mean": {m: np.stack(v).tolist() for m, v in hat.items()}, "beta_tilde_mean": np.stack(true).tolist(),
               **environment(torch.device("cpu"))}
    write_result(results_dir, "coefficients", payload)
    return payload
