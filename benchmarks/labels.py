"""``python -m benchmarks labels``: the powered label-efficiency benchmark.

Protocol (benchmarks/NOTES.md, "Powered protocol"):

* one labelled simulated set per preset, split 40 / 20 / 40 % (train / val / test: a test
  split of at least 200 cubes), calibrated so that morphology carries the class
  (``stain_balance`` 1, ``magnification`` < 1 so a small tile holds whole glands), plus an
  unlabelled pool of other cubes of the same preset for the "pool" pre-training setting;
* every method pre-trains on the labelled train split without labels ("train", the paper's
  setting) and the convergence methods also on the pool ("pool", the setting users live in);
* linear probe (frozen pooled features, L2 picked on the validation split) at each label
  fraction and seed, for every method, beside two spectral-only baselines (the cube's mean
  spectrum, and a per-pixel spectral classifier averaged over the cube) and random-init
  features; full fine-tuning at the fine-tuning fractions for the fine-tuning rows, and for the
  larger model's rows (ResNet-50: scratch, S3R-CR, S3R-BR, SimSiam; pre-trained and fine-tuned
  with the same budget);
* the same training subsets and seeds for every method (paired): per method mean +- std
  over seeds, a 95 % bootstrap interval over test cubes (each cube scored by its share of
  correct seeds), and a paired sign-flip test over test cubes against random-init features
  (probe) or scratch (fine-tuning) and against the best other row.

Results: ``labels.json`` (numbers, command, versions, machine, date; rewritten after each
row, so an interrupted run keeps its finished rows) and ``labels_<preset>.png``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
import numpy as np
import torch

from s3r_zoo.bands import normalize
from s3r_zoo.data import read_cube
from s3r_zoo.data.datasets import read_split_file
from s3r_zoo.data.synthetic import PRESETS
from s3r_zoo.data.simulated_sets import write_dataset
from s3r_zoo.files import file_digest, write_json
from s3r_zoo.finetune import stratified_fraction
from s3r_zoo.models import build_encoder
from s3r_zoo.plots import accuracy_vs_labels
from .plots import probe_convergence
from s3r_zoo.progress import progress
from s3r_zoo.evaluate import compare_rows, fit_probe, paired_permutation_test, summarise_correct
from .common import budget_record, environment, run_device, write_result
from .protocol import CONVERGENCE, LABELS, Training, finetune, pretrain

SPECTRAL = {"mean_spectrum": "mean spectrum (logistic regression)",
            "pixel_spectra": "per-pixel spectra, averaged over the cube",
            "random": "random-init features"}
PIXELS_PER_CUBE = 64  # training pixels drawn per training cube for the per-pixel classifier
# probe results are cached in <work>/probes/<data>/<row>.json, keyed by what they were computed from (the
# encoder file's digest, the model, the fractions, the seeds) and this version: raise it when the probe, the
# features or the spectral baselines change how they compute
PROBE_VERSION = 1


@dataclass(frozen=True)
class LabelBudget(Training):
    """What every method gets in the powered benchmark: the shared training fields (model, epochs, crops per
    cube, patience, batch, seeds, fine-tuning lr), the simulated sets and the rows."""

    presets: dict = field(default_factory=lambda: {"pdac_like": 500, "plgc_like": 500})  # labelled cubes
    size: int = 40
    magnification: float = 0.75
    difficulty: float = 0.0
    split: tuple = (0.4, 0.2, 0.4)
    pool: int = 1000
    pool_crops_per_cube: int = 1
    probe_fractions: tuple = (0.01, 0.05, 0.1, 0.25, 1.0)
    finetune_fractions: tuple = (0.1, 1.0)
    probe_methods: tuple = ("s3r_cr", "s3r_br", "simsiam_all", "simsiam_3", "byol_all", "byol_3", "mhsim", "ssad",
                            "convdeconv", "regress")
    pool_methods: tuple = ("s3r_cr", "s3r_br", "simsiam_all", "byol_all", "mhsim")
    finetune_methods: tuple = ("scratch", "s3r_cr", "s3r_br", "simsiam_all")
    large_model: str = "s3r_resnet50"  # the larger encoder: pre-trained and fine-tuned with the same budget
    large_methods: tuple = ("scratch", "s3r_cr", "s3r_br", "simsiam_all")

    def for_runs(self, crops_per_cube: int, model: str = "") -> "LabelBudget":
        """This budget as one pre-training or fine-tuning run reads it: ``crops_per_cube`` (the pool's or the
        train split's) and ``model`` (default: the benchmark's)."""
        return replace(self, crops_per_cube=crops_per_cube, model=model or self.model)

    def folder(self, kind: str, model: str = "") -> str:
        """The work sub-folder of ``kind`` runs ("pretrain" / "finetune") of ``model`` (the larger model's
        runs apart from the benchmark model's, which keep the plain name)."""
        return kind if model in ("", self.model) else f"{kind}_{model}"


CPU = LabelBudget(pretrain_epochs=10, patience=3, seeds=5, finetune_epochs=30, lr_finetune=1e-3)
QUICK = LabelBudget(presets={"pdac_like": 60}, size=32, pool=40, pretrain_epochs=1, seeds=2,
                    probe_fractions=(0.25, 1.0), finetune_fractions=(1.0,), finetune_epochs=2,
                    probe_methods=("s3r_cr", "simsiam_all"), pool_methods=("s3r_cr",),
                    finetune_methods=("scratch", "s3r_cr"), large_methods=("scratch",), split=(0.4, 0.2, 0.4))
GPU = replace(CPU, size=128, magnification=1.0, presets={"pdac_like": 1000, "plgc_like": 1000}, pool=4000,
              pretrain_epochs=100, patience=10, batch_size=32, finetune_epochs=70, lr_finetune=3e-4)
BUDGETS = {"cpu": CPU, "quick": QUICK, "gpu": GPU}


def prepare(root: Path, preset: str, n: int, b: LabelBudget, pool: bool = False) -> Path:
    """The labelled set (or, with ``pool``, the unlabelled pool: all in train.txt, another seed)."""
    n = b.pool if pool else n
    out = root / (f"{preset}_{'pool' if pool else 'labelled'}_{n}x{b.size}_m{b.magnification:g}_d{b.difficulty:g}")
    if not (out / "meta.json").is_file():
        write_dataset(out, preset, n=n, size=b.size, seed=1 if pool else 0, difficulty=b.difficulty, dtype="float16",
                      magnification=b.magnification, stain_balance=1.0,
                      split=(1.0, 0.0, 0.0) if pool else b.split)
    return out


class Cubes:
    """The labelled set in memory: (N, B, H, W) float32 per split, labels, classes, wavelengths."""

    def __init__(self, data: Path):
        self.x, self.y = {}, {}
        for s in ("train", "val", "test"):
            items, self.classes = read_split_file(data / f"{s}.txt")
            cubes = [read_cube(p) for p, _ in items]
            self.x[s] = np.stack([np.asarray(c.data, np.float32).transpose(2, 0, 1) for c in cubes])
            self.y[s] = np.asarray([lbl for _, lbl in items])
        self.wavelengths = cubes[0].wavelengths
        flat = self.x["train"].transpose(1, 0, 2, 3).reshape(self.x["train"].shape[1], -1)
        self.mean, self.std = flat.mean(1), flat.std(1) + 1e-6

    def subset(self, fraction: float, seed: int) -> np.ndarray:
        """Indices of the training cubes kept at ``fraction`` for ``seed`` (every method gets the same)."""
        if fraction >= 1:
            return np.arange(len(self.y["train"]))
        return np.asarray(stratified_fraction(self.y["train"], fraction, self.classes, seed))


@torch.no_grad()
def features(init: str, b: LabelBudget, cubes: Cubes, batch: int = 64, layer3: bool = False) -> dict:
    """Pooled encoder features of every labelled cube ({split: (N, D)}), inputs normalised by the train split;
    ``layer3``: the map of ``layer3`` averaged over positions instead (a probe that keeps more spatial detail)."""
    torch.manual_seed(0)  # random-init features: the same random encoder every time (built on the CPU, then moved)
    model = build_encoder(b.model, cubes.x["train"].shape[1], init, wavelengths=cubes.wavelengths).eval()
    dev = run_device()
    model = model.to(dev)
    out = {}
    for s, x in cubes.x.items():
        parts = []
        for i in range(0, len(x), batch):
            xb = normalize(torch.from_numpy(x[i:i + batch]), cubes.mean, cubes.std)
            xb = xb.to(dev).contiguous(memory_format=torch.channels_last)
            f = (model.forward_intermediates(xb, indices=[3], intermediates_only=True)[0].mean((2, 3)) if layer3
                 else model(xb))
            parts.append(f.float().cpu().numpy())
        out[s] = np.concatenate(parts)
    return out


def probe_runs(feats: dict, cubes: Cubes, b: LabelBudget) -> dict:
    """{fraction: [per seed: per-test-cube correctness]} of a linear probe on fixed features."""
    runs, done = {}, {}
    for f in b.probe_fractions:
        runs[f] = []
        for seed in range(b.seeds):
            keep = cubes.subset(f, seed)
            if tuple(keep) not in done:  # the probe is deterministic: one fit per distinct subset (100 %: one)
                done[tuple(keep)] = probe_correct(feats, cubes, keep)
            runs[f].append(done[tuple(keep)])
    return runs


def probe_cached(path: Path, source, b: LabelBudget, compute) -> dict:
    """``compute()`` (a ``{fraction: [per seed: per-test-cube correctness]}`` of :func:`probe_runs` or
    :func:`pixel_runs`), or the result saved at ``path`` by the same computation: same encoder file
    (``source``, by content digest; None for rows without one), model, fractions, seeds and probe version."""
    key = {"source": None if source is None else file_digest(source)[0], "model": b.model,
           "fractions": [float(f) for f in b.probe_fractions], "seeds": b.seeds, "version": PROBE_VERSION}
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            return {float(f): runs for f, runs in saved["runs"].items()}
    runs = compute()
    write_json(path, {"key": key, "runs": {f"{f:g}": r for f, r in runs.items()}}, indent=None)
    return runs


def probe_correct(feats: dict, cubes: Cubes, keep: np.ndarray) -> list:
    """Per test cube, whether a probe fitted on the training cubes ``keep`` classifies it correctly."""
    p = fit_probe(feats["train"][keep], cubes.y["train"][keep], feats["val"], cubes.y["val"], len(cubes.classes))
    return (p.predict(feats["test"]) == cubes.y["test"]).tolist()


def finetune_correct(agg: dict) -> list:
    """Per seed, per test cube: whether a fine-tuning run (``run_finetune``'s aggregate) got it right."""
    return [[p == t for p, t in zip(r["test_predictions"]["predicted"], r["test_predictions"]["labels"])]
            for r in agg["runs"]]


def pixel_runs(cubes: Cubes, b: LabelBudget) -> dict:
    """The per-pixel spectral classifier: logistic regression on single-pixel log spectra (cube labels),
    class probabilities averaged over every pixel of a test cube."""
    def pixels(x, idx, rng):
        n = x.shape[2] * x.shape[3]
        flat = x[idx].reshape(len(idx), x.shape[1], n)
        pick = rng.integers(0, n, size=(len(idx), PIXELS_PER_CUBE))
        return np.log(np.clip(np.take_along_axis(flat, pick[:, None, :], 2), 1e-3, None)).transpose(0, 2, 1)

    def cube_probs(p, x):
        logit = p.logits(np.log(np.clip(x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1]), 1e-3, None)))
        e = np.exp(logit - logit.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).reshape(len(x), -1, e.shape[1]).mean(1)

    runs = {}
    for f in b.probe_fractions:
        runs[f] = []
        for seed in range(b.seeds):
            rng = np.random.default_rng(seed)
            keep = cubes.subset(f, seed)
            xt = pixels(cubes.x["train"], keep, rng)
            xv = pixels(cubes.x["val"], np.arange(len(cubes.y["val"])), rng)
            p = fit_probe(xt.reshape(-1, xt.shape[2]), np.repeat(cubes.y["train"][keep], PIXELS_PER_CUBE),
                          xv.reshape(-1, xv.shape[2]), np.repeat(cubes.y["val"], PIXELS_PER_CUBE), len(cubes.classes))
            runs[f].append((cube_probs(p, cubes.x["test"]).argmax(1) == cubes.y["test"]).tolist())
    return runs


def run(results_dir: Path, b: LabelBudget, work: Path, amp: str = "auto") -> dict:
    """Every preset's probes and convergence first (cheap per row), then fine-tuning preset by preset (the
    benchmark model's rows on every preset, then the larger model's): an interrupted run has the probe
    tables of all presets and whole, paired fine-tuning tables of the presets it finished. Finished
    pre-training and fine-tuning runs are cached by their spec."""
    payload = {"name": "labels", "budget": budget_record(b),
               "labels": {**LABELS, **SPECTRAL}, "tables": {}, "complete": False,
               **environment(run_device())}
    sets = {}
    for preset, n in b.presets.items():
        data = prepare(work / "data", preset, n, b)
        pool = prepare(work / "data", preset, n, b, pool=True) if b.pool_methods else None
        sets[preset] = data, pool, Cubes(data)
        payload["tables"][preset] = {
            "data": f"{n} labelled cubes of {b.size}px (magnification {b.magnification:g}, difficulty "
                    f"{b.difficulty:g}, stain-balanced), split {'/'.join(f'{s:g}' for s in b.split)}; unlabelled "
                    f"pool {b.pool}",
            "split_sizes": {s: int(len(v)) for s, v in sets[preset][2].y.items()},
            "classes": sets[preset][2].classes, "probe": {}, "finetune": {}, "finetune_large": {},
            "pretrain": {}, "plots": []}
    for preset, (data, pool, cubes) in sets.items():
        table = payload["tables"][preset]

        def probe_row(name: str, runs: dict) -> None:
            for f, correct in runs.items():
                table["probe"].setdefault(f"{f:g}", {})[name] = summarise_correct(correct)
            write_result(results_dir, "labels", payload)

        def cached(name: str, source, compute) -> dict:
            return probe_cached(work / "probes" / data.name / f"{name}.json", source, b, compute)

        probe_row("mean_spectrum", cached("mean_spectrum", None, lambda: probe_runs(
            {s: x.mean(axis=(2, 3)) for s, x in cubes.x.items()}, cubes, b)))
        probe_row("pixel_spectra", cached("pixel_spectra", None, lambda: pixel_runs(cubes, b)))
        probe_row("random", cached("random", None, lambda: probe_runs(features("random", b, cubes), cubes, b)))
        jobs = [(m, "train") for m in b.probe_methods] + [(m, "pool") for m in b.pool_methods]
        runs = {}
        for method, setting in progress(jobs, desc=f"{preset}: pre-train + probe", unit="run"):
            name = method if setting == "train" else f"{method}@pool"
            runs[name] = s = pretrain_method(method, pool if setting == "pool" else data, b, work, amp,
                                       on_pool=setting == "pool")
            table["pretrain"][name] = {k: s[k] for k in ("epochs", "stop", "final_loss", "wall_time_s")}
            probe_row(name, cached(name, s["checkpoint"],
                                   lambda: probe_runs(features(s["checkpoint"], b, cubes), cubes, b)))
        table["convergence"] = convergence({m: runs[m] for m in CONVERGENCE if m in runs}, b, cubes,
                                           table["probe"]["1"]["random"]["mean"] if "1" in table["probe"] else None,
                                           work / "probes" / data.name)
        _finish(results_dir, payload, preset, b)
    for key, model, methods in (("finetune", b.model, b.finetune_methods),
                                ("finetune_large", b.large_model, b.large_methods)):
        for preset, (data, pool, cubes) in sets.items():  # preset by preset: a partial run has whole tables
            table = payload["tables"][preset]
            for method in methods:
                init = ("scratch" if method == "scratch"
                        else pretrain_method(method, data, b, work, amp, model=model)["checkpoint"])
                for f in b.finetune_fractions:
                    agg = finetune(init, data, b.size, b.for_runs(b.crops_per_cube, model), f,
                                   work / b.folder("finetune", model) / data.name / f"{method}_f{f:g}", amp=amp)
                    table[key].setdefault(f"{f:g}", {})[method] = summarise_correct(finetune_correct(agg))
                    write_result(results_dir, "labels", payload)
                _finish(results_dir, payload, preset, b)  # tests and plots after every method: a stop keeps them
    payload["complete"] = True
    write_result(results_dir, "labels", payload)
    return payload


def _finish(results_dir: Path, payload: dict, preset: str, b: LabelBudget) -> None:
    """Paired tests of every row of a preset's tables, its plots, and the result file."""
    table = payload["tables"][preset]
    for rows in table["probe"].values():
        compare_rows(rows, "random")
    for rows in (*table["finetune"].values(), *table.get("finetune_large", {}).values()):
        compare_rows(rows, "scratch")
    for f, rows in table.get("finetune_large", {}).items():  # the larger model against the benchmark model
        for m, r in rows.items():
            base = table["finetune"].get(f, {}).get(m)
            if base is not None:
                r["p_vs_base_model"] = paired_permutation_test(r["per_cube"], base["per_cube"])
                r["base_model_mean"] = base["mean"]
    table["plots"] = plot(results_dir, payload, preset)
    write_result(results_dir, "labels", payload)


def plot(results_dir: Path, payload: dict, preset: str) -> list:
    """The PNGs of one preset's tables (from labels.json alone: ``python -m benchmarks report`` redraws them)."""
    table, b = payload["tables"][preset], payload["budget"]
    chance = 100 / len(PRESETS[preset].classes) if preset in PRESETS else None
    accuracy_vs_labels({f"linear probe (frozen {b['model']} features)": table["probe"],
                        f"full fine-tuning, {b['model']}": table["finetune"],
                        f"full fine-tuning, {b.get('large_model')}": table.get("finetune_large")},
                       payload["labels"], Path(results_dir) / f"labels_{preset}.png",
                       f"{preset}: {table['data']}", dashed=tuple(SPECTRAL) + ("scratch",), chance=chance)
    plots = [f"labels_{preset}.png"]
    if table.get("convergence", {}).get("curves"):
        probe_convergence(table["convergence"]["curves"], payload["labels"],
                          Path(results_dir) / f"labels_convergence_{preset}.png",
                          f"{b['model']} pre-trained on the {preset} train split ({table['split_sizes']['train']} "
                          f"cubes of {b['size']}px); probe on all training labels", chance=chance)
        plots.append(f"labels_convergence_{preset}.png")
    return plots


def replot(results_dir: Path) -> None:
    """Redraw every preset's PNGs from ``labels.json`` (if present)."""
    path = Path(results_dir) / "labels.json"
    if path.is_file():
        payload = json.loads(path.read_text())
        for preset, table in payload["tables"].items():
            if table["probe"] or table["finetune"]:
                plot(results_dir, payload, preset)


def pretrain_method(method: str, data: Path, b: LabelBudget, work: Path, amp: str, on_pool: bool = False,
              model: str = "") -> dict:
    """One pre-training of the benchmark (cached by its spec) of ``model`` (default: the benchmark's): on the
    pool ``pool_crops_per_cube`` (the pool is larger), on the labelled train split ``crops_per_cube``; the
    benchmark model's convergence methods keep a snapshot of the encoder after every epoch."""
    crops = b.pool_crops_per_cube if on_pool else b.crops_per_cube
    snapshots = method in CONVERGENCE and model in ("", b.model)
    return pretrain(method, data, b.size, b.for_runs(crops, model), work / b.folder("pretrain", model),
                    amp=amp, snapshot_every=1 if snapshots else 0)


def convergence(runs: dict, b: LabelBudget, cubes: Cubes, random_acc, probes: Path) -> dict:
    """Probe accuracy (all training labels) of each method's encoder after every pre-training epoch, against
    its cumulative pre-training wall time; per method the time to reach 95 % of its own final probe
    accuracy and of the best method's, and those times over SimSiam's (the paper: S3R converges >= 3x
    faster). Each snapshot's probe is cached under ``probes``."""
    curves = {}
    one = replace(b, probe_fractions=(1.0,), seeds=1)  # all training labels: one probe
    for method, s in runs.items():
        folder = Path(s["checkpoint"]).parent / "snapshots"
        times = {h["epoch"]: h["time_s"] for h in s["history"]}
        points = [{"epoch": 0, "time_s": 0.0, "accuracy": random_acc}] if random_acc is not None else []
        for e in sorted(times):
            ckpt = folder / f"epoch_{e}.safetensors"
            if ckpt.is_file():
                correct = probe_cached(probes / "convergence" / f"{method}_epoch{e}.json", ckpt, one,
                                       lambda: probe_runs(features(str(ckpt), b, cubes), cubes, one))[1.0][0]
                acc = 100 * float(np.mean(correct))
                points.append({"epoch": e, "time_s": float(times[e]), "accuracy": acc})
        curves[method] = {"points": points, "final": points[-1]["accuracy"] if points else None}
    best = max((c["final"] for c in curves.values() if c["final"] is not None), default=None)
    for c in curves.values():
        c["t95_own_s"] = _time_to(c["points"], 0.95 * c["final"]) if c["final"] is not None else None
        c["t95_best_s"] = _time_to(c["points"], 0.95 * best) if best is not None else None
    ref = curves.get("simsiam_all", {})
    for c in curves.values():
        for k, ratio in (("t95_own_s", "t95_own_over_simsiam"), ("t95_best_s", "t95_best_over_simsiam")):
            c[ratio] = c[k] / ref[k] if c[k] is not None and ref.get(k) else None
    return {"curves": curves, "best_final": best, "probe": "all training labels, L2 picked on the validation split"}


def _time_to(points: list, level: float):
    """First pre-training time at which the probe reaches ``level`` (None if never)."""
    return next((p["time_s"] for p in points if p["accuracy"] >= level - 1e-9), None)
