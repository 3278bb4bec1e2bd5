"""``python -m benchmarks tissue``: a real-tissue probe on a region the encoders did not see.

The shared HIMS core (BL2082 M13) is split into its left half (pixel columns 0-319) and right
half (320-639). Encoders are pre-trained on the left half only (``benchmarks/tissue.sh``: S3R-CR,
S3R-BR, local S3R, SimSiam with all bands, MHSIM, and recipe variants; 1,504 optimiser steps each,
snapshots every 384); a linear
probe (``s3r_zoo.evaluate.fit_probe``) is fitted on the left half's tiles and tested on the right
half's: epithelium vs stroma, the labels of ``annotations/hims_bl2082_m13_tiles64.csv``, each
64-px tile cut into four 32-px tiles. Beside them: random-init features, the tile's mean spectrum,
the closed-form targets S3R-CR and local S3R regress (``bench targets``: what a perfect pretext solver
would have to know), and the released v2 encoders (pre-trained on the whole core, the test half included: marked).
Accuracy on the right half's tiles with a 95 % bootstrap CI over them, and paired sign-flip tests
against random init and against the best other row; the probe at each snapshot gives the learning
curve (``tissue.png``). Recipe variants are compared by the probe's cross-validated accuracy on the
left half (``left_cv``), so choosing one does not look at the test half. One core of one patient: this shows what features separate on an unseen
region of that core, not that they generalise.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from s3r_zoo.bands import normalize
from s3r_zoo.data import read_cube
from s3r_zoo.data.nan import apply_nan_policy
from s3r_zoo.data.stats import BandStats
from s3r_zoo.embed import checkpoint_stats, embed_cube, load_model
from s3r_zoo.evaluate import compare_rows, fit_probe, summarise_correct
from s3r_zoo.files import read_json
from s3r_zoo.plots import pyplot, save_figure

from .common import environment, hims_cube_path, write_result
from .targets import REWARD_LABELS, pretext_reward, split_half, target_bands, target_features

__all__ = ["run", "tissue_section", "LABELS", "SPLIT_COL"]

LABELS = Path(__file__).resolve().parent / "annotations" / "hims_bl2082_m13_tiles64.csv"
SPLIT_COL = 320  # pre-training and probe fitting: columns < 320; test: 320 <= column < 640
CLASSES = ("epithelium", "stroma")
TILE = 32
METHODS = {"cr": "S3R-CR", "br": "S3R-BR", "local": "local S3R", "simsiam": "SimSiam (all bands)", "mhsim": "MHSIM"}
TARGET_ROWS = {"target_cr": "S3R-CR's target (beta~ of the tile)",
               "target_map": "local S3R's map target (beta~ per 16-px patch: mean, std)"}
SPLIT_HALF_OF = {"tiles": "probe's 32-px tiles", "crops": "64-px grid tiles of every label (pre-training's crop size)"}
RELEASED = {"s3r_resnet18.cr_hims41_v2": "S3R-CR v2 (released; saw the whole core)",
            "s3r_resnet18.br_hims41_v2": "S3R-BR v2 (released; saw the whole core)"}


def tiles(labels: Path = LABELS) -> list[tuple[int, int, int]]:
    """``(top, left, class index)`` of the 32-px tiles inside the 64-px tiles labelled epithelium or stroma."""
    out = []
    with open(labels) as f:
        for r in csv.DictReader(f):
            if r["label"] in CLASSES:
                top, left = int(r["top"]), int(r["left"])
                out += [(top + dy, left + dx, CLASSES.index(r["label"])) for dy in (0, TILE) for dx in (0, TILE)]
    return out


def _features(init: str, cube, boxes: list, stats: Optional[BandStats], pixels: Optional[np.ndarray] = None):
    """Pooled features of the tiles ``boxes`` (``(N, D)``); with ``pixels`` (the same tiles, ``(N, B, H, W)``,
    NaN-repaired) also ``layer3``'s map averaged over positions: a probe that keeps more spatial detail."""
    torch.manual_seed(0)  # random init: the same random encoder on every run
    model, _ = load_model(init, "s3r_resnet18", cube.num_bands, cube.wavelengths)
    model.eval()
    stats = stats if init == "random" else checkpoint_stats(init, model)
    with torch.inference_mode():
        pooled = torch.cat(list(embed_cube(model, cube, boxes, stats, torch.device("cpu"), 64, "none",
                                           "band_mean"))).numpy()
        if pixels is None:
            return pooled
        x = normalize(torch.from_numpy(pixels), stats.mean, stats.std)
        return pooled, model.forward_intermediates(x, indices=[3], intermediates_only=True)[0].mean((2, 3)).numpy()


def _grid_crops(cube, path: str) -> dict:
    """Every 64-px tile of the annotation grid, whatever its label (glass and mixed tiles too: pre-training's crop
    size and content), NaN-repaired, ``(N, B, 64, 64)``: {"train": the left half's, "test": the right half's}."""
    with open(LABELS) as f:
        grid = [(int(r["top"]), int(r["left"]), int(r["size"])) for r in csv.DictReader(f)]
    cut = {"train": [g for g in grid if g[1] < SPLIT_COL],
           "test": [g for g in grid if SPLIT_COL <= g[1] < 2 * SPLIT_COL]}
    return {s: np.stack([apply_nan_policy(np.asarray(cube.data[t:t + n, c:c + n], np.float32), "band_mean", path)
                         .transpose(2, 0, 1) for t, c, n in v]) for s, v in cut.items()}


def _probe(x: np.ndarray, y: np.ndarray, train: np.ndarray) -> list[bool]:
    """Fit on the left half (every fifth training tile picks the L2 strength), correctness on the right half."""
    idx = np.flatnonzero(train)
    val = idx[::5]
    fit = np.setdiff1d(idx, val)
    probe = fit_probe(x[fit], y[fit], x[val], y[val], num_classes=len(CLASSES))
    test = ~train
    return list(probe.predict(x[test]) == y[test])


def _left_cv(x: np.ndarray, y: np.ndarray, train: np.ndarray, folds: int = 5) -> float:
    """Accuracy (%) of the probe by 5-fold cross-validation on the LEFT half only, folds of whole 64-px tiles
    (a tile's four sub-tiles stay together): what a recipe is chosen by, so the right half stays a test."""
    idx = np.flatnonzero(train)
    fold = (np.arange(len(idx)) // 4) % folds
    correct = []
    for k in range(folds):
        fit, held = idx[fold != k], idx[fold == k]
        probe = fit_probe(x[fit[fit % 5 != 0]], y[fit[fit % 5 != 0]], x[fit[fit % 5 == 0]], y[fit[fit % 5 == 0]],
                          num_classes=len(CLASSES))
        correct += list(probe.predict(x[held]) == y[held])
    return float(100 * np.mean(correct))


def _runs(work: Path) -> list:
    """``(run folder, row name)`` of every finished pre-training under ``work``: ``<objective>`` (the recipe of
    tissue.sh) or ``<objective>_<variant>`` (tissue.sh with EXTRA options and SUFFIX)."""
    out = []
    for d in sorted(p for p in work.glob("*") if (p / "encoder.safetensors").is_file()):
        key, _, variant = d.name.partition("_")
        if key in METHODS:
            out.append((d, METHODS[key] + (f" ({variant})" if variant else "")))
    return out


def run(results_dir: Path, work: Path) -> dict:
    """Probe every available encoder; writes ``tissue.json`` and ``tissue.png``."""
    path = hims_cube_path()
    if path is None:
        raise FileNotFoundError("tissue: the shared HIMS cube was not found (set S3R_ZOO_TEST_DATA)")
    cube = read_cube(path, nan="keep")
    t = tiles()
    boxes = [(top, left, TILE, TILE) for top, left, _ in t]
    y = np.array([c for _, _, c in t])
    train = np.array([left < SPLIT_COL for _, left, _ in t])
    left = apply_nan_policy(np.asarray(cube.data[:, :SPLIT_COL], np.float32), "band_mean", str(path))
    flat = left.reshape(-1, cube.num_bands).astype(np.float64)
    data_stats = BandStats(mean=tuple(flat.mean(0)), std=tuple(flat.std(0) + 1e-6), count=len(flat))
    pixels = np.stack([apply_nan_policy(np.asarray(cube.data[a:a + TILE, b:b + TILE], np.float32), "band_mean",
                                        str(path)).transpose(2, 0, 1) for a, b, _, _ in boxes])
    spectra = pixels.mean(axis=(2, 3))

    def row(x: np.ndarray, x3: Optional[np.ndarray] = None) -> dict:
        r = {**summarise_correct([_probe(x, y, train)]), "left_cv": _left_cv(x, y, train)}
        if x3 is not None:
            r["layer3"] = {**summarise_correct([_probe(x3, y, train)]), "left_cv": _left_cv(x3, y, train)}
        return r

    rows = {"mean spectrum": row(spectra), "random init": row(*_features("random", cube, boxes, data_stats, pixels))}
    # what S3R-CR and local S3R regress, computed on each tile in closed form: the pretext's ceiling (bench targets)
    targets = target_features(pixels)
    rows.update({TARGET_ROWS[t]: row(x) for t, x in targets.items()})
    # and how much the CR loss pays for knowing the tissue type (bench targets' image-blind predictors)
    held = np.flatnonzero(train)[::5]  # the probe's validation tiles
    split = {"train": np.setdiff1d(np.flatnonzero(train), held), "val": held, "test": np.flatnonzero(~train)}
    drawn = target_bands(left.transpose(2, 0, 1)[None])  # the bands S3R draws as b, on the pre-training half
    reward = pretext_reward({s: targets["target_cr"][i] for s, i in split.items()}, {s: y[i] for s, i in split.items()},
                            cube.num_bands, drawn, {s: spectra[i] for s, i in split.items()})
    halves = {"tiles": split_half({s: pixels[i] for s, i in split.items()}, drawn),
              "crops": split_half(_grid_crops(cube, str(path)), drawn)}
    curves = {}
    for run_dir, name in _runs(Path(work)):
        snaps = sorted((run_dir / "snapshots").glob("epoch_*.safetensors"), key=lambda p: int(p.stem.split("_")[1]))
        done = read_json(run_dir / "summary.json")
        per_epoch = done["steps"] / done["epochs"]
        curve = []
        for snap in snaps:
            correct = _probe(_features(str(snap), cube, boxes, data_stats), y, train)
            curve.append([round(int(snap.stem.split("_")[1]) * per_epoch), 100 * float(np.mean(correct))])
        rows[name] = row(*_features(str(run_dir / "encoder.safetensors"), cube, boxes, data_stats, pixels))
        rows[name]["steps"] = done["steps"]
        curves[name] = [q for q in curve if q[0] < done["steps"]] + [[done["steps"], rows[name]["mean"]]]
    for tag, name in RELEASED.items():
        try:
            rows[name] = row(*_features(tag, cube, boxes, data_stats, pixels))
        except (FileNotFoundError, ValueError, OSError):  # weights not in this checkout
            continue
    y_test = y[~train]
    for r in rows.values():  # the classes are unbalanced (majority share below): the mean per-class recall too
        c = np.asarray(r["per_cube"]) > 0.5
        r["balanced_accuracy"] = float(100 * np.mean([c[y_test == i].mean() for i in range(len(CLASSES))]))
    compare_rows(rows, "random init")
    compare_rows({k: r["layer3"] for k, r in rows.items() if "layer3" in r}, "random init")
    payload = {"name": "tissue", "tiles": {"size": TILE, "train": int(train.sum()), "test": int((~train).sum()),
                                           "test_per_class": {c: int(((~train) & (y == i)).sum())
                                                              for i, c in enumerate(CLASSES)},
                                           "majority_share": float(100 * max(np.mean(y[~train] == i)
                                                                             for i in range(len(CLASSES))))},
               "rows": rows, "curves": curves, "target_bands": drawn, "cr_l1": reward, "split_half": halves,
               "png": "tissue.png", **environment(torch.device("cpu"))}
    _plot(payload, Path(results_dir) / "tissue.png")
    write_result(results_dir, "tissue", payload)
    return payload


def _plot(p: dict, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.2, 4.2))
    colors = plt.get_cmap("tab20").colors  # more runs than the default cycle's 10 colours: none repeats
    for i, (name, curve) in enumerate(p["curves"].items()):
        steps, acc = zip(*curve)
        ax.plot(steps, acc, marker="os^D"[i % 4], color=colors[(2 * i) % 20 + (2 * i) // 20], label=name)
    lines = (("random init", "grey", ":"), ("mean spectrum", "grey", "--"),
             *((n, "black", s) for n, s in zip(TARGET_ROWS.values(), ("-.", (0, (1, 3))))))
    for name, color, style in lines:
        if name in p["rows"]:  # the targets' rows: results from before bench targets have none
            ax.axhline(p["rows"][name]["mean"], color=color, linestyle=style, label=name)
    ax.set_xlabel("pre-training steps (left half of the core)")
    ax.set_ylabel("probe accuracy on the right half (%)")
    ax.set_title(f"HIMS core, epithelium vs stroma: {p['tiles']['test']} test tiles of {p['tiles']['size']} px",
                 fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def tissue_section(p: dict) -> str:
    """RESULTS.md's section of ``tissue.json``."""
    t = p["tiles"]
    lines = ["## A real-tissue probe on an unseen region (`python -m benchmarks tissue`)\n",
             f"Shared HIMS core, epithelium vs stroma; encoders pre-trained on the left half (1,504 steps unless "
             f"the row says), linear "
             f"probe fitted on the left half's {t['train']} tiles and tested on the right half's {t['test']} "
             f"({', '.join(f'{v} {k}' for k, v in t['test_per_class'].items())}), {t['size']} px; "
             f"{p['date']}. One core of one patient: no claim of generalisation.\n",
             f"Always answering the majority class scores {t['majority_share']:.1f} %.\n",
             "Left-half CV: the probe's 5-fold cross-validated accuracy on the left half (the pre-training half), "
             "what a recipe is chosen by; the right half is the test.\n",
             "| features | accuracy % (95 % CI) | balanced accuracy % | p vs random init | best other (p) | left-half CV % "
             "| layer3 pooled: accuracy % (p vs random init's) |",
             "|---|---|---|---|---|---|---|"]
    for name, r in sorted(p["rows"].items(), key=lambda kv: -kv[1]["mean"]):
        pr = f"{r['p_vs_random init']:.3g}" if "p_vs_random init" in r else ""
        cv = f"{r['left_cv']:.1f}" if "left_cv" in r else ""
        l3 = r.get("layer3")
        l3 = (f"{l3['mean']:.1f}" + (f" ({l3['p_vs_random init']:.3g})" if "p_vs_random init" in l3 else "")) if l3 else ""
        lines.append(f"| {name} | {r['mean']:.1f} ({r['ci95'][0]:.1f}-{r['ci95'][1]:.1f}) | "
                     f"{r['balanced_accuracy']:.1f} | {pr} "
                     f"| {r.get('best_other', '')} ({r.get('p_vs_best_other', float('nan')):.3g}) "
                     f"| {cv} | {l3} |")
    if p.get("cr_l1"):
        base = p["cr_l1"]["band_mean"]
        lines += [f"\nThe CR loss (L1 of beta~_b of each test tile, the {len(p['target_bands'])} target bands b) of "
                  "predictors that never look at the image, fitted on the left half's tiles (`bench targets`), and "
                  "how much of the band-mean baseline's each removes:\n", "| predictor | CR L1 | below the band mean |", "|---|---|---|"]
        lines += [f"| {REWARD_LABELS.get(k, k).replace('class', 'tissue type')} | {v:.4f} | "
                  f"{100 * (1 - v / base):.1f} % |" for k, v in p["cr_l1"].items()]
    for what, h in p.get("split_half", {}).items():
        lines.append(f"\nSplit-half agreement on the {SPLIT_HALF_OF[what]} (beta~ of the two halves of a checkerboard "
                     f"of each one's pixels, right half): CR L1 between the halves {h['between_halves']:.4f}, between one "
                     f"half and the band mean {h['band_mean']:.4f}, ratio {h['ratio']:.2f} (near or above 1: the "
                     "departures from the band mean belong to the very pixels sampled).")
    lines.append(f"\nLearning curves: `results/{p['png']}`.\n")
    return "\n".join(lines)
