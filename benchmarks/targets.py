"""``python -m benchmarks targets``: do S3R's own targets carry each world's class? The pretext's ceiling.

The worlds benchmark's learning curves stay flat while the held-out pretext losses fall. An encoder that
predicted its pretext target perfectly would have to encode what the target encodes, and nothing more is asked
of it; so before asking why the encoders do not learn the class, this part asks whether the targets carry it
(parameters and prediction in NOTES.md, "What S3R's own targets carry about the class", written before it ran).
Nothing is trained. Per cube of each world:

- **S3R-CR's target**: the closed-form beta~ of every band from all the others
  (:func:`s3r_zoo.lowrank.loo_coefficients`, the training ridge) on the whole cube -- the worlds budget's
  pre-training crop is the whole cube, so these are the very targets S3R-CR regressed;
- **local S3R's map target**: beta~ on every patch of the stride of ``layer3``
  (:func:`s3r_zoo.pretrain.local.patch_coefficient_targets`), its mean and standard deviation over the patches.

Beside them, on the same cubes: the mean spectrum, random-init features and the cached world encoders trained on
these targets (global pool). Each row gets the worlds benchmark's linear probe (10 % and 100 % labels), paired
tests against random init and of each target against its encoder; on worlds that record their draws, the ridge
R^2 of each draw from each target (``bench latents``' read-out). Then why the encoders do not follow their targets
(NOTES.md, the two follow-ups): how much of the CR loss an image-blind predictor that knows the class removes
(:func:`pretext_reward`), and whether beta~'s departures from the band mean are a property of a crop's content or
of the very pixels sampled (:func:`split_half`; also on cubes simulated larger, :func:`split_half_by_size`).
``bench tissue`` adds the same targets, reward and split-half on the real tissue.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from s3r_zoo.data.synthetic import simulate_cube
from s3r_zoo.evaluate import compare_rows, paired_permutation_test, summarise_correct
from s3r_zoo.lowrank import gram, loo_coefficients, loo_r2
from s3r_zoo.pretrain import PretrainSpec
from s3r_zoo.pretrain.local import patch_pixels
from s3r_zoo.pretrain.targets import DEFAULT_RIDGE
from s3r_zoo.progress import progress

from .common import budget_record, environment, write_result
from .labels import Cubes, features, probe_runs
from .latents import ALPHAS, VARIABLES, read_draws, ridge_r2
from .worlds import ROW_LABELS, WorldBudget, cached_encoders, prepare

__all__ = ["TARGETS", "TRAINED_ON", "PATCH", "target_features", "target_bands", "split_half", "split_half_by_size",
           "pretext_reward", "run", "targets_section"]

TARGETS = {"target_cr": "S3R-CR's target (beta~ of the cube)",
           "target_map": "local S3R's map target (beta~ per 16-px patch: mean, std)"}
# the world encoders whose pretext regresses each target (local S3R regresses both: its loss keeps S3R-CR's)
TRAINED_ON = {"s3r_cr": "target_cr", "s3r_local": "target_map", "s3r_local_lr1e-3": "target_map"}
REWARD_LABELS = {"band_mean": "each band's mean beta~ (the baseline)",
                 "class_mean": "each class's mean beta~ (knows the label)",
                 "mean_spectrum": "ridge from the mean spectrum",
                 "draws_and_class": "ridge from every recorded draw and the class"}
R2_MIN = PretrainSpec().target_r2_min
SIZES = (40, 64, 128)  # split-half by crop size: the CPU worlds' 40 px up to the GPU budget's 128 px
PATCH = 16  # local S3R's patch: the stride of a ResNet's layer3


def _beta(pixels: torch.Tensor) -> np.ndarray:
    """Off-diagonal beta~ ``(..., B * (B - 1))`` of pixels ``(..., P, B)`` (training's ridge and Gram)."""
    b = pixels.shape[-1]
    beta = loo_coefficients(gram(pixels), DEFAULT_RIDGE)
    return beta[..., ~torch.eye(b, dtype=torch.bool)].numpy()


def target_features(x: np.ndarray, patch: int = PATCH, batch: int = 64) -> dict:
    """{"target_cr": ``(N, B(B-1))``, "target_map": ``(N, 2 B(B-1))``} of raw cubes ``x`` ``(N, B, H, W)``: the
    closed-form beta~ of the whole cube, and of each ``patch`` x ``patch`` tile (as local S3R's targets leave out
    the rows and columns past the last whole tile) summarised by its mean and standard deviation over the tiles."""
    n, b = x.shape[:2]
    cr, maps = [], []
    for i in range(0, n, batch):
        t = torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32))
        cr.append(_beta(t.reshape(len(t), b, -1).transpose(1, 2)))
        per = _beta(patch_pixels(t, patch))  # (m, tiles, B(B-1))
        maps.append(np.concatenate([per.mean(1), per.std(1)], axis=1))
    return {"target_cr": np.concatenate(cr), "target_map": np.concatenate(maps)}


def target_bands(x: np.ndarray) -> list[int]:
    """The bands S3R draws as b: pre-training's rule (leave-one-band-out R^2 >= ``--target-r2-min``), here on every
    pixel of the training cubes ``x`` ``(N, B, H, W)`` rather than on 64 crops."""
    b = x.shape[1]
    pix = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).transpose(0, 1).reshape(b, -1).T
    r2 = loo_r2(pix, center=True)
    return [i for i in range(b) if r2[i] >= R2_MIN]


def _cr_l1(pred: np.ndarray, true: np.ndarray, bands: int, rows: Sequence[int]) -> float:
    """The CR loss of predicted beta~ (``(N, B(B-1))`` off-diagonal rows): sum over i of |error| of band b's row,
    averaged over the target bands b (``rows``) and the cubes."""
    err = np.abs(np.broadcast_to(pred, true.shape) - true).reshape(len(true), bands, bands - 1)
    return float(err[:, list(rows)].sum(2).mean())


def _ridge_fit_predict(x: dict, t: dict, bands: int, rows: Sequence[int], alphas=ALPHAS) -> np.ndarray:
    """Test-split prediction of every coefficient (``t``: {split: (N, K)}) by one ridge regression from ``x``
    ({split: (N, D)}, standardised by the train split, with an intercept); the penalty is the one whose
    validation-split CR L1 is lowest."""
    mu, sd = x["train"].mean(0), x["train"].std(0) + 1e-8
    z = {s: (v - mu) / sd for s, v in x.items()}
    tm = t["train"].mean(0)
    gram_, rhs = z["train"].T @ z["train"], z["train"].T @ (t["train"] - tm)
    fits = {a: np.linalg.solve(gram_ + a * np.eye(len(gram_)), rhs) for a in alphas}
    best = min(alphas, key=lambda a: _cr_l1(z["val"] @ fits[a] + tm, t["val"], bands, rows))
    return z["test"] @ fits[best] + tm


def split_half(x: dict, rows: Sequence[int], batch: int = 64) -> dict:
    """Whether beta~'s departures from the band mean are a property of the cube's content or of the very pixels
    sampled (sensor noise, and which pixels: beta~ leans on the Gram matrix's smallest directions): beta~ of the two
    halves of a checkerboard of each cube's pixels (the same content, disjoint pixels). Returns the test
    split's CR L1 between the halves' beta~ (``between_halves``), between half B's beta~ and the train split's
    mean beta~ of half B (``band_mean``, the baseline at the same pixel count) and their ratio."""
    def halves(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, b, h, w = v.shape
        even = ((np.arange(h)[:, None] + np.arange(w)[None]) % 2 == 0).ravel()
        out = ([], [])
        for i in range(0, n, batch):
            pix = torch.from_numpy(np.ascontiguousarray(v[i:i + batch], dtype=np.float32)).reshape(-1, b, h * w)
            for k, keep in enumerate((even, ~even)):
                out[k].append(_beta(pix[:, :, torch.from_numpy(keep)].transpose(1, 2)))
        return np.concatenate(out[0]), np.concatenate(out[1])

    bands = x["train"].shape[1]
    _, train_b = halves(x["train"])
    test_a, test_b = halves(x["test"])
    between, base = _cr_l1(test_a, test_b, bands, rows), _cr_l1(train_b.mean(0)[None], test_b, bands, rows)
    return {"between_halves": between, "band_mean": base, "ratio": between / base}


def split_half_by_size(b: WorldBudget, world: str, sizes=SIZES) -> dict:
    """{size: :func:`split_half`} of 60 train and 60 test cubes (fewer for budgets of fewer cubes) of ``world``
    simulated at each size (the budget's preset, magnification and stain balance; seeds of their own): does beta~
    become a property of a cube's content as its crops grow?"""
    out, n = {}, min(60, b.n // 2)
    for size in sizes:
        x = {s: np.stack([np.asarray(simulate_cube(b.preset, i % 2, size, seed=first + i, difficulty=0.0,
                                                   magnification=b.magnification, stain_balance=1.0, cues=world).data,
                                     np.float32).transpose(2, 0, 1) for i in range(n)])
             for s, first in (("train", 10_000), ("test", 20_000))}
        out[str(size)] = split_half(x, target_bands(x["train"]))
    return out


def pretext_reward(t: dict, y: dict, bands: int, rows: Sequence[int], spectra: dict,
                   draws: Optional[dict] = None) -> dict:
    """{predictor: test CR L1} of predictors of beta~ (``t``: {split: (N, B(B-1))}) that never look at the image,
    fitted on the train split: the band-mean baseline, each class's mean (knows the label), a ridge from the
    cube's mean spectrum and, with ``draws`` ({split: (N, K)}), one from the recorded draws and the class."""
    classes = np.unique(y["train"])
    class_mean = {c: t["train"][y["train"] == c].mean(0) for c in classes}
    out = {"band_mean": _cr_l1(t["train"].mean(0)[None], t["test"], bands, rows),
           "class_mean": _cr_l1(np.stack([class_mean[c] for c in y["test"]]), t["test"], bands, rows),
           "mean_spectrum": _cr_l1(_ridge_fit_predict(spectra, t, bands, rows), t["test"], bands, rows)}
    if draws is not None:
        onehot = {s: (v[:, None] == classes[None]).astype(np.float64) for s, v in y.items()}
        x = {s: np.concatenate([draws[s], onehot[s]], axis=1) for s in draws}
        out["draws_and_class"] = _cr_l1(_ridge_fit_predict(x, t, bands, rows), t["test"], bands, rows)
    return out


def run(results_dir: Path, b: WorldBudget, work: Path, worlds_work: Path) -> dict:
    """Every world of the budget: the probe table of targets, encoders and references, and the draws' R^2."""
    payload = {"name": "targets", "budget": budget_record(b), "labels": {**ROW_LABELS, **TARGETS},
               "trained_on": TRAINED_ON, "patch": PATCH, "worlds": {}, **environment(torch.device("cpu"))}
    for world in progress(b.worlds, desc="targets: worlds", unit="world"):
        data = prepare(work / "data", world, b)  # the worlds part's cubes again, with their draws recorded
        cubes = Cubes(data)
        encoders = cached_encoders("targets", world, b, worlds_work, len(cubes.y["train"]),
                                   methods=[m for m in b.methods if m in TRAINED_ON])
        splits = {s: target_features(x) for s, x in cubes.x.items()}
        feats = {"mean_spectrum": {s: x.mean(axis=(2, 3)) for s, x in cubes.x.items()},
                 "random": features("random", b, cubes),
                 **{t: {s: splits[s][t] for s in splits} for t in TARGETS},
                 **{m: features(c, b, cubes) for m, c in encoders.items()}}
        w = payload["worlds"][world] = {"data": data.name, "probe": {}, "r2": {}}
        for name, x in feats.items():
            for f, correct in probe_runs(x, cubes, b).items():
                w["probe"].setdefault(f"{f:g}", {})[name] = summarise_correct(correct)
        for rows in w["probe"].values():
            compare_rows(rows, "random")
            for m, t in TRAINED_ON.items():
                if m in rows:
                    rows[m]["p_target_vs_encoder"] = paired_permutation_test(rows[t]["per_cube"], rows[m]["per_cube"])
        drawn = json.loads((data / "meta.json").read_text())["latents"]
        variables = [v for v in VARIABLES if all(v in d for d in drawn.values())]
        lat = read_draws(data, variables)
        for name in ("mean_spectrum", "random", *TARGETS):
            w["r2"][name] = {v: ridge_r2(feats[name], {s: lat[s][v] for s in lat})[0] for v in variables}
        # how much the CR loss pays for knowing the class (or the draws) rather than each band's average beta~
        rows = w["target_bands"] = target_bands(cubes.x["train"])
        drawn_x = {s: np.stack([lat[s][v] for v in variables], 1) for s in lat}
        w["cr_l1"] = pretext_reward(feats["target_cr"], cubes.y, cubes.x["train"].shape[1], rows,
                                    feats["mean_spectrum"], drawn_x)
        w["split_half"] = split_half(cubes.x, rows)
        w["split_half_by_size"] = split_half_by_size(b, world, [v for v in SIZES if v != b.size] or [b.size])
        write_result(results_dir, "targets", payload)
    return payload


def targets_section(p: dict) -> str:
    """RESULTS.md's section of ``targets.json``."""
    lines = ["## What S3R's targets carry about each world's class (`python -m benchmarks targets`)\n",
             "The closed-form targets S3R-CR and local S3R regress (beta~ of each cube; beta~ of each "
             f"{p['patch']}-px patch, mean and std over the patches), probed like the worlds benchmark's encoders, "
             f"beside them; accuracy % on the test cubes (10 %: mean of 3 label draws), p against random-init "
             f"features (paired sign-flip test), and for the encoders p of their target against them; {p['date']}.\n"]
    for world, w in p["worlds"].items():
        fr = sorted(w["probe"], key=float)
        lines += [f"### World {world}\n", "| features | " + " | ".join(f"probe {float(f):.0%}" for f in fr) +
                  " | target vs encoder (100 %) |", "|---" * (len(fr) + 2) + "|"]
        for name, r in w["probe"][fr[-1]].items():
            cells = [f"{w['probe'][f][name]['mean']:.1f}" + (f" (p {w['probe'][f][name]['p_vs_random']:.2g})"
                                                           if "p_vs_random" in w["probe"][f][name] else "")
                     for f in fr]
            vs = f"p {r['p_target_vs_encoder']:.2g}" if "p_target_vs_encoder" in r else ""
            lines.append(f"| {p['labels'].get(name, name)} | " + " | ".join(cells) + f" | {vs} |")
        if w["r2"]:
            variables = list(next(iter(w["r2"].values())))
            lines += ["", "R^2 of each cube's own draws (ridge, test cubes):\n",
                      "| features | " + " | ".join(variables) + " |", "|---" * (len(variables) + 1) + "|"]
            lines += [f"| {p['labels'].get(n, n)} | " + " | ".join(f"{r[v]:.2f}" for v in variables) + " |"
                      for n, r in w["r2"].items()]
        if w.get("cr_l1"):
            base = w["cr_l1"]["band_mean"]
            lines += ["", f"The CR loss (L1 of beta~_b, test cubes, the {len(w['target_bands'])} target bands b of the "
                      "R^2 rule) of predictors that never look at the "
                      "image, fitted on the train cubes, and how much of the band-mean baseline's each removes:\n",
                      "| predictor | CR L1 | below the band mean |", "|---|---|---|"]
            lines += [f"| {REWARD_LABELS.get(k, k)} | {v:.4f} | {100 * (1 - v / base):.1f} % |"
                      for k, v in w["cr_l1"].items()]
        if w.get("split_half"):
            h = w["split_half"]
            lines.append("\nSplit-half agreement (beta~ of the two halves of a checkerboard of each test cube's "
                         f"pixels): CR L1 between the halves {h['between_halves']:.4f}, between one half and the band "
                         f"mean {h['band_mean']:.4f}, ratio {h['ratio']:.2f} (near or above 1: beta~'s departures from "
                         "the band mean belong to the very pixels sampled, which a masked input hides; well below 1: a "
                         "property of the cube's content).")
        if w.get("split_half_by_size"):
            lines.append("\nThe same ratio on cubes simulated at other sizes (60 train and 60 test cubes each): " +
                         ", ".join(f"{k} px {v['ratio']:.2f}" for k, v in w["split_half_by_size"].items()) + ".")
        lines.append("")
    return "\n".join(lines)
