"""`s3r-zoo evaluate`: the label-efficiency protocol on a user's own labelled split."""

import json

import numpy as np
import pytest

from conftest import make_checkpoint
from s3r_zoo.cli import main
from s3r_zoo.data.simulated_sets import write_dataset
from s3r_zoo.evaluate import summarise_correct

TAG = "s3r_resnet18.cr_hims41_v2"
SMALL = ["--seeds", "3", "--epochs", "1", "--min-steps", "3", "--batch-size", "8", "--probe-fractions", "0.25", "1",
         "--finetune-fractions", "0.5", "1"]


@pytest.fixture(scope="module")
def pdac(tmp_path_factory):
    """A simulated pdac_like split: 36 cubes of 24 px, 40 bands 450-750 nm (18 / 7 / 11)."""
    out = tmp_path_factory.mktemp("pdac") / "data"
    write_dataset(out, "pdac_like", n=36, size=24, seed=0, difficulty=0.0, magnification=0.75,
                  split=(0.5, 0.2, 0.3))
    return out


def test_scratch_vs_a_tag_vs_random_init_paired_with_table_json_and_png(pdac, tmp_path, capsys, monkeypatch):
    make_checkpoint(tmp_path / "repo_weights" / f"{TAG}.safetensors")  # the tag's file (records: no sha256)
    out = tmp_path / "ev"
    assert main(["evaluate", "--data", str(pdac), "--encoders", TAG, "--out", str(out)] + SMALL) == 0
    printed = capsys.readouterr().out
    assert "linear probe" in printed and "fine-tuning" in printed and TAG in printed and "mean_spectrum" in printed
    p = json.loads((out / "evaluate.json").read_text())
    assert p["complete"] and p["model"] == "s3r_resnet18" and (out / "evaluate.png").is_file()
    n_test = p["split_sizes"]["test"]
    assert set(p["probe"]) == {"0.25", "1"} and set(p["finetune"]) == {"0.5", "1"}
    for f, rows in p["probe"].items():
        assert set(rows) == {"mean_spectrum", "random", TAG}
        for name, r in rows.items():
            assert len(r["runs"]) == 3 and len(r["per_cube"]) == n_test  # 3 seeds, paired over the same cubes
            assert ("p_vs_random" in r) == (name != "random") and "p_vs_best_other" in r
    for f, rows in p["finetune"].items():
        assert set(rows) == {"scratch", TAG}
        assert all(s >= 3 for r in rows.values() for s in r["steps"])  # the step floor holds at every fraction
        assert "p_vs_scratch" in rows[TAG]
    # the numbers are the shared statistics of the cached per-cube answers
    saved = json.loads((out / "probes" / f"{TAG}.json").read_text())
    assert p["probe"]["1"][TAG]["mean"] == summarise_correct(saved["runs"]["1"])["mean"]
    # the same label subsets for every row: seed k of a probe keeps what seed k of fine-tuning kept
    from s3r_zoo.data.datasets import read_split_file
    from s3r_zoo.finetune import stratified_fraction

    items, classes = read_split_file(pdac / "train.txt")
    kept = [len(stratified_fraction([lbl for _, lbl in items], 0.5, classes, seed)) for seed in range(3)]
    ft = json.loads((out / "finetune" / "scratch_f0.5" / "aggregate.json").read_text())
    assert [r["train_size"] for r in ft["runs"]] == kept and kept[0] < len(items)

    def boom(*a, **k):
        raise AssertionError("recomputed a finished row")

    monkeypatch.setattr("s3r_zoo.evaluate.run.run_finetune", boom)
    monkeypatch.setattr("s3r_zoo.evaluate.run.probe_runs", boom)
    assert main(["evaluate", "--data", str(pdac), "--encoders", TAG, "--out", str(out)] + SMALL) == 0
    assert json.loads((out / "evaluate.json").read_text())["probe"] == p["probe"]


def test_class_folders_are_split_by_evaluate_and_a_file_encoder_is_named_by_its_file(tmp_path, ckpt18):
    from s3r_zoo.data.synthetic import simulate_cube

    for i in range(16):
        (tmp_path / "scans" / ("dense" if i % 2 else "pale")).mkdir(parents=True, exist_ok=True)
        cube = simulate_cube("pdac_like", i % 2, 24, seed=i, difficulty=0.0)
        np.save(tmp_path / "scans" / ("dense" if i % 2 else "pale") / f"s{i}.npy", cube.data)
    out = tmp_path / "ev"
    assert main(["evaluate", "--data", str(tmp_path / "scans"), "--encoders", str(ckpt18[0]), "--wavelengths"]
                + [str(450 + 300 * i / 39) for i in range(40)]
                + ["--out", str(out), "--no-finetune", "--seeds", "2", "--probe-fractions", "1"]) == 0
    p = json.loads((out / "evaluate.json").read_text())
    assert set(p["probe"]["1"]) == {"mean_spectrum", "random", ckpt18[0].name} and not p["finetune"]
    assert all((out / "split" / f"{s}.txt").is_file() for s in ("train", "val", "test"))
    assert "no patient IDs" in p["data"] and p["classes"] == ["dense", "pale"]


def _refused(argv, out, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()  # a refused run writes nothing
    return err


def test_bad_inputs_give_one_line_and_write_nothing(pdac, tmp_path, capsys):
    out = tmp_path / "ev"
    one = tmp_path / "one_class"
    one.mkdir()
    for s in ("train", "val", "test"):  # every cube of the split is one class
        lines = [ln for ln in (pdac / f"{s}.txt").read_text().splitlines() if ln.endswith(" normal")]
        (one / f"{s}.txt").write_text("\n".join(f"{pdac / ln.rsplit(' ', 1)[0]} normal" for ln in lines) + "\n")
    err = _refused(["evaluate", "--data", str(one), "--out", str(out)], out, capsys)
    assert "holds 1 class(es) ['normal']" in err and "at least 2 classes" in err

    far = tmp_path / "nir.safetensors"  # pre-trained on 41 bands at 900-1700 nm: none of the data's 450-750 nm
    make_checkpoint(far, wavelengths=[900 + 20 * i for i in range(41)])
    err = _refused(["evaluate", "--data", str(pdac), "--encoders", str(far), "--out", str(out)], out, capsys)
    assert "900-1700 nm" in err and "450-750 nm" in err and "no band in common" in err

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    err = _refused(["evaluate", "--data", str(pdac), "--encoders", str(broken), "--out", str(out)], out, capsys)
    assert f"--encoders {broken}" in err
    err = _refused(["evaluate", "--data", str(pdac), "--encoders", "s3r_resnet18.nope_v9", "--out", str(out)], out,
                   capsys)
    assert "--encoders s3r_resnet18.nope_v9" in err
    err = _refused(["evaluate", "--data", str(pdac), "--probe-fractions", "0", "--out", str(out)], out, capsys)
    assert "--probe-fractions: expected fractions in (0, 1]" in err


def test_finetune_step_floor_adds_epochs_not_validations(pdac, tmp_path):
    from s3r_zoo.finetune import FinetuneSpec, run_finetune

    agg = run_finetune(FinetuneSpec(data=str(pdac), out=str(tmp_path / "ft"), epochs=2, min_steps=12, batch_size=8,
                                    label_fraction=0.5, crop=24))
    run = agg["runs"][0]
    assert run["train_size"] == 8 and run["steps"] == 12 and run["epochs"] == 12  # 1 step per epoch, 12 epochs
    vals = [json.loads(ln) for ln in (tmp_path / "ft" / "seed_0" / "metrics.jsonl").read_text().splitlines()
            if json.loads(ln)["kind"] == "val"]
    assert [v["epoch"] for v in vals] == [6, 12]  # validated about --epochs times
