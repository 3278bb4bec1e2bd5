"""``s3r-zoo predict``: a fine-tuned checkpoint on new cubes reproduces finetune's test accuracy; tiles; refusals."""

import csv
import json

import numpy as np
import pytest
import timm

import s3r_zoo
from s3r_zoo.cli import main
from s3r_zoo.data.simulated_sets import write_dataset
from s3r_zoo.finetune import FinetuneSpec, run_finetune


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("p")
    write_dataset(root / "d", "pdac_like", n=40, size=40, seed=3, difficulty=0.0)
    agg = run_finetune(FinetuneSpec(data=str(root / "d"), out=str(root / "ft"), epochs=3, batch_size=8, lr=1e-3,
                                    max_degrees=0, noise_std=0))
    return root, agg["runs"][0]


def test_predict_reproduces_the_finetune_test_accuracy(tuned, tmp_path, capsys):
    root, run = tuned
    ckpt = root / "ft" / "seed_0" / "best.safetensors"
    assert main(["predict", str(root / "d" / "test.txt"), "--checkpoint", str(ckpt), "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "predict.json").read_text())
    assert summary["accuracy"] == pytest.approx(run["accuracy"], abs=1e-9) and summary["tiled_cubes"] == 0
    with open(tmp_path / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["cubes"] and set(rows[0]) >= {"path", "label", "predicted", "windows"}
    probs = np.array([[float(r[k]) for k in r if k.startswith("p_")] for r in rows])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert f"accuracy {100 * run['accuracy']:.2f} %" in capsys.readouterr().out


def test_a_scene_larger_than_the_training_crop_is_tiled_with_a_heatmap(tuned, tmp_path):
    root, _ = tuned
    write_dataset(tmp_path / "big", "pdac_like", n=4, size=96, seed=5, difficulty=0.0)
    cube = sorted((tmp_path / "big").rglob("*.npy"))[0]
    ckpt = root / "ft" / "seed_0" / "best.safetensors"
    assert main(["predict", str(cube), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o")]) == 0
    with open(tmp_path / "o" / "predictions.csv") as f:
        row = next(csv.DictReader(f))
    assert row["windows"] == "16"  # 40-px windows every 20 px over 96 px: starts 0, 20, 40, 56
    assert (tmp_path / "o" / "heatmaps" / f"{cube.name}.png").stat().st_size > 5000
    assert main(["predict", str(cube), "--checkpoint", str(ckpt), "--out", str(tmp_path / "w"), "--tile", "0"]) == 0
    assert json.loads((tmp_path / "w" / "predict.json").read_text())["tiled_cubes"] == 0


def test_predict_refusals(tuned, tmp_path, capsys):
    root, _ = tuned
    enc = timm.create_model("s3r_resnet18", in_chans=40, num_classes=0)
    s3r_zoo.save_checkpoint(tmp_path / "enc.safetensors", enc.state_dict(), architecture="resnet18", objective="cr",
                            data="t")
    assert main(["predict", str(root / "d" / "test.txt"), "--checkpoint", str(tmp_path / "enc.safetensors"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "not a fine-tuned checkpoint (no class names in its metadata)" in capsys.readouterr().err
    np.save(tmp_path / "six.npy", np.zeros((40, 40, 6), np.float32))
    ckpt = root / "ft" / "seed_0" / "best.safetensors"
    assert main(["predict", str(tmp_path / "six.npy"), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o")]) == 2
    assert "six.npy: 6 bands, but the checkpoint was fine-tuned on 40" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_heatmaps_map_one_fixed_class_with_its_own_range_and_records_say_what_was_done(tuned, tmp_path, monkeypatch):
    """Two classes: every map shows P(second class) (not the predicted class's probability, which swapped meaning
    from image to image), its colour scale spans the map's own range, the title names predicted and true class;
    the CSV keeps the class folder of a path listed beside the split file, and the records name tile and stride."""
    from s3r_zoo.predict import run as predict_module

    root, _ = tuned
    write_dataset(tmp_path / "big", "pdac_like", n=4, size=96, seed=5, difficulty=0.0)
    seen = []
    real = predict_module._heatmap

    def spy(cube, boxes, probs, classes, title, path):
        seen.append((classes, title))
        return real(cube, boxes, probs, classes, title, path)

    monkeypatch.setattr(predict_module, "_heatmap", spy)
    ckpt = root / "ft" / "seed_0" / "best.safetensors"
    assert main(["predict", str(tmp_path / "big" / "train.txt"), "--checkpoint", str(ckpt), "--out",
                 str(tmp_path / "o")]) == 0
    with open(tmp_path / "o" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert all("/" in r["path"] and r["tile"] == "40" for r in rows)  # class folder kept; the tile used
    assert seen and all(c == ["carcinoma", "normal"] or c == ["normal", "carcinoma"] for c, _ in seen)
    assert all("predicted" in t and "; true " in t and "windows of 40 px" in t for _, t in seen)
    summary = json.loads((tmp_path / "o" / "predict.json").read_text())
    assert summary["tile"].startswith("auto: whole cubes up to the training crop (40 px)")
    assert summary["stride"] == "half a window"


def test_a_cubes_probabilities_do_not_depend_on_the_other_cubes(tuned, tmp_path):
    root, _ = tuned
    ckpt = root / "ft" / "seed_0" / "best.safetensors"
    first = (root / "d" / "test.txt").read_text().splitlines()[0]
    (root / "d" / "one.txt").write_text(first + "\n")
    assert main(["predict", str(root / "d" / "one.txt"), "--checkpoint", str(ckpt), "--out", str(tmp_path / "1")]) == 0
    assert main(["predict", str(root / "d" / "test.txt"), "--checkpoint", str(ckpt), "--out", str(tmp_path / "n")]) == 0
    with open(tmp_path / "1" / "predictions.csv") as f, open(tmp_path / "n" / "predictions.csv") as g:
        assert next(csv.DictReader(f)) == next(csv.DictReader(g))  # the checkpoint's statistics, never the batch's
