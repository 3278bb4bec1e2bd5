"""``python -m benchmarks twins``: do pre-trained encoders respond to world C's class cue? Counterfactual twins.

``bench latents`` showed that no frozen encoder's features carry world C's class (the red cells' oxygen
saturation) linearly, and that they carry no more of the nuisances instead. A read-out cannot tell *why*:
features that do not move when the cue moves, features that move in directions no linear probe can use, and
features that move consistently but less than cubes differ in everything else all give a probe at chance. An
intervention can (parameters and prediction in NOTES.md, "Counterfactual twins on world C", written before it
ran): each of world C's cubes is simulated again by its seed (and checked equal to the stored cube), and twice
more with one chemistry draw changed (``simulate_cube(..., chemistry=...)``; everything else stays):

- the **cue twin**: its red cells at the other class's SO2;
- the **nuisance twin**: its diffuse haemoglobin's SO2 moved by as much as the classes' SO2s differ.

Per encoder (random init, the worlds budget's world-C encoders from their cache, the cube's mean spectrum as a
reference), on features standardised by the train split as the linear probe standardises them: the response to
each twin (the feature distance moved, over the median distance between two test cubes), the cue's linear
separability d' along the mean cue direction (estimated on the train cubes' twins, measured on the test
cubes), and the consistency of the cue's direction across cubes. Paired sign-flip tests of every encoder's
per-cube responses against random init's.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.distance import pdist

from s3r_zoo.data import read_split_file
from s3r_zoo.data.synthetic import simulate_cube
from s3r_zoo.evaluate import paired_permutation_test
from s3r_zoo.progress import progress

from .common import budget_record, environment, write_result
from .labels import Cubes, features
from .worlds import ROW_LABELS, WorldBudget, cached_encoders, data_dir

__all__ = ["WORLD", "TWINS", "twin_split", "cue_metrics", "run", "twins_section"]

WORLD = "C"
TWINS = ("cue", "nuisance")
DEAD = 0.01  # features whose train-split spread is under this fraction of the median feature's are left out


def twin_split(data: Path, split: str, stored: np.ndarray) -> dict:
    """The twins of ``split``'s cubes: {"cue", "nuisance": (N, B, H, W) float32 (cast through the stored dtype, as
    the encoders saw the cubes), "so2_high": (N,) bool (the cube itself has the higher red-cell SO2)}. Each cube is
    simulated again by its seed and must equal ``stored`` (the split as :class:`Cubes` loaded it) bit for bit."""
    meta = json.loads((data / "meta.json").read_text())
    if meta.get("cues") not in ("C", "M+C") or len(meta.get("classes", ())) != 2:
        raise ValueError(f"{data / 'meta.json'}: expected a two-class world-C or M+C set, found cues "
                         f"{meta.get('cues')!r} and classes {meta.get('classes')}")
    kw = dict(difficulty=meta["difficulty"], magnification=meta["magnification"],
              stain_balance=meta["stain_balance"], cues=meta["cues"])
    so2_of = [simulate_cube(meta["preset"], k, 8, **kw).meta["latents"]["rbc_so2"] for k in range(2)]  # per class
    step = abs(so2_of[0] - so2_of[1])

    def seen(cube):  # as the encoders saw it: the stored dtype, channels first
        return np.asarray(cube.data.astype(meta["dtype"]), np.float32).transpose(2, 0, 1)

    items, classes = read_split_file(data / f"{split}.txt")
    out = {k: [] for k in TWINS}
    high = []
    for i, (path, label) in enumerate(progress(items, desc=f"twins of {split}", unit="cube")):
        label = meta["classes"].index(classes[label])  # the split file's class order -> the simulator's
        seed = meta["seed"] * 1_000_003 + int(Path(path).stem)  # write_dataset's seed of cube number <stem>
        cube = simulate_cube(meta["preset"], label, meta["size"], seed=seed, **kw)
        if not np.array_equal(seen(cube), stored[i]):
            raise ValueError(f"{path}: the simulator no longer reproduces this cube from its seed; expected the "
                             "stored cube bit for bit (write the set again)")
        d = cube.meta["latents"]["diffuse_so2"]
        out["cue"].append(seen(simulate_cube(meta["preset"], label, meta["size"], seed=seed, **kw,
                                             chemistry={"rbc_so2": so2_of[1 - label]})))
        out["nuisance"].append(seen(simulate_cube(meta["preset"], label, meta["size"], seed=seed, **kw,
                                                  chemistry={"diffuse_so2": d + step if d + step <= 1 else d - step})))
        high.append(so2_of[label] == max(so2_of))
    return {**{k: np.stack(v) for k, v in out.items()}, "so2_high": np.asarray(high)}


def cue_metrics(f: dict, high_train: np.ndarray, high_test: np.ndarray) -> dict:
    """Responses and the cue's separability from standardised features ``f`` ({"train", "train_cue", "test",
    "test_cue", "test_nuisance"}: (N, D)); ``high_*``: whether each cube itself has the higher SO2. Returns the
    mean and median responses, d', consistency and the per-test-cube responses (for the paired tests)."""
    t = f["test"]
    scale = float(np.median(pdist(t))) + 1e-12

    def oriented(x, twin, high):  # the change from the high-SO2 version to the low one
        return np.where(high[:, None], twin - x, x - twin)

    d_train = oriented(f["train"], f["train_cue"], high_train)
    d_test = oriented(t, f["test_cue"], high_test)
    u = d_train.mean(0)
    u = u / (np.linalg.norm(u) + 1e-12)
    spread = float(np.std(t @ u)) + 1e-12
    resp = {k: np.linalg.norm(f[f"test_{k}"] - t, axis=1) / scale for k in TWINS}
    return {"response": {k: float(np.mean(v)) for k, v in resp.items()},  # the paired tests compare means
            "response_median": {k: float(np.median(v)) for k, v in resp.items()},
            "d_prime": abs(float((d_test @ u).mean())) / spread,
            "consistency": float(np.linalg.norm(d_test.mean(0)) / (np.linalg.norm(d_test, axis=1).mean() + 1e-12)),
            "per_cube": {k: v.tolist() for k, v in resp.items()}}


def _standardised(raw: dict) -> dict:
    """Features standardised by the train split, as fit_probe standardises them, without the features that hardly
    vary on it (spread under ``DEAD`` of the median feature's: dead ReLU units, 25 of random init's 512 on world C;
    dividing by their ~0 spread turned single twins' responses into thousands of between-cube distances)."""
    mu, sd = raw["train"].mean(0), raw["train"].std(0)
    keep = sd > DEAD * np.median(sd)
    return {k: (v[:, keep] - mu[keep]) / sd[keep] for k, v in raw.items()}


def run(results_dir: Path, b: WorldBudget, worlds_work: Path) -> dict:
    """Every encoder's response to the twins of world C's cubes; see the module docstring."""
    data = data_dir(worlds_work / "data", WORLD, b)
    if not (data / "meta.json").is_file():
        raise ValueError(f"twins: no world-{WORLD} set under {worlds_work / 'data'}; expected the worlds benchmark's "
                         "data and encoders: run `python -m benchmarks worlds` first")
    cubes = Cubes(data)
    encoders = {"mean_spectrum": None, "random": "random",
                **cached_encoders("twins", WORLD, b, worlds_work, len(cubes.y["train"]))}
    tw = {s: twin_split(data, s, cubes.x[s]) for s in ("train", "test")}
    sets = copy.copy(cubes)
    sets.x = {"train": cubes.x["train"], "train_cue": tw["train"]["cue"], "test": cubes.x["test"],
              **{f"test_{k}": tw["test"][k] for k in TWINS}}
    payload = {"name": "twins", "world": WORLD, "twins": list(TWINS), "n_test": len(sets.x["test"]),
               "budget": budget_record(b), "rows": {}, **environment(torch.device("cpu"))}
    per_cube = {}
    for layer in ("pool", "layer3"):
        rows = payload["rows"][layer] = {}
        for e, init in encoders.items():
            if init is None and layer == "layer3":
                continue
            raw = ({k: v.mean(axis=(2, 3)) for k, v in sets.x.items()} if init is None
                   else features(init, b, sets, layer3=layer == "layer3"))
            m = cue_metrics(_standardised(raw), tw["train"]["so2_high"], tw["test"]["so2_high"])
            per_cube[layer, e] = m.pop("per_cube")
            if e not in ("random", "mean_spectrum"):
                m["p_vs_random"] = {k: paired_permutation_test(per_cube[layer, e][k], per_cube[layer, "random"][k])
                                    for k in TWINS}
            rows[e] = m
            write_result(results_dir, "twins", payload)
    return payload


def twins_section(p: dict) -> str:
    """RESULTS.md's section of ``twins.json``."""
    lines = [f"## Counterfactual twins on world {p['world']} (`python -m benchmarks twins`)\n",
             f"Per encoder, on its {p['n_test']} test cubes' features (standardised by the train split): the mean "
             "(median) response to the cue twin (red cells at the other class's SO2) and to the nuisance twin (diffuse "
             "haemoglobin's SO2 moved as much), in units of the median distance between two test cubes, with a paired "
             "sign-flip test of the per-cube responses against random init's; the cue's d' along its mean direction "
             f"(from the train cubes' twins) and the cue direction's consistency across cubes; {p['date']}.\n"]
    for layer, rows in p["rows"].items():
        lines += [f"**{'global pool' if layer == 'pool' else 'layer3 pooled'}**\n",
                  "| features | cue response | nuisance response | cue d' | consistency |", "|---|---|---|---|---|"]
        for e, r in rows.items():
            pv = r.get("p_vs_random", {})
            cells = [f"{r['response'][k]:.3f} ({r['response_median'][k]:.3f})" + (f", p {pv[k]:.2g}" if k in pv else "")
                     for k in p["twins"]]
            lines.append(f"| {ROW_LABELS.get(e, e)} | " + " | ".join(cells)
                         + f" | {r['d_prime']:.2f} | {r['consistency']:.2f} |")
        lines.append("")
    return "\n".join(lines)
