"""``python -m benchmarks latents``: what do frozen features encode on world C?

The worlds benchmark found that no frozen encoder's features let a linear probe read world C's class (the
oxygen saturation of a few red cells per cube), and NOTES.md offers a reading: the pretext targets are
dominated by nuisances that vary from cube to cube (diffuse haemoglobin, stain strengths), so the encoders
learn those. This part tests it (parameters and prediction in NOTES.md, "What frozen features encode on world
C", written before it ran): each simulated cube records its own draws (``Cube.meta["latents"]``); a ridge
regression from each encoder's frozen global-pool features predicts each draw, and its R^2 on the test cubes
says how much of that variable the features carry linearly.

The encoders are the worlds budget's, loaded from its cache (``python -m benchmarks worlds`` first); the
cubes are world C's, written again with their draws into this part's own folder (the same cubes, bit for
bit: the draws are recorded, not re-drawn).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from s3r_zoo.data import read_split_file
from s3r_zoo.evaluate import paired_permutation_test

from .common import budget_record, environment, write_result
from .labels import Cubes, features
from .worlds import ROW_LABELS, WorldBudget, cached_encoders, prepare

__all__ = ["VARIABLES", "ALPHAS", "ridge_r2", "read_draws", "run", "latents_section"]

# the class cue first, then the nuisances
VARIABLES = ("rbc_so2", "diffuse_hb", "diffuse_so2", "stain_h", "stain_e", "illumination_tilt")
ALPHAS = tuple(10.0 ** k for k in range(-3, 5))
WORLD = "C"


def ridge_r2(x: dict, y: dict, alphas=ALPHAS) -> tuple[float, float, np.ndarray]:
    """Ridge regression of ``y`` on ``x`` ({split: array}): features standardised by the train split, the
    penalty chosen by the validation split's squared error, fitted on train. Returns (test R^2, chosen
    penalty, per-test-cube squared errors)."""
    mu, sd = x["train"].mean(0), x["train"].std(0) + 1e-8
    z = {s: (v - mu) / sd for s, v in x.items()}
    ym = y["train"].mean()
    gram, rhs = z["train"].T @ z["train"], z["train"].T @ (y["train"] - ym)
    eye = np.eye(gram.shape[0])
    fits = {a: np.linalg.solve(gram + a * eye, rhs) for a in alphas}
    best = min(alphas, key=lambda a: float(np.mean((z["val"] @ fits[a] + ym - y["val"]) ** 2)))
    err = (z["test"] @ fits[best] + ym - y["test"]) ** 2
    r2 = 1.0 - err.sum() / ((y["test"] - y["test"].mean()) ** 2).sum()
    return float(r2), float(best), err


def read_draws(data: Path, variables=VARIABLES) -> dict:
    """{split: {variable: (N,) array}} of the cubes' recorded draws, in each split file's order."""
    drawn = json.loads((data / "meta.json").read_text()).get("latents")
    if not drawn:
        raise ValueError(f"{data / 'meta.json'}: expected the cubes' draws under 'latents', found none "
                         "(a set written before they were recorded: delete the folder to write it again)")
    out = {}
    for s in ("train", "val", "test"):
        items, _ = read_split_file(data / f"{s}.txt")
        rel = [Path(p).resolve().relative_to(data.resolve()).as_posix() for p, _ in items]
        out[s] = {v: np.asarray([drawn[r][v] for r in rel], np.float64) for v in variables}
    return out


def run(results_dir: Path, b: WorldBudget, work: Path, worlds_work: Path) -> dict:
    """R^2 of every variable from every encoder's features (and the mean spectrum) on world C's test cubes."""
    data = prepare(work / "data", WORLD, b)
    cubes = Cubes(data)
    lat = read_draws(data)
    # then the encoders the worlds part pre-trained on the same cubes (its own copy, written before draws were kept)
    encoders = {"mean_spectrum": None, "random": None,
                **cached_encoders("latents", WORLD, b, worlds_work, len(cubes.y["train"]))}
    payload = {"name": "latents", "world": WORLD, "variables": list(VARIABLES), "alphas": list(ALPHAS),
               "budget": budget_record(b),
               "rows": {}, **environment(torch.device("cpu"))}
    errors = {}
    for e, ckpt in encoders.items():
        x = ({s: v.mean(axis=(2, 3)) for s, v in cubes.x.items()} if e == "mean_spectrum"
             else features("random" if e == "random" else ckpt, b, cubes))
        row = payload["rows"][e] = {}
        for v in VARIABLES:
            r2, alpha, errors[e, v] = ridge_r2(x, {s: lat[s][v] for s in lat})
            row[v] = {"r2": r2, "alpha": alpha}
            if e != "random" and ("random", v) in errors:
                row[v]["p_vs_random"] = paired_permutation_test(errors[e, v], errors["random", v])
        write_result(results_dir, "latents", payload)
    return payload


def latents_section(p: dict) -> str:
    """RESULTS.md's section of ``latents.json``."""
    lines = [f"## What frozen features encode on world {p['world']} (`python -m benchmarks latents`)\n",
             f"R^2 on {p['budget']['n']} cubes' test split of a ridge regression (penalty by the validation split) from "
             "each encoder's frozen global-pool features to each cube's own simulated draw; (p) a paired sign-flip "
             f"test of the per-cube squared errors against random-init features; {p['date']}.\n",
             "| features | " + " | ".join(p["variables"]) + " |", "|---" * (len(p["variables"]) + 1) + "|"]
    for e, row in p["rows"].items():
        cells = [f"{row[v]['r2']:.2f}" + (f" (p {row[v]['p_vs_random']:.2g})" if "p_vs_random" in row[v] else "")
                 for v in p["variables"]]
        lines.append(f"| {ROW_LABELS.get(e, e)} | " + " | ".join(cells) + " |")
    lines.append("\n`rbc_so2` is the red cells' oxygen saturation (the class cue); the others are nuisances drawn per "
                 "cube independently of the class (benchmarks/NOTES.md).\n")
    return "\n".join(lines)
