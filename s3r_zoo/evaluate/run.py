"""``s3r-zoo evaluate``: does pre-training help on this data, and by how much?

The label-efficiency protocol of the benchmarks, on the user's own labelled scans:

* one split (the user's split files, or a patient-grouped split of class folders / a CSV),
  the same for every row;
* linear probes on frozen global-pooled features at each probe fraction, for every encoder,
  beside the cube's mean spectrum and random-init features (:mod:`.probe`: L2 picked on the
  validation split, deterministic);
* full fine-tuning at each fine-tuning fraction from every encoder and from scratch, with a
  floor on optimiser steps (``min_steps``), so a 10 % subset trains as long as the floor says;
* paired seeds: seed ``k`` keeps the same training cubes for every row
  (:func:`~s3r_zoo.finetune.stratified_fraction`, at least one per class);
* per row mean +- std over seeds, a 95 % bootstrap CI over test cubes, and paired sign-flip tests
  against random-init features (probes) or scratch (fine-tuning) and against the best other row
  (:mod:`.stats`, the benchmarks' implementation).

Outputs in ``out``: ``evaluate.json`` (rewritten after every row, so a stopped run keeps what
finished), ``evaluate.png`` (accuracy against labels with CI bands), ``stats.json``,
``split/`` (when evaluate made the split), ``probes/`` (each probe row, cached by what it was
computed from) and ``finetune/`` (each fine-tuning run; a rerun reuses the finished ones and
resumes an interrupted one).
"""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..checkpoint import read_checkpoint_info
from ..data.datasets import check_same_bands
from ..embed import relative_name
from ..files import check_writable_dir, file_digest, first_line, folder_lock, read_json, write_json
from ..finetune import FinetuneSpec, run_finetune, stratified_fraction
from ..models import RELEASES, build_encoder, model_of
from ..options import check_spec
from ..plots import accuracy_vs_labels
from ..progress import progress
from ..train import drop_states, result_fields
from ..version import __version__
from ..weights import init_file
from .labelled import SPLITS, LabelledSplit, mean_spectra, pooled_features, resolve_split, training_stats
from .probe import fit_probe
from .spec import BASELINES, EvaluateSpec
from .stats import compare_rows, summarise_correct

__all__ = ["run_evaluate", "cached_finetune", "probe_runs", "finetune_correct", "format_table"]

PROBE_VERSION = 1  # raise when the probe or the features change how they compute: cached probe rows are redone
STATE_EVERY = 10  # fine-tuning runs save their resumable state every 10 validations, then drop it once finished


def cached_finetune(spec: FinetuneSpec, cached_only: bool = False) -> Optional[dict]:
    """:func:`~s3r_zoo.finetune.run_finetune`, or the ``aggregate.json`` a finished run of the same result
    fields left in ``spec.out``; an interrupted run of it is resumed. Finished runs keep their weights and
    results, not their resumable states. ``cached_only``: None instead of training."""
    out = Path(spec.out)
    path = out / "aggregate.json"
    if path.is_file():
        saved = read_json(path)
        if result_fields(saved.get("spec", {})) == result_fields(spec):
            return saved
    if cached_only:
        return None
    if any(out.glob("seed_*/state.safetensors")):
        spec = replace(spec, resume=True)
    agg = run_finetune(spec)
    for seed in out.glob("seed_*"):
        drop_states(seed)
    return agg


def probe_runs(feats: dict, train_labels: np.ndarray, y_val: np.ndarray, y_test: np.ndarray, classes: list,
               fractions, seeds: list) -> dict:
    """{fraction: [per seed: per-test-cube correctness]} of a linear probe on fixed features; seed ``s`` keeps
    the training cubes that fine-tuning with seed ``s`` keeps (one fit per distinct subset: the probe is
    deterministic)."""
    runs, done = {}, {}
    for f in fractions:
        runs[f] = []
        for seed in seeds:
            keep = tuple(stratified_fraction(train_labels, f, classes, seed)) if f < 1 else tuple(
                range(len(train_labels)))
            if keep not in done:
                idx = np.asarray(keep)
                p = fit_probe(feats["train"][idx], train_labels[idx], feats["val"], y_val, len(classes))
                done[keep] = (p.predict(feats["test"]) == y_test).tolist()
            runs[f].append(done[keep])
    return runs


def finetune_correct(agg: dict) -> list:
    """Per seed, per test cube: whether a fine-tuning run (``run_finetune``'s aggregate) got it right."""
    return [[p == t for p, t in zip(r["test_predictions"]["predicted"], r["test_predictions"]["labels"])]
            for r in agg["runs"]]


def _source(init: str) -> Optional[Path]:
    """The checkpoint file behind ``init`` (a file, an ``hf-hub:`` id's download, a ``local-dir:`` folder's),
    None for a tag."""
    path = Path(init_file(init))
    return path if path.is_file() else None


def _source_wavelengths(init: str) -> Optional[tuple]:
    file = _source(init)
    if file is not None:
        return read_checkpoint_info(file).wavelengths_nm
    release = RELEASES.get(init)
    return release.bands.wavelengths_nm if release is not None else None


def _identity(init: str) -> str:
    """What an encoder's numbers depend on: a file by its content, a released tag by its name."""
    file = _source(init)
    return file_digest(file)[0] if file is not None else init


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def _rows(spec: EvaluateSpec) -> dict:
    """{row name: init} of the user's encoders, named as given (a file by its name), unique."""
    rows = {}
    for init in dict.fromkeys(spec.encoders or ()):
        if init in ("random", "scratch"):
            continue  # measured anyway
        name = Path(init).name if _source(init) is not None and not init.startswith(("hf-hub:", "local-dir:")) else init
        while name in rows or name in BASELINES:
            name = f"{Path(init).parent.name}/{name}" if "/" not in name else name + "'"
        rows[name] = init
    return rows


def _check_encoders(spec: EvaluateSpec, rows: dict, bands: int, wavelengths) -> str:
    """The one architecture of the run; every encoder built once (so one that does not load, or has no band in
    common with the data, stops the run before anything is written)."""
    models = {}
    for name, init in rows.items():
        try:
            models[name] = model_of(init)
        except (OSError, ValueError) as e:
            raise ValueError(f"--encoders {init}: cannot read it ({first_line(e)})") from None
    found = set(models.values())
    if len(found) > 1 or (spec.model and found and found != {spec.model}):
        raise ValueError(f"--encoders: one architecture per evaluation (the rows share scratch and random-init "
                         f"baselines); found {dict(models, **({'--model': spec.model} if spec.model else {}))}")
    model = found.pop() if found else (spec.model or "s3r_resnet18")
    for name, init in rows.items():
        src = _source_wavelengths(init)
        if src and wavelengths is not None and (max(wavelengths) < min(src) or min(wavelengths) > max(src)):
            raise ValueError(f"--encoders {init}: pre-trained on {min(src):g}-{max(src):g} nm, the data's bands are "
                             f"{min(wavelengths):g}-{max(wavelengths):g} nm: no band in common")
        try:
            build_encoder(model, bands, init, wavelengths=wavelengths)
        except Exception as e:  # noqa: BLE001 - whatever a checkpoint or the hub raises, one line
            raise ValueError(f"--encoders {init}: does not load as a {bands}-band {model} ({first_line(e)})") from None
    return model


def _finetune_spec(spec: EvaluateSpec, split: LabelledSplit, model: str, init: str, fraction: float,
                   out: Path) -> FinetuneSpec:
    """The hand-off to fine-tuning: evaluate's shared options, named one by one."""
    return FinetuneSpec(data=str(split.folder), out=str(out), model=model, init=init, epochs=spec.epochs,
                        min_steps=spec.min_steps, batch_size=spec.batch_size, lr=spec.lr, crop=spec.crop,
                        eval_crop=spec.eval_crop, label_fraction=fraction, seeds=spec.seeds, seed=spec.seed,
                        amp=spec.amp, nan=spec.nan, wavelengths=spec.wavelengths, state_every=STATE_EVERY)


def run_evaluate(spec: EvaluateSpec) -> dict:
    """Run (or continue) an evaluation; returns what ``evaluate.json`` holds."""
    spec = check_spec(spec)
    out = Path(spec.out)
    for name, fs in (("--probe-fractions", spec.probe_fractions), ("--finetune-fractions", spec.finetune_fractions)):
        bad = [f for f in fs if not 0 < f <= 1]
        if bad:
            raise ValueError(f"{name}: expected fractions in (0, 1], found {bad}")
    if len(spec.split) != 3:
        raise ValueError(f"--split: expected three shares train val test, found {spec.split}")
    check_writable_dir(out)
    split = resolve_split(spec, out)
    for s in SPLITS:  # the NaN policy and one band set against every file, before anything is written
        split.dataset(s, spec).check_files()
    check_same_bands({s: split.dataset(s, spec) for s in SPLITS})  # and across the splits
    first = split.dataset("train", spec).cube(0)
    rows = _rows(spec)
    model = _check_encoders(spec, rows, first.num_bands, first.wavelengths)

    with folder_lock(out, "evaluate"):  # one run per output folder, from the first write on
        return _evaluate(spec, out, split, rows, model, first)


def _evaluate(spec: EvaluateSpec, out: Path, split, rows: dict, model: str, first) -> dict:
    split.write(spec)  # every check passed: from here on, files are written
    stats = training_stats(split, spec)
    stats.save(out / "stats.json")
    y = {s: split.labels(s) for s in SPLITS}
    seeds = [spec.seed + k for k in range(spec.seeds)]
    payload = {"name": "evaluate", "data": split.description, "classes": split.classes,
               "split_sizes": {s: len(v) for s, v in y.items()}, "model": model,
               "encoders": {**{k: {"init": "baseline"} for k in BASELINES},
                            **{k: {"init": v} for k, v in rows.items()}},
               "labels": {**BASELINES, **{k: k for k in rows}},
               "settings": {k: v for k, v in asdict(spec).items() if k not in ("out", "data")},
               "probe": {}, "finetune": {}, "complete": False, "version": __version__}
    key = {"model": model, "fractions": list(spec.probe_fractions), "seeds": seeds, "eval_crop": spec.eval_crop,
           "nan": spec.nan,
           "split": {s: [[relative_name(p, split.folder), int(lbl)] for p, lbl in split.items[s]] for s in SPLITS},
           "stats": list(stats.mean) + list(stats.std), "version": PROBE_VERSION}

    def probe_row(name: str, identity: str, features) -> None:
        path = out / "probes" / f"{_slug(name)}.json"
        row_key = {**key, "source": identity}
        saved = read_json(path) if path.is_file() else {}
        if saved.get("key") == row_key:
            runs = {float(f): r for f, r in saved["runs"].items()}
        else:
            runs = probe_runs(features(), y["train"], y["val"], y["test"], split.classes, spec.probe_fractions, seeds)
            write_json(path, {"key": row_key, "runs": {f"{f:g}": r for f, r in runs.items()}}, indent=None)
        for f, correct in runs.items():
            payload["probe"].setdefault(f"{f:g}", {})[name] = summarise_correct(correct)
        _finish(out, payload)

    def encoder_features(init: str, name: str):
        def compute():
            torch.manual_seed(spec.seed)  # random-init features: the same random encoder on every rerun
            enc = build_encoder(model, first.num_bands, init, wavelengths=first.wavelengths)
            return pooled_features(enc, split, spec, stats, desc=name)
        return compute

    probe_row("mean_spectrum", "mean_spectrum", lambda: mean_spectra(split, spec))
    probe_row("random", f"random:{spec.seed}", encoder_features("random", "random"))
    for name, init in progress(rows.items(), desc="probes", unit="encoder", disable=len(rows) < 2):
        probe_row(name, _identity(init), encoder_features(init, name))
    if spec.finetune:
        jobs = [(n, i, f) for n, i in {"scratch": "scratch", **rows}.items() for f in spec.finetune_fractions]
        for name, init, f in progress(jobs, desc="fine-tuning", unit="run"):
            run_dir = out / "finetune" / f"{_slug(name)}_f{f:g}"
            agg = cached_finetune(_finetune_spec(spec, split, model, init, f, run_dir))
            r = summarise_correct(finetune_correct(agg))
            r["steps"] = [run.get("steps") for run in agg["runs"]]
            payload["finetune"].setdefault(f"{f:g}", {})[name] = r
            _finish(out, payload)
    payload["complete"] = True
    _finish(out, payload)
    return payload


def _finish(out: Path, payload: dict) -> None:
    """Paired tests of every table, the plot and the result file (after every row: a stop keeps them)."""
    for rows in payload["probe"].values():
        compare_rows(rows, "random")
    for rows in payload["finetune"].values():
        compare_rows(rows, "scratch")
    accuracy_vs_labels({"linear probe (frozen pooled features)": payload["probe"],
                        f"full fine-tuning (>= {payload['settings']['min_steps']} steps)": payload["finetune"]},
                       payload["labels"], out / "evaluate.png",
                       f"{payload['model']} on {payload['data']}: {payload['split_sizes']['test']} test cubes, "
                       f"{payload['settings']['seeds']} paired seeds", dashed=tuple(BASELINES),
                       chance=100 / len(payload["classes"]))
    payload["png"] = "evaluate.png"
    write_json(out / "evaluate.json", payload)


def format_table(payload: dict) -> str:
    """The console table: per table and row, mean +- std over seeds at each fraction, with the paired test
    against the reference row (* p < 0.05, ** p < 0.01)."""
    lines = []
    for table, ref in (("probe", "random"), ("finetune", "scratch")):
        fracs = sorted(payload[table], key=float)
        if not fracs:
            continue
        title = "linear probe" if table == "probe" else "fine-tuning"
        lines.append(f"\n{title} (test accuracy %, mean +- std over {payload['settings']['seeds']} seeds; "
                     f"* / **: p < 0.05 / 0.01 vs {ref}, paired over {payload['split_sizes']['test']} test cubes)")
        names = list(dict.fromkeys(n for f in fracs for n in payload[table][f]))
        width = max(12, *(len(n) for n in names))
        lines.append(f"{'':<{width}}" + "".join(f"{float(f) * 100:>14g} %" for f in fracs))
        for n in names:
            cells = []
            for f in fracs:
                r = payload[table][f].get(n)
                if r is None:
                    cells.append(f"{'-':>16}")
                    continue
                p = r.get(f"p_vs_{ref}")
                mark = "**" if p is not None and p < 0.01 else "*" if p is not None and p < 0.05 else ""
                cells.append(f"{r['mean']:>8.1f} +-{r['std']:>4.1f}{mark:<2}")
            lines.append(f"{n:<{width}}" + "".join(cells))
    return "\n".join(lines)
