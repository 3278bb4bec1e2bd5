"""The powered label-efficiency benchmark: probe, spectral baselines, statistics and the quick run."""

import json
from dataclasses import replace

import numpy as np
import pytest

from benchmarks import labels, run_bench
from benchmarks.report import write_report
from s3r_zoo.evaluate import fit_probe

# the quick budget made smaller still: 40 cubes of 24 px (16 / 8 / 16), one epoch each
TINY = labels.LabelBudget(presets={"pdac_like": 40}, size=24, pool=16, pretrain_epochs=1, seeds=2,
                          probe_fractions=(0.25, 1.0), finetune_fractions=(1.0,), finetune_epochs=1, batch_size=8,
                          probe_methods=("s3r_cr", "simsiam_all"), pool_methods=("s3r_cr",),
                          finetune_methods=("scratch", "s3r_cr"), large_methods=("scratch", "s3r_cr"))


def test_probe_separates_separable_classes_and_is_deterministic():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    x = rng.normal(size=(120, 8)) + 3 * np.eye(3, 8)[y]  # class c shifts feature c
    tr, va = np.arange(0, 120, 2), np.arange(1, 120, 2)
    p = fit_probe(x[tr], y[tr], x[va], y[va], 3)
    assert p.val_accuracy > 0.9 and (p.predict(x[va]) == y[va]).mean() == p.val_accuracy
    q = fit_probe(x[tr], y[tr], x[va], y[va], 3)
    np.testing.assert_array_equal(p.weight, q.weight)  # same inputs, same probe
    noise = fit_probe(rng.normal(size=(60, 8)), y[tr], rng.normal(size=(60, 8)), y[va], 3)
    assert noise.val_accuracy < 0.6  # nothing to learn: near chance (1/3)


def test_probe_refuses_mismatched_features():
    with pytest.raises(ValueError, match="features: expected"):
        fit_probe(np.zeros((4, 3)), [0, 1, 0, 1], np.zeros((4, 2)), [0, 1, 0, 1], 2)


def test_probe_cache_reuses_only_the_same_computation(tmp_path):
    encoder, path, calls = tmp_path / "encoder.safetensors", tmp_path / "probes" / "row.json", []
    encoder.write_bytes(b"weights")

    def compute():
        calls.append(1)
        return {0.25: [[True, False], [False, False]], 1.0: [[True, True], [True, False]]}

    first = labels.probe_cached(path, encoder, TINY, compute)
    assert labels.probe_cached(path, encoder, TINY, compute) == first == compute() and len(calls) == 2
    encoder.write_bytes(b"other weights")  # another encoder at the same path: computed again
    labels.probe_cached(path, encoder, TINY, compute)
    labels.probe_cached(path, encoder, replace(TINY, seeds=3), compute)  # another budget: again
    labels.probe_cached(path, None, TINY, compute)  # a row without an encoder file
    assert len(calls) == 5 and labels.probe_cached(path, None, TINY, compute) == first and len(calls) == 5


def test_quick_label_benchmark_runs_pairs_and_reports(tmp_path, monkeypatch):
    res, work = tmp_path / "bench" / "results", tmp_path / "work"
    b = TINY
    p = labels.run(res, b, work)
    t = p["tables"]["pdac_like"]
    assert t["split_sizes"] == {"train": 16, "val": 8, "test": 16}
    for f in ("0.25", "1"):
        rows = t["probe"][f]
        assert {"mean_spectrum", "pixel_spectra", "random", "s3r_cr", "simsiam_all", "s3r_cr@pool"} == set(rows)
        for r in rows.values():
            assert len(r["runs"]) == b.seeds and len(r["per_cube"]) == 16 and r["ci95"][0] <= r["mean"] <= r["ci95"][1]
        assert "p_vs_random" in rows["s3r_cr"] and "p_vs_best_other" in rows["random"]
    assert set(t["finetune"]["1"]) == {"scratch", "s3r_cr"} and "p_vs_scratch" in t["finetune"]["1"]["s3r_cr"]
    large = t["finetune_large"]["1"]  # the ResNet-50 rows: own runs, tested against their scratch and the R18 row
    assert set(large) == {"scratch", "s3r_cr"} and "p_vs_scratch" in large["s3r_cr"]
    assert large["scratch"]["base_model_mean"] == t["finetune"]["1"]["scratch"]["mean"]
    assert (work / "pretrain_s3r_resnet50").is_dir() and (work / "finetune_s3r_resnet50").is_dir()
    spec = json.loads(next((work / "finetune_s3r_resnet50").rglob("aggregate.json")).read_text())["spec"]
    assert spec["model"] == "s3r_resnet50"
    conv = t["convergence"]["curves"]
    assert set(conv) == {"s3r_cr", "simsiam_all"}
    for c in conv.values():  # epoch 0 = random-init features, then one point per pre-training epoch
        assert [q["epoch"] for q in c["points"]] == [0, 1] and c["points"][0]["time_s"] == 0
        assert c["t95_own_s"] is not None and c["final"] == c["points"][-1]["accuracy"]
    assert conv["simsiam_all"]["t95_own_over_simsiam"] in (None, 1.0)
    for png in ("labels_pdac_like.png", "labels_convergence_pdac_like.png"):
        assert (res / png).stat().st_size > 10_000
    saved = json.loads((res / "labels.json").read_text())
    assert saved["complete"] and "versions" in saved and saved["budget"]["seeds"] == b.seeds
    text = write_report(res).read_text()
    assert "## Label efficiency, powered" in text and "| 25% labels | 100% labels |" in text
    assert "labels_pdac_like.png" in text and "Best per column, paired test against the runner-up" in text
    assert "**Full fine-tuning, s3r_resnet50**" in text and "s3r_resnet50 against s3r_resnet18, same method" in text
    for png in ("labels_pdac_like.png", "labels_convergence_pdac_like.png"):  # `bench report` redraws them
        (res / png).unlink()
    run_bench(["report"], results=str(res))
    assert (res / "labels_pdac_like.png").is_file() and (res / "labels_convergence_pdac_like.png").is_file()

    def recompute(*args, **kwargs):
        raise AssertionError("a cached probe was computed again")

    for name in ("features", "pixel_runs", "probe_runs"):  # a second invocation reads every probe row back
        monkeypatch.setattr(labels, name, recompute)
    again = labels.run(tmp_path / "again", b, work)["tables"]["pdac_like"]
    assert again["probe"] == t["probe"] and again["convergence"] == t["convergence"]
    assert again["finetune"] == t["finetune"]


def test_quick_transfer_compares_stems_on_the_same_cubes(tmp_path):
    from benchmarks import transfer

    res, work = tmp_path / "results", tmp_path / "work"
    p = transfer.run(res, TINY, work)
    assert set(p["targets"]) == set(transfer.TARGETS)
    for name, t in p["targets"].items():
        rows = t["probe"]["1"]
        assert set(rows) == {"wavelength", "repeat", "random_stem", "target", "random"}
        assert "p_vs_wavelength" in rows["repeat"] and len(rows["repeat"]["per_cube"]) == 16
        assert set(t["finetune"]["1"]) == {"wavelength", "repeat", "random_stem", "target", "scratch"}
    # the adapted stems differ where they should: repeat ignores wavelengths, random_stem only changes conv1
    from s3r_zoo.checkpoint import load_checkpoint
    sd = {h: load_checkpoint(work / "transfer" / f"{h}_32b.safetensors")[0] for h in ("wavelength", "repeat",
                                                                                        "random_stem")}
    assert sd["wavelength"]["conv1.weight"].shape[1] == 32
    assert not np.allclose(sd["wavelength"]["conv1.weight"], sd["repeat"]["conv1.weight"])
    assert not np.allclose(sd["wavelength"]["conv1.weight"], sd["random_stem"]["conv1.weight"])
    np.testing.assert_array_equal(sd["wavelength"]["layer1.0.conv1.weight"], sd["random_stem"]["layer1.0.conv1.weight"])
    assert (res / "transfer.png").stat().st_size > 10_000 and p["complete"]
    assert "## Cross-sensor transfer" in write_report(res).read_text()
