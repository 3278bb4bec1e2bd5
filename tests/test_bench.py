"""`python -m benchmarks`: measurements, the shared protocol, and the generated report."""

import json

import numpy as np
import pytest
import torch

from benchmarks.__main__ import main
from benchmarks.protocol import Budget
from benchmarks.report import write_report
from benchmarks.speed import adamw_fit, adamw_fit_all, adamw_fit_dfs3r
from s3r_zoo.lowrank import gram, loo_coefficients, loo_rss
from s3r_zoo.pretrain.targets import coefficient_targets

TINY = Budget(presets={"pdac_like": (18, 24)}, pretrain_epochs=1, crops_per_cube=1, patience=1, finetune_epochs=1,
              seeds=1, fractions=(1.0, 0.5), batch_size=4)


def _lowrank(n=3, b=8, p=16, rank=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, rank, p * p, generator=g).transpose(1, 2) @ torch.rand(n, rank, b, generator=g)
            ).transpose(1, 2).reshape(n, b, p, p) + 0.01 * torch.rand(n, b, p, p, generator=g)


def test_closed_form_beats_adamw_on_residual():
    cube = _lowrank()
    band = torch.tensor([1, 4, 6])
    n, b = cube.shape[:2]
    g = gram(cube.reshape(n, b, -1).transpose(1, 2))

    def rss(beta):
        full = torch.zeros(n, b, b, dtype=torch.float64)
        full[torch.arange(n), band] = beta
        return loo_rss(g, full)[torch.arange(n), band]

    closed = rss(coefficient_targets(cube, band, 1e-8))
    assert (closed <= rss(adamw_fit(cube, band)) + 1e-9).all()
    dfs3r = adamw_fit_dfs3r(cube, band)
    assert dfs3r.shape == (n, b) and (dfs3r[torch.arange(n), band] == 0).all()
    assert torch.equal(dfs3r, adamw_fit_dfs3r(cube, band))  # seeded: the benchmark's residual is reproducible
    assert (closed <= rss(dfs3r) + 1e-9).all()
    all_cf = loo_rss(g, loo_coefficients(g, 1e-8))
    all_gd = loo_rss(g, adamw_fit_all(cube))
    assert all_gd.shape == all_cf.shape == (n, b)
    assert (all_cf <= all_gd + 1e-9).all()


def test_accuracy_protocol_runs_caches_and_reports(tmp_path, monkeypatch):
    from benchmarks import accuracy

    res, work = tmp_path / "bench" / "results", tmp_path / "work"
    p = accuracy.run(res, TINY, work, methods=["scratch", "imagenet", "simsiam_3", "s3r_cr"])
    rows = p["tables"]["pdac_like"]["rows"]
    assert "skipped" in rows["imagenet"] and "ImageNet" in rows["imagenet"]["skipped"]
    for m in ("scratch", "simsiam_3", "s3r_cr"):  # simsiam_3: a 3-band encoder transferred to 40 bands
        for f in ("fraction_1", "fraction_0.5"):
            assert 0 <= rows[m][f]["mean"] <= 100 and len(rows[m][f]["runs"]) == 1
    assert rows["s3r_cr"]["pretrain"]["epochs"] == 1 and rows["scratch"]["pretrain"] is None
    assert rows["scratch"]["fraction_0.5"]["train_size"] < rows["scratch"]["fraction_1"]["train_size"]
    saved = json.loads((res / "accuracy.json").read_text())
    assert saved["budget"]["seeds"] == 1 and "versions" in saved and "date" in saved
    # finished runs keep their results and weights, not their resumable states (disk: ~270 MB per run)
    assert not list(work.rglob("state*.safetensors")) and list(work.rglob("encoder.safetensors"))

    # a second run reuses every pre-training and fine-tuning (same spec): nothing is trained
    def boom(*a, **k):
        raise AssertionError("retrained a cached run")

    monkeypatch.setattr("benchmarks.protocol.run_pretrain", boom)  # where the benchmarks call them
    monkeypatch.setattr("s3r_zoo.evaluate.run.run_finetune", boom)
    again = accuracy.run(res, TINY, work, methods=["scratch", "simsiam_3", "s3r_cr"])
    assert again["tables"]["pdac_like"]["rows"]["s3r_cr"] == rows["s3r_cr"]

    text = write_report(res).read_text()
    assert "### Table 2 on `pdac_like`" in text and "**S3R-CR**" in text and "91.21 (2.23)" in text
    assert "Not run yet: `python -m benchmarks speed`" in text
    assert "Not part of this run (`--methods`): ImageNet-1k, BYOL, 3 bands, BYOL, all bands, SimSiam, all bands" in text
    assert again["complete"] and "Incomplete" not in text

    # --cached-only collects what finished and names what did not (nothing is trained: boom above)
    partial = accuracy.run(res, TINY, work, methods=["scratch", "s3r_br"], cached_only=True)
    assert partial["tables"]["pdac_like"]["rows"]["s3r_br"] == {"not_run": "pre-training not finished within the run"}
    assert not partial["complete"]
    text = write_report(res).read_text()
    assert "**Incomplete**" in text and "S3R-BR" in text and "| **S3R-BR** | not run | not run |" in text


def _speed_payload() -> dict:
    """A speed.json as `python -m benchmarks speed` writes it (made-up numbers)."""
    env = {"device": "cpu", "date": "2026-11-24T00:00:00", "versions": {"torch": "x", "timm": "y"}}
    return {"name": "speed", "data_source": "tiles", **env,
            "targets": {"targets_speedup": 200, "step_ratio": 1.1, "loader_over_model": 2, "inference_ratio": 0.98,
                        "simulator_cubes_per_s": 10, "plgc_epoch_s_h100": 5},
            "beta_targets": {"input": [8, 41, 64, 64],
                             "median_s": {"closed form": 0.001, "AdamW 100 steps, DF-S3R recipe": 0.3,
                                          "AdamW 100 steps, batched float64": 0.05, "closed form, all bands": 0.002,
                                          "AdamW 100 steps, all bands": 0.9},
                             "speedup_one_band": 300.0, "speedup_one_band_batched_float64": 50.0,
                             "speedup_all_bands": 450.0,
                             "residual_one_band": {"closed form": 0.1, "AdamW, DF-S3R recipe": 0.5,
                                                   "AdamW, batched float64": 0.05},
                             "residual_all_bands": {"closed form": 1.0, "AdamW": 2.0}},
            "train_step": {"model": "s3r_resnet18", "input": [8, 41, 64, 64],
                           "median_s": {"contiguous": {"timm plain": 0.1, "S3R-CR": 0.105, "S3R-BR": 0.12},
                                        "channels_last": {"timm plain": 0.08, "S3R-CR": 0.084, "S3R-BR": 0.086}},
                           "ratio": {"contiguous": {"S3R-CR": 1.05, "S3R-BR": 1.2},
                                     "channels_last": {"S3R-CR": 1.05, "S3R-BR": 1.075}}},
            "precision": {"model": "s3r_resnet18", "input": [16, 41, 96, 96], "objective": "S3R-CR",
                          "bf16_supported": True,
                          "median_s": {"fp32": 0.4, "fp32 + channels_last": 0.32, "bf16 + channels_last": 0.2,
                                       "plain fp32": 0.3, "plain bf16 + channels_last": 0.15},
                          "ratio": {"fp32 + channels_last": 0.8, "bf16 + channels_last": 0.5,
                                    "plain bf16 + channels_last": 0.5}},
            "data": {"loader_crops_per_s": {"0 workers": 90.0}, "crop": 128, "resnet18_train_crops_per_s": 25.0,
                     "loader_over_model": 3.6, "simulator_cubes_per_s": 15.0},
            "formats": {"cube": [512, 612, 40], "crop": 128,
                        "crops_per_s": {"npy": {"cache": 400.0, "no cache": 300.0},
                                        "MATLAB v5": {"cache": 300.0, "no cache": 20.0},
                                        "TIFF": {"cache": 150.0, "no cache": 50.0}},
                        "ratio_to_npy": {"npy": 1.0, "MATLAB v5": 0.75, "TIFF": 0.375}},
            "inference": {"input": [4, 40, 224, 224], "median_s": {"timm resnet50": 0.3, "s3r_resnet50": 0.3},
                          "ratio": 1.0},
            "cuda": {"skipped": "no CUDA device"}}


def test_report_renders_speed_and_convergence(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    speed = _speed_payload()
    (res / "speed.json").write_text(json.dumps(speed))
    (tmp_path / "NOTES.md").write_text("## Notes\n\nhand-written\n")
    text = write_report(res).read_text()
    assert "**300x** faster | >= 200x: met" in text and "| 50x faster | reference only |" in text
    assert "AdamW, DF-S3R recipe 0.5 | 5.0x lower | closed form <= AdamW: met" in text
    assert "AdamW, batched float64 0.05 | 0.5x lower | closed form <= AdamW: **not met**" in text
    assert "fp32, both contiguous | 120.0 ms | timm plain step 100.0 ms | 1.200 | <= 1.10: **not met**" in text
    assert "fp32, both channels last | 86.0 ms | timm plain step 80.0 ms | 1.075 | <= 1.10: met" in text
    assert "(`--amp auto` here) | 200.0 ms | fp32 contiguous 400.0 ms | 0.500 | <= 0.6: met" in text
    assert "| the same, fp32 + channels_last | 320.0 ms | fp32 contiguous 400.0 ms | 0.800 | reference only |" in text
    assert "bf16 autocast + channels_last | 150.0 ms | fp32 contiguous 300.0 ms | 0.500 | reference only |" in text
    assert ("| loader, MATLAB v5 file (128px crops of 512 x 612 x 40), decode-once cache | 300 crops/s (no cache: 20) "
            "| npy 400 crops/s | 0.75 | >= 0.5: met |") in text
    assert "| loader, TIFF file" in text and "| 0.38 | >= 0.5: **not met** |" in text
    assert "skipped, no CUDA device" in text and text.rstrip().endswith("hand-written")


def test_bench_cli_rejects_unknown_parts(capsys):
    assert main(["sped"]) == 2
    assert "unknown part(s) ['sped']" in capsys.readouterr().err


def test_bench_cli_refuses_unknown_methods_writing_nothing(tmp_path, capsys):
    assert main(["accuracy", "--methods", "scratch,s3r_xx", "--results", str(tmp_path / "r")]) == 2
    assert "--methods: unknown ['s3r_xx']" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_bench_report_only(tmp_path, capsys):
    assert main(["report", "--results", str(tmp_path / "r")]) == 0
    assert (tmp_path / "RESULTS.md").is_file()


def test_bench_cli_prints_the_tables_it_ran(tmp_path, capsys, monkeypatch):
    from benchmarks import speed

    def fake_run(results_dir, quick=False):  # the measurements are tested above; here: what is printed
        (results_dir / "speed.json").write_text(json.dumps(_speed_payload()))
        return _speed_payload()

    monkeypatch.setattr(speed, "run", fake_run)
    assert main(["speed", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "## Speed" in out and "**300x** faster | >= 200x: met" in out and "## Accuracy" not in out


def test_hims_tiles_are_contiguous_nchw(tmp_path, monkeypatch):
    # a channels_last-strided input would charge a layout conversion to one side of the step ratio
    from benchmarks.common import HIMS_ENV, hims_tiles

    monkeypatch.setenv(HIMS_ENV, str(tmp_path))  # no cube there: the simulated fallback
    x, source = hims_tiles(16, 2)
    assert x.shape == (2, 40, 16, 16) and x.dtype == torch.float32
    assert x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    assert source.startswith("simulated")


def test_coefficients_measure_held_out_masked_crops_beside_baselines(tmp_path):
    from benchmarks import coefficients
    from s3r_zoo.pretrain import PretrainSpec, run_pretrain

    runs = {}
    for mode in ("cr", "br"):
        runs[mode] = tmp_path / mode
        run_pretrain(PretrainSpec(data="synthetic:pdac_like", synthetic_n=8, crop=24, epochs=1, batch_size=4,
                                  objective=mode, val_crops=4, stats_samples=4, out=str(runs[mode])))
    res = tmp_path / "results"
    res.mkdir()
    p = coefficients.run(res, tmp_path / "work", cr_run=str(runs["cr"]), br_run=str(runs["br"]))
    assert p["masked"] and p["tiles"][0] == 4 and "simulated cubes of another seed" in p["held_out"]["cr"]
    assert len(p["per_band"]) == 3
    for row in p["per_band"].values():
        for v in row.values():  # every number beside its baselines
            assert {"cr_l1", "cr_l1_zeros", "cr_l1_band_mean", "locality", "locality_closed_form", "br_error",
                    "br_error_closed_form", "br_error_band_mean"} <= set(v)
            assert v["br_error_closed_form"] <= v["br_error_band_mean"] + 1e-9  # least squares is the floor
    # the same fixed masks: measuring twice gives the same numbers
    assert coefficients.run(res, tmp_path / "work", cr_run=str(runs["cr"]), br_run=str(runs["br"]))["per_band"] == \
        p["per_band"]
    text = write_report(res).read_text()
    assert "held-out 24px crops" in text and "| S3R-BR |" in text and (res / "coefficients.png").is_file()


def test_weights_part_fine_tunes_scratch_and_every_release_with_the_same_protocol(tmp_path, monkeypatch):
    from benchmarks import released as weights
    from benchmarks.protocol import QUICK

    calls, outs = [], []

    def fake_finetune(init, data, size, budget, frac, out, amp="auto"):
        calls.append((budget.model, init, frac, budget.seeds, budget.finetune_epochs))
        outs.append(out)
        acc = 0.9 if init == "scratch" else 0.8
        return {"aggregate": {"accuracy": {"mean": acc, "std": 0.01}},
                "runs": [{"accuracy": acc, "train_size": 12}]}

    monkeypatch.setattr(weights, "finetune", fake_finetune)
    monkeypatch.setattr(weights, "prepare_data", lambda root, *a: root / "pdac")
    p = weights.run(tmp_path / "results", QUICK, tmp_path / "work")
    assert [(m, i) for m, i, f, *_ in calls if f == 1.0] == [
        ("s3r_resnet18", "scratch"), ("s3r_resnet18", "s3r_resnet18.cr_hims41_v2"),
        ("s3r_resnet18", "s3r_resnet18.br_hims41_v2"), ("s3r_resnet18", "s3r_resnet18.local_hims41_v3"),
        ("s3r_resnet50", "scratch"), ("s3r_resnet50", "s3r_resnet50.cr_hims41_v2"),
        ("s3r_resnet50", "s3r_resnet50.br_hims41_v2")]
    assert {c[3:] for c in calls} == {(QUICK.seeds, QUICK.finetune_epochs)}  # one protocol for every row
    assert len(set(outs)) == len(outs)  # every run its own folder (scratch of each model too)
    text = write_report(tmp_path / "results").read_text()
    assert "| s3r_resnet50 | s3r_resnet50.br_hims41_v2 | 80.0 +- 1.0 | 80.0 +- 1.0 |" in text
    assert "| s3r_resnet18 | scratch | 90.0 +- 1.0 | 90.0 +- 1.0 |" in text and len(p["rows"]) == 7


def test_a_cached_run_matches_its_spec_but_not_how_it_was_carried_out(tmp_path):
    from benchmarks.protocol import _cached

    spec = {"model": "s3r_resnet18", "lr": 1e-3, "epochs": 30, "state_every": 10, "num_workers": 0}
    path = tmp_path / "bench_aggregate.json"
    old = {k: v for k, v in spec.items() if k != "state_every"}  # written before the option existed
    path.write_text(json.dumps({"bench_spec": {**old, "num_workers": 2}, "runs": []}))
    assert _cached(path, spec) is not None  # how often the state was saved, or by how many workers: same numbers
    assert _cached(path, {**spec, "lr": 1e-4}) is None  # another learning rate: other numbers, run again
    assert _cached(path, {**spec, "epochs": 31}) is None and _cached(tmp_path / "none.json", spec) is None


def test_an_interrupted_finetune_set_continues_and_a_finished_one_keeps_no_states(tmp_path, monkeypatch):
    from benchmarks import protocol

    data = protocol.prepare_data(tmp_path / "data", "pdac_like", 18, 24, 0.0)
    budget = Budget(presets={"pdac_like": (18, 24)}, finetune_epochs=1, seeds=2, batch_size=4)
    with monkeypatch.context() as m:  # killed after its seeds ran, before the aggregate was cached
        m.setattr("s3r_zoo.evaluate.run.drop_states", lambda run: None)
        first = protocol.finetune("scratch", data, 24, budget, 1.0, tmp_path / "ft")
    (tmp_path / "ft" / "aggregate.json").unlink()
    assert (tmp_path / "ft" / "seed_1" / "state.safetensors").is_file()
    again = protocol.finetune("scratch", data, 24, budget, 1.0, tmp_path / "ft")  # resumes every seed
    assert [r["accuracy"] for r in again["runs"]] == [r["accuracy"] for r in first["runs"]]
    # cached now: the resumable states (model + optimiser) are gone, the best weights stay
    assert not list((tmp_path / "ft").rglob("state*.safetensors"))
    assert (tmp_path / "ft" / "seed_0" / "best.safetensors").is_file()


def test_results_record_how_the_benchmark_was_started(monkeypatch):
    from benchmarks.common import environment

    for argv0, program in (("/src/benchmarks/__main__.py", "python -m benchmarks"), ("/x/run.py", "run.py")):
        monkeypatch.setattr("sys.argv", [argv0, "labels", "--work", "runs/bench_labels"])
        assert environment(torch.device("cpu"))["command"] == f"{program} labels --work runs/bench_labels"


def test_loader_batches_and_workers_are_deterministic(tmp_path):
    from benchmarks.speed import make_loader
    from s3r_zoo.data import HSIFolder
    from s3r_zoo.data.synthetic import simulate_cube

    for i in range(5):
        (tmp_path / f"c{i % 2}").mkdir(exist_ok=True)
        np.save(tmp_path / f"c{i % 2}" / f"x{i}.npy", simulate_cube("pdac_like", i % 2, 16, seed=i).data)
    ds = HSIFolder(tmp_path, crop=8, seed=3)
    a = [x for x, _ in make_loader(ds, batch_size=2, num_workers=0, seed=5)]
    b = [x for x, _ in make_loader(ds, batch_size=2, num_workers=2, seed=5)]
    assert [t.shape for t in a] == [(2, 40, 8, 8), (2, 40, 8, 8), (1, 40, 8, 8)]
    for s, t in zip(a, b):
        assert torch.equal(s, t)
    with pytest.raises(ValueError, match="batch_size: expected >= 1"):
        make_loader(ds, batch_size=0)


def test_the_gpu_script_keeps_to_its_time_budget(tmp_path):
    """`python -m benchmarks gpu` (the lent-GPU run) records rows it has no time left for as skipped, writes its
    JSON and renders its section; the full-size rows ran once on CPU with --tiny (closing note)."""
    from benchmarks.gpu import gpu_section, run

    p = run(tmp_path, tiny=True, budget_s=0)
    assert [r["skipped"] for r in p["steps"]] == ["time budget"]
    assert p["data"] == {"skipped": "time budget"} and p["epochs"] == {"skipped": "time budget"}
    assert (tmp_path / "gpu.json").is_file()
    text = gpu_section(json.loads((tmp_path / "gpu.json").read_text()))
    assert "| s3r_resnet18 | 32 | 2 | off | time budget |" in text and "`--tiny` CPU rehearsal" in text


def test_the_hims_tile_annotation_covers_the_core_once():
    """benchmarks/annotations: one label per 64-px tile of the 844 x 676 HIMS core, from the documented set."""
    import csv
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "annotations" / "hims_bl2082_m13_tiles64.csv"
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert {(int(r["row"]), int(r["col"])) for r in rows} == {(i, j) for i in range(13) for j in range(10)}
    assert all(int(r["top"]) + 64 <= 844 and int(r["left"]) + 64 <= 676 and r["size"] == "64" for r in rows)
    labels = [r["label"] for r in rows]
    assert set(labels) == {"epithelium", "stroma", "vessel", "background", "mixed"}
    assert (labels.count("epithelium"), labels.count("stroma")) == (27, 55)


def test_the_tissue_probe_tiles_are_the_annotation_cut_in_four():
    from benchmarks.tissue import SPLIT_COL, tiles

    t = tiles()
    assert len(t) == 4 * (27 + 55)
    assert all(top % 32 == 0 and left % 32 == 0 for top, left, _ in t)
    left = [c for _, col, c in t if col < SPLIT_COL]
    right = [c for _, col, c in t if col >= SPLIT_COL]
    assert (left.count(0), left.count(1), right.count(0), right.count(1)) == (64, 100, 44, 120)


def test_tissue_recipe_variants_are_found_and_chosen_on_the_left_half_only(tmp_path):
    """Every finished run under the work folder is a row (``cr_lr1e-3`` -> "S3R-CR (lr1e-3)"); the selection
    score cross-validates on the left half's tiles only: features that are informative on the left half and
    noise on the right still score 100 there."""
    from benchmarks.tissue import _left_cv, _runs, tiles

    for name in ("cr", "cr_lr1e-3", "local", "unknown", "br_unfinished"):
        (tmp_path / name).mkdir()
        if name != "br_unfinished":
            (tmp_path / name / "encoder.safetensors").write_bytes(b"")
    assert [n for _, n in _runs(tmp_path)] == ["S3R-CR", "S3R-CR (lr1e-3)", "local S3R"]
    t = tiles()
    y = np.array([c for _, _, c in t])
    train = np.array([left < 320 for _, left, _ in t])
    x = np.where(train[:, None], y[:, None] * 2.0 - 1.0, np.random.default_rng(0).standard_normal((len(y), 1)))
    assert _left_cv(x, y, train) == 100.0


def test_the_split_half_crops_are_the_grid_tiles_of_each_half():
    """`bench tissue`'s split-half at pre-training's crop size: every 64-px tile of the annotation grid, whatever its
    label, the left half's as "train" and the right half's as "test", channels first, NaNs repaired."""
    from types import SimpleNamespace

    from benchmarks.tissue import _grid_crops

    data = np.arange(844 * 676, dtype=np.float32).reshape(844, 676, 1).repeat(2, axis=2)
    data[5, 5, 0] = np.nan
    crops = _grid_crops(SimpleNamespace(data=data), "cube.npy")
    assert crops["train"].shape == crops["test"].shape == (65, 2, 64, 64)
    assert np.isfinite(crops["train"]).all() and crops["test"][0, 0, 0, 0] == data[0, 320, 0]


def test_the_worlds_benchmark_budgets_steps_and_floors_fine_tuning(tmp_path):
    """`bench worlds`: pre-training runs for its budget in optimiser steps (not epochs) with a learning curve of
    snapshot probes; fine-tuning of a small label fraction reaches the step floor; both probes (global pool and
    layer3) and the fine-tuning table are reported with paired tests against their references."""
    from dataclasses import replace

    from benchmarks import worlds

    b = replace(worlds.QUICK, n=24, size=32, steps=6, snapshots=2, min_steps=5, finetune_epochs=1, seeds=1,
                finetune_fractions=(0.5,))
    p = worlds.run(tmp_path / "results", b, tmp_path / "work")
    w = p["worlds"]["C"]
    assert w["pretrain"]["s3r_local"]["steps"] >= 6 and len(w["curves"]["s3r_local"]) >= 2
    assert [q[0] for q in w["curves"]["s3r_local"]][-1] == w["pretrain"]["s3r_local"]["steps"]
    agg = json.loads(next((tmp_path / "work" / "finetune").glob("*/scratch_f0.5/aggregate.json")).read_text())
    assert agg["runs"][0]["steps"] >= 5 and agg["runs"][0]["epochs"] > 1  # 1 epoch asked, the floor added more
    assert "p_vs_random" in w["probe_layer3"]["1"]["s3r_local"] and "p_vs_scratch" in w["finetune"]["0.5"]["s3r_local"]
    text = worlds.worlds_section(p)
    assert "World C, linear probe, layer3 pooled" in text and "local S3R" in text
    assert (tmp_path / "results" / "worlds_curves.png").is_file()
    # `bench latents` reads these cached encoders: one R^2 per variable per encoder, tested against random init
    from benchmarks import latents

    q = latents.run(tmp_path / "results", b, tmp_path / "lat", tmp_path / "work")
    assert list(q["rows"]) == ["mean_spectrum", "random", "s3r_local"]
    assert set(q["rows"]["s3r_local"]) == set(latents.VARIABLES) and "p_vs_random" in q["rows"]["s3r_local"]["rbc_so2"]
    assert "| local S3R |" in latents.latents_section(q) and (tmp_path / "results" / "latents.json").is_file()
    with pytest.raises(ValueError, match="run `python -m benchmarks worlds` first"):
        latents.run(tmp_path / "results", replace(b, methods=("s3r_cr",)), tmp_path / "lat", tmp_path / "work")
    # `bench twins` reads them too: each encoder's response to the cue and nuisance twins, tested against random init
    from benchmarks import twins

    t = twins.run(tmp_path / "results", b, tmp_path / "work")
    assert list(t["rows"]["pool"]) == ["mean_spectrum", "random", "s3r_local"] and "mean_spectrum" not in t["rows"]["layer3"]
    r = t["rows"]["pool"]["s3r_local"]
    assert set(r["p_vs_random"]) == set(twins.TWINS) and r["response"]["cue"] > 0 and r["d_prime"] >= 0
    assert "| local S3R |" in twins.twins_section(t) and (tmp_path / "results" / "twins.json").is_file()
    # `bench targets` probes what these encoders were trained to predict beside them, and tests one against the other
    from benchmarks import targets

    g = targets.run(tmp_path / "results", b, tmp_path / "tg", tmp_path / "work")["worlds"]["C"]
    assert list(g["probe"]["1"]) == ["mean_spectrum", "random", "target_cr", "target_map", "s3r_local"]
    assert "p_target_vs_encoder" in g["probe"]["1"]["s3r_local"] and "p_vs_random" in g["probe"]["1"]["target_map"]
    assert set(g["r2"]["target_cr"]) == set(latents.VARIABLES) and set(g["cr_l1"]) >= {"band_mean", "class_mean"}
    assert g["split_half"]["ratio"] > 0 and set(g["split_half_by_size"]) == {"40", "64", "128"}
    assert "local S3R's map target" in targets.targets_section(json.loads((tmp_path / "results" / "targets.json")
                                                                          .read_text()))


def test_ridge_r2_reads_a_linear_variable_and_not_noise():
    """`bench latents`' read-out: a variable that is a linear function of the features gets R^2 near 1, one
    independent of them R^2 near or below 0; the penalty comes from the validation split."""
    from benchmarks.latents import ridge_r2

    rng = np.random.default_rng(0)
    x = {s: rng.standard_normal((n, 8)) for s, n in (("train", 200), ("val", 100), ("test", 200))}
    y = {s: v @ np.arange(8.0) + 0.01 * rng.standard_normal(len(v)) for s, v in x.items()}
    r2, alpha, err = ridge_r2(x, y)
    assert r2 > 0.99 and alpha <= 1.0 and err.shape == (200,)
    noise = {s: rng.standard_normal(len(v)) for s, v in x.items()}
    assert ridge_r2(x, noise)[0] < 0.05


def test_the_probed_targets_are_the_ones_training_regresses():
    """`bench targets` probes S3R-CR's beta~ of the whole crop and local S3R's per-patch beta~ (mean and std over the
    patches): row b of each must be what the objectives compute for target band b."""
    from benchmarks.targets import target_features
    from s3r_zoo.pretrain.local import patch_coefficient_targets

    rng = np.random.default_rng(0)
    x = rng.uniform(0.2, 1.0, size=(3, 6, 36, 36)).astype(np.float32)  # 36 px: a 4-px margin past the 16-px patches
    t = target_features(x, patch=16)
    off = ~np.eye(6, dtype=bool)
    for band in range(6):
        b = torch.full((3,), band)
        cr = coefficient_targets(torch.from_numpy(x), b).numpy()
        per = patch_coefficient_targets(torch.from_numpy(x), b, 16).numpy().reshape(3, 6, -1)  # (N, B, patches)
        full = np.zeros((3, 6, 6))
        full[:, off] = t["target_cr"]
        np.testing.assert_allclose(full[:, band], cr, atol=1e-6)  # float32 Gram sums in another order
        mean, std = np.zeros((3, 6, 6)), np.zeros((3, 6, 6))
        mean[:, off], std[:, off] = t["target_map"][:, :30], t["target_map"][:, 30:]
        np.testing.assert_allclose(mean[:, band], per.mean(-1), atol=1e-6)  # float32 Gram sums in another order
        np.testing.assert_allclose(std[:, band], per.std(-1), atol=1e-6)  # float32 Gram sums in another order


def test_the_pretext_reward_credits_a_class_only_where_the_targets_depend_on_it():
    """`bench targets`' CR L1 of image-blind predictors: where beta~ is the class's mean plus noise, knowing the class
    (class mean, or a ridge from the draws and the class) removes most of the band-mean baseline's loss; where beta~
    does not depend on the class, it removes nothing."""
    from benchmarks.targets import pretext_reward

    rng = np.random.default_rng(0)
    y = {s: rng.integers(0, 2, n) for s, n in (("train", 300), ("val", 100), ("test", 300))}
    draws = {s: rng.normal(size=(len(v), 3)) for s, v in y.items()}
    spectra = {s: rng.normal(size=(len(v), 5)) for s, v in y.items()}
    shift = rng.normal(size=12)
    for dep, low, high in ((1.0, 0.5, 1.0), (0.0, -0.05, 0.05)):
        t = {s: dep * np.outer(v, shift) + 0.1 * rng.normal(size=(len(v), 12)) for s, v in y.items()}
        r = pretext_reward(t, y, 4, range(4), spectra, draws)
        assert low < 1 - r["class_mean"] / r["band_mean"] < high
        assert low < 1 - r["draws_and_class"] / r["band_mean"] < high
        assert abs(1 - r["mean_spectrum"] / r["band_mean"]) < 0.05  # the spectra here carry nothing


def test_split_half_agreement_tells_content_from_pixel_noise():
    """`bench targets`' split-half measure: cubes that each mix their own materials give the two checkerboard halves
    of a cube far more similar beta~ than the band mean is (ratio well below 1); the same kind of cubes drowned in
    pixel noise give halves that agree no better than with the band mean (ratio near or above 1)."""
    from benchmarks.targets import split_half

    rng = np.random.default_rng(0)

    def cubes(noise: float) -> np.ndarray:
        x = np.stack([np.einsum("hwk,kb->bhw", rng.dirichlet(np.ones(12), size=(32, 32)), rng.uniform(0.2, 1.0, (12, 8)))
                      for _ in range(30)])  # each cube its own 12 materials' spectra, 8 bands
        return (x + noise * rng.normal(size=x.shape)).astype(np.float32)

    assert split_half({s: cubes(0.0) for s in ("train", "val", "test")}, range(8))["ratio"] < 0.3
    assert split_half({s: cubes(0.3) for s in ("train", "val", "test")}, range(8))["ratio"] > 0.9


def test_cue_metrics_tell_a_consistent_cue_from_a_scattered_one():
    """`bench twins`' measures: a cue that moves every cube's features the same way along one axis gives
    consistency near 1 and a d' of its size over the cubes' spread along that axis; a cue that moves each cube in
    its own random direction gives consistency near 0 and d' near 0 with the same response."""
    from benchmarks.twins import cue_metrics

    rng = np.random.default_rng(0)
    f = {s: rng.standard_normal((200, 16)) for s in ("train", "test")}
    high = {s: rng.random(200) < 0.5 for s in ("train", "test")}
    step = np.zeros(16)
    step[3] = 2.0  # the high-SO2 cube's twin lies 2 units (2 spreads) along axis 3
    axis = {**f, **{f"{s}_cue": f[s] + np.where(high[s][:, None], step, -step) for s in ("train", "test")},
            "test_nuisance": f["test"]}
    m = cue_metrics(axis, high["train"], high["test"])
    assert m["consistency"] > 0.99 and 1.6 < m["d_prime"] < 2.4 and m["response"]["nuisance"] == 0.0
    scattered = {**axis, **{f"{s}_cue": f[s] + 2.0 * rng.standard_normal((200, 16)) / 4 for s in ("train", "test")}}
    s = cue_metrics(scattered, high["train"], high["test"])
    assert s["consistency"] < 0.2 and s["d_prime"] < 0.3 and s["response"]["cue"] > 0.3 * m["response"]["cue"]


def test_the_worlds_section_compares_the_release_candidate_with_the_released_recipe():
    """The v3 rule's comparison in RESULTS: the candidate minus S3R-CR on every row both have, with the paired test
    over the same test cubes; rows only one of them has are left out."""
    from benchmarks import worlds

    a, ref = worlds.RELEASE_PAIR
    good, bad = [1.0] * 14 + [0.0] * 6, [0.0] * 20  # 70 % vs 0 %: 14 cubes differ, all the same way
    row = lambda pc: {"mean": 100 * float(np.mean(pc)), "std": 0.0, "per_cube": pc}  # noqa: E731
    p = {"name": "worlds", "budget": {"preset": "x", "n": 20, "size": 8, "magnification": 1, "split": [1], "model": "m",
                                      "steps": 1, "min_steps": 1, "seeds": 1}, "date": "d", "complete": True,
         "labels": {}, "worlds": {"C": {"probe": {"1": {a: row(good), ref: row(bad)}}, "probe_layer3": {},
                                        "finetune": {"0.1": {a: row(good)}}}}}
    text = worlds.worlds_section(p)
    lines = [x for x in text.splitlines() if x.startswith("| C |")]
    assert len(lines) == 1 and "| probe | 100% | +70.0 |" in lines[0]
    assert float(lines[0].split("|")[-2]) < 0.05


def test_long_curves_keep_their_own_result_and_runs(tmp_path):
    """`bench long_curves` runs the worlds harness under its own name: its JSON, plot and RESULTS section are its
    own and its runs live in their own work folder, so it never overwrites worlds.json or a cached worlds run;
    its cpu budget is world C at three times the worlds budget's steps, for the methods named in NOTES."""
    from dataclasses import replace

    from benchmarks import run_bench, worlds

    cpu = worlds.LONG_CURVES["cpu"]
    assert cpu.worlds == ("C",) and cpu.steps == 3 * worlds.CPU.steps and set(cpu.methods) == {"s3r_cr", "s3r_local"}
    b = replace(worlds.LONG_CURVES["quick"], n=24, size=32, methods=(), finetune_epochs=1, min_steps=2, seeds=1,
                finetune_fractions=(1.0,), probe_fractions=(1.0,))
    p = worlds.run(tmp_path / "results", b, tmp_path / "work")
    assert p["name"] == "long_curves" and (tmp_path / "results" / "long_curves.json").is_file()
    assert not (tmp_path / "results" / "worlds.json").exists()
    assert worlds.worlds_section(p).startswith("## Long learning curves, world C")
    with pytest.raises(ValueError, match="unknown part"):
        run_bench(["long_curve"], results=str(tmp_path / "r2"))
