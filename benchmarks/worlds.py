"""``python -m benchmarks worlds``: when does pre-training help? Worlds with named class cues, room to learn.

Three simulated worlds of one preset (benchmarks/NOTES.md, "Worlds M, C and M+C", states their
parameters and calibration before any method was measured): **M** the class lives in morphology
(the powered benchmark's calibrated set), **C** in local chemistry (the oxygen saturation of red
cells, hidden from the cube's mean spectrum by diffuse haemoglobin of random amount and
saturation), **M+C** both. Per world, in this order:

1. calibration: the cube's mean spectrum and random-init features (linear probes); a ResNet-18
   fine-tuned from scratch (the step floor below) is the first row of step 4;
2. each method pre-trains on the train split, without labels, for a budget in OPTIMISER STEPS
   (not epochs), keeping snapshots: the learning curve is the probe (all training labels) of
   each snapshot against its step and wall time;
3. linear probes of the final encoder at each label fraction on the global-pool features and on
   ``layer3``'s pooled map (a probe that keeps more spatial detail);
4. fine-tuning at each label fraction with a floor of ``min_steps`` optimiser steps (10 % of 200
   training cubes is 20 cubes: 2 steps an epoch, so the floor, not the epoch count, decides), scratch
   first, after every method's learning curve (a run stopped by a time limit keeps the curves).

Paired sign-flip tests over test cubes: probes against random-init features, fine-tuning
against scratch. Results: ``worlds.json`` (rewritten after every row: an interrupted run keeps
what finished) and ``worlds_curves.png``.

``python -m benchmarks long_curves`` runs the same harness with the ``LONG_CURVES`` budgets: world C only,
the methods whose pretext loss had not flattened, three times the steps (``long_curves.json``,
``long_curves.png``; its own work folder, so the two budgets' cached runs never mix).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from s3r_zoo.data.simulated_sets import write_dataset
from s3r_zoo.evaluate import compare_rows, paired_permutation_test, summarise_correct
from s3r_zoo.plots import pyplot, save_figure
from s3r_zoo.progress import progress

from .common import budget_record, environment, run_device, write_result
from .labels import Cubes, features, finetune_correct, probe_runs
from .protocol import LABELS, Training, finetune, pretrain

__all__ = ["WorldBudget", "BUDGETS", "LONG_CURVES", "ROW_LABELS", "data_dir", "prepare", "pretrain_run",
           "cached_encoders", "run", "replot", "worlds_section"]


@dataclass(frozen=True)
class WorldBudget(Training):
    """The worlds benchmark's budget (written down before the first measurement: NOTES.md)."""

    preset: str = "pdac_like"
    n: int = 500
    size: int = 40
    magnification: float = 0.75
    split: tuple = (0.4, 0.2, 0.4)
    worlds: tuple = ("C", "M+C", "M")
    # in this order; local S3R at lr 1e-3 added 2026-12-03 before it ran on any world, S3R-BR and MHSIM 2026-12-04
    # before they ran, the two ridge 1e-3 recipes 2026-12-04 before they ran (NOTES.md)
    methods: tuple = ("s3r_local", "s3r_cr", "simsiam_all", "s3r_local_lr1e-3", "s3r_br", "mhsim", "s3r_cr_ridge1e-3",
                      "s3r_local_lr1e-3_ridge1e-3")
    steps: int = 2000            # pre-training optimiser steps per method
    snapshots: int = 5           # learning-curve points (probe of the encoder every steps / snapshots steps)
    crops_per_cube: int = 8      # 200 training cubes x 8 / batch 16 = 100 steps an epoch
    probe_fractions: tuple = (0.1, 1.0)
    finetune_fractions: tuple = (0.1, 1.0)
    finetune_methods: tuple = ("scratch", "s3r_cr", "s3r_local", "s3r_local_lr1e-3", "s3r_br", "mhsim",
                               "s3r_cr_ridge1e-3", "s3r_local_lr1e-3_ridge1e-3")
    finetune_epochs: int = 30
    min_steps: int = 300         # fine-tuning floor at every label fraction
    seeds: int = 3
    name: str = "worlds"         # the result: <results>/<name>.json, its plot and its RESULTS section


# every row's name in the tables: the methods', and the two calibration rows'
ROW_LABELS = {**LABELS, "mean_spectrum": "mean spectrum", "random": "random-init features"}

CPU = WorldBudget()
QUICK = WorldBudget(n=40, size=32, worlds=("C",), methods=("s3r_local",), steps=12, snapshots=2, crops_per_cube=2,
                    probe_fractions=(1.0,), finetune_fractions=(1.0,), finetune_methods=("scratch", "s3r_local"),
                    finetune_epochs=1, min_steps=4, seeds=2, batch_size=8)
# a lent GPU (benchmarks/cuda/worlds.sh): 128 px at magnification 1, 5,000 steps a method; not yet run
GPU = replace(CPU, n=1000, size=128, magnification=1.0, steps=5000, snapshots=10, batch_size=32, crops_per_cube=4,
              # not the ridge 1e-3 recipes: at 128 px beta~ is partly content at the default ridge (NOTES.md)
              methods=("s3r_local", "s3r_cr", "simsiam_all", "s3r_local_lr1e-3", "s3r_br", "mhsim"),
              finetune_methods=("scratch", "s3r_cr", "s3r_local", "s3r_local_lr1e-3"))
BUDGETS = {"quick": QUICK, "cpu": CPU, "gpu": GPU}
# ``python -m benchmarks long_curves``: room to learn on world C for the two methods whose held-out pretext loss
# still fell at the end of the cpu budget's 2,040 steps (NOTES.md, "Long learning curves"; fixed before they ran)
LONG_CURVES = {
    "quick": replace(QUICK, name="long_curves", methods=("s3r_cr",), finetune_methods=("scratch", "s3r_cr")),
    "cpu": replace(CPU, name="long_curves", worlds=("C",), methods=("s3r_cr", "s3r_local"), steps=6000,
                   snapshots=12, finetune_methods=("scratch", "s3r_cr", "s3r_local")),
    "gpu": replace(GPU, name="long_curves", worlds=("C",), methods=("s3r_cr", "s3r_local", "s3r_br", "mhsim"),
                   steps=20000, snapshots=20, finetune_methods=("scratch", "s3r_cr", "s3r_local")),
}


def plot_name(name: str) -> str:
    """The learning-curve PNG of a result, under results/ (the worlds part keeps its first name)."""
    return "worlds_curves.png" if name == "worlds" else f"{name}.png"


def data_dir(root: Path, world: str, b: WorldBudget) -> Path:
    """Where ``prepare`` keeps ``world``'s cubes of the budget under ``root``."""
    return root / f"{b.preset}_{world.replace('+', '')}_{b.n}x{b.size}_m{b.magnification:g}"


def prepare(root: Path, world: str, b: WorldBudget) -> Path:
    """``world``'s cubes of the budget under ``root``, simulated unless already there."""
    out = data_dir(root, world, b)
    if not (out / "meta.json").is_file():
        write_dataset(out, b.preset, n=b.n, size=b.size, seed=0, difficulty=0.0, dtype="float16",
                      magnification=b.magnification, stain_balance=1.0, split=b.split, cues=world)
    return out


def pretrain_epochs(b: WorldBudget, n_train: int) -> int:
    """Epochs that give ``b.steps`` optimiser steps (pre-training holds out 15 % of the train split's cubes for
    its pretext validation, --val-fraction)."""
    per_epoch = max(1, (n_train - round(0.15 * n_train)) * b.crops_per_cube // b.batch_size)
    return max(1, math.ceil(b.steps / per_epoch))


def pretrain_run(method: str, data: Path, b: WorldBudget, n_train: int, work: Path, amp: str = "auto",
                 cached_only: bool = False) -> Optional[dict]:
    """``method`` pre-trained on ``data`` for the budget's steps with its snapshots (cached under ``work``)."""
    epochs = pretrain_epochs(b, n_train)
    return pretrain(method, data, b.size, replace(b, pretrain_epochs=epochs, patience=epochs + 1), work / "pretrain",
                    amp=amp, snapshot_every=max(1, epochs // b.snapshots), cached_only=cached_only)


def cached_encoders(part: str, world: str, b: WorldBudget, work: Path, n_train: int,
                    methods: Optional[Sequence[str]] = None) -> dict:
    """{method: encoder checkpoint} of every method of the budget (or of ``methods``) already pre-trained on ``world``
    under ``work`` (the worlds part's folder), for the parts that read them; refuses, in one line, a method not run
    yet."""
    out = {}
    for m in b.methods if methods is None else methods:
        s = pretrain_run(m, data_dir(work / "data", world, b), b, n_train, work, cached_only=True)
        if s is None:
            raise ValueError(f"{part}: no cached world-{world} run of {m!r} under {work}; expected the worlds "
                             "benchmark's encoders: run `python -m benchmarks worlds` first")
        out[m] = s["checkpoint"]
    return out


def _curve(summary: dict, b: WorldBudget, cubes: Cubes) -> list:
    """[step, wall time s, probe accuracy % (all training labels), held-out pretext loss] of every snapshot."""
    one = replace(b, probe_fractions=(1.0,), seeds=1)
    steps_per_epoch = summary["steps"] / summary["epochs"]
    times = {h["epoch"]: h["time_s"] for h in summary["history"]}
    val = {h["epoch"]: (h.get("val") or {}).get("loss") for h in summary["history"]}
    snaps = Path(summary["checkpoint"]).parent / "snapshots"
    points = []
    for e in sorted(times):
        ckpt = snaps / f"epoch_{e}.safetensors"
        if ckpt.is_file():
            acc = 100 * float(np.mean(probe_runs(features(str(ckpt), b, cubes), cubes, one)[1.0][0]))
            points.append([round(e * steps_per_epoch), float(times[e]), acc, val[e]])
    return points


def run(results_dir: Path, b: WorldBudget, work: Path, amp: str = "auto") -> dict:
    """Every world of the budget, in order; see the module docstring."""
    payload = {"name": b.name, "budget": budget_record(b),
               "labels": dict(ROW_LABELS),
               "worlds": {}, "complete": False, **environment(run_device())}
    for world in b.worlds:
        data = prepare(work / "data", world, b)
        cubes = Cubes(data)
        epochs = pretrain_epochs(b, len(cubes.y["train"]))
        w = payload["worlds"][world] = {"data": str(data.name), "epochs": epochs, "probe": {}, "probe_layer3": {},
                                        "finetune": {}, "curves": {}, "pretrain": {}}

        def row(table: str, name: str, runs: dict, ref: str) -> None:
            for f, correct in runs.items():
                rows = w[table].setdefault(f"{f:g}", {})
                rows[name] = summarise_correct(correct)
                compare_rows(rows, ref)
            write_result(results_dir, b.name, payload)

        def tune(name: str, init: str) -> None:
            for f in b.finetune_fractions:
                agg = finetune(init, data, b.size, b, f, work / "finetune" / data.name / f"{name}_f{f:g}", amp=amp)
                row("finetune", name, {f: finetune_correct(agg)}, "scratch")

        row("probe", "mean_spectrum", probe_runs({s: x.mean(axis=(2, 3)) for s, x in cubes.x.items()}, cubes, b),
            "random")
        row("probe", "random", probe_runs(features("random", b, cubes), cubes, b), "random")
        row("probe_layer3", "random", probe_runs(features("random", b, cubes, layer3=True), cubes, b), "random")
        encoders = {}
        for method in progress(b.methods, desc=f"world {world}: pre-train + probe", unit="method"):
            s = pretrain_run(method, data, b, len(cubes.y["train"]), work, amp=amp)
            encoders[method] = s["checkpoint"]
            w["pretrain"][method] = {k: s[k] for k in ("epochs", "steps", "stop", "final_loss", "wall_time_s")}
            w["curves"][method] = _curve(s, b, cubes)
            row("probe", method, probe_runs(features(s["checkpoint"], b, cubes), cubes, b), "random")
            row("probe_layer3", method, probe_runs(features(s["checkpoint"], b, cubes, layer3=True), cubes, b),
                "random")
            _plot(payload, Path(results_dir) / plot_name(b.name))
        # fine-tuning after every learning curve: inside a time limit (a lent GPU) the curves come back first
        tuned = [m for m in b.finetune_methods if m == "scratch" or m in encoders]  # those pre-trained above
        for method in progress(tuned, desc=f"world {world}: fine-tune", unit="method"):
            tune(method, encoders.get(method, "scratch"))
    payload["complete"] = True
    write_result(results_dir, b.name, payload)
    return payload


def replot(results_dir: Path) -> None:
    """Redraw the learning-curve plots from ``worlds.json`` and ``long_curves.json`` (those present)."""
    for name in ("worlds", "long_curves"):
        path = Path(results_dir) / f"{name}.json"
        if path.is_file():
            _plot(json.loads(path.read_text()), Path(results_dir) / plot_name(name))


def _plot(p: dict, path: Path) -> None:
    """Probe accuracy of each method's snapshots against optimiser steps (top) and wall time (bottom)."""
    plt = pyplot()
    worlds = list(p["worlds"])
    fig, axes = plt.subplots(2, len(worlds), figsize=(4.6 * len(worlds) + 2.2, 7.4), squeeze=False)
    for col, world in enumerate(worlds):
        w = p["worlds"][world]
        for row, (x, xlabel) in enumerate(((0, "pre-training optimiser steps"),
                                           (1, f"pre-training wall time (min; {p.get('device', '?')})"))):
            ax = axes[row][col]
            for m, pts in w["curves"].items():
                if pts:
                    ax.plot([q[x] / (60 if x else 1) for q in pts], [q[2] for q in pts], marker="o",
                            label=p["labels"].get(m, m))
            for name, style in (("random", ":"), ("mean_spectrum", "--")):
                r = w["probe"].get("1", {}).get(name)
                if r:
                    ax.axhline(r["mean"], color="grey", linestyle=style, label=p["labels"][name])
            ax.set_title(f"world {world}", fontsize=10)
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("linear probe accuracy, all labels (%)")
    handles, names = [], []
    for ax in axes[0]:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles, names = handles + [h], names + [n]
    fig.legend(handles, names, fontsize=8, loc="center right")
    fig.tight_layout(rect=(0, 0, 1 - 2.0 / fig.get_figwidth(), 1))
    save_figure(fig, path)


def worlds_section(p: dict) -> str:
    """RESULTS.md's section of ``worlds.json`` or ``long_curves.json``."""
    b = p["budget"]
    name = p.get("name", "worlds")
    command = f"python -m benchmarks {name}"
    if name == "worlds":
        title = "Worlds M, C and M+C: where does pre-training help?"
    elif name == "long_curves":
        title = f"Long learning curves, world {' and '.join(p['worlds']) or '?'}: room to learn"
    else:  # a device run kept under its own name (results/cuda/)
        title, command = f"Worlds at the GPU budget on an {p.get('device', '?')}", p.get("command", command)
    lines = [f"## {title} (`{command}`)\n",
             f"{b['preset']}, {b['n']} cubes of {b['size']} px (magnification {b['magnification']}), split "
             f"{'/'.join(str(s) for s in b['split'])}; {b['model']}; pre-training {b['steps']} optimiser steps "
             f"per method; fine-tuning with a floor of {b['min_steps']} steps; {b['seeds']} seeds; {p['date']}"
             + ("" if p.get("complete") else " (incomplete: the rows that finished)") + ".\n"]
    labels = p["labels"]
    for world, w in p["worlds"].items():
        for table, ref, title in (("probe", "random", "linear probe, global pool"),
                                  ("probe_layer3", "random", "linear probe, layer3 pooled"),
                                  ("finetune", "scratch", "fine-tuning")):
            if not w[table]:
                continue
            fracs = sorted(w[table], key=float)
            lines += [f"**World {world}, {title}** (accuracy % mean +- std; p vs {labels.get(ref, ref)})\n",
                      "| method | " + " | ".join(f"{float(f):.0%} labels" for f in fracs) + " |",
                      "|---" * (len(fracs) + 1) + "|"]
            names = list(dict.fromkeys(n for f in fracs for n in w[table][f]))
            for n in names:
                cells = []
                for f in fracs:
                    r = w[table][f].get(n)
                    pv = f" (p {r['p_vs_' + ref]:.2g})" if r and f"p_vs_{ref}" in r else ""
                    cells.append(f"{r['mean']:.1f} +- {r['std']:.1f}{pv}" if r else "")
                lines.append(f"| {labels.get(n, n)} | " + " | ".join(cells) + " |")
            lines.append("")
        curves = {m: c for m, c in w.get("curves", {}).items() if c}
        if curves:
            lines += [f"**World {world}, learning curves** (linear probe, all labels, % at each snapshot's optimiser "
                      "step; held-out pretext loss of the last)\n", "| method | probe % at step | last pretext loss |",
                      "|---|---|---|"]
            for m, c in curves.items():
                loss = "" if c[-1][3] is None else f"{c[-1][3]:.3f}"
                lines.append(f"| {labels.get(m, m)} | " + ", ".join(f"{q[2]:.1f} @ {q[0]}" for q in c) + f" | {loss} |")
            lines.append("")
    lines += _pair_lines(p, *RELEASE_PAIR)
    if p.get("notes"):
        lines.append(p["notes"] + "\n")
    lines.append(f"Learning curves: `results/{plot_name(name)}`.\n")
    return "\n".join(lines)


# the v3 release rule compares a candidate recipe with the released v2 recipe on every row of every world
RELEASE_PAIR = ("s3r_local_lr1e-3", "s3r_cr")


def _pair_lines(p: dict, a: str, ref: str) -> list:
    """A table of ``a`` minus ``ref`` (points, paired sign-flip p over the same test cubes) on every row both have."""
    labels = p["labels"]
    out = []
    for world, w in p["worlds"].items():
        for table in ("probe", "probe_layer3", "finetune"):
            for f in sorted(w[table], key=float):
                rows = w[table][f]
                if a in rows and ref in rows:
                    d = rows[a]["mean"] - rows[ref]["mean"]
                    pv = paired_permutation_test(rows[a]["per_cube"], rows[ref]["per_cube"])
                    out.append(f"| {world} | {table.replace('_', ' ')} | {float(f):.0%} | {d:+.1f} | {pv:.2g} |")
    if not out:
        return []
    return [f"**{labels.get(a, a)} against {labels.get(ref, ref)}** (difference of the means in points; paired "
            "sign-flip test over the same test cubes)\n", "| world | table | labels | difference | p |",
            "|---|---|---|---|---|", *out, ""]
