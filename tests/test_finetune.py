"""Fine-tuning: protocol pieces, linear probe, label fraction, aggregation, resume, bad input."""

import json

import numpy as np
import pytest
import timm
import torch

from s3r_zoo.cli import main
from s3r_zoo.data.simulated_sets import write_dataset
from s3r_zoo.finetune import ClassifierObjective, FinetuneSpec, run_finetune, stratified_fraction
from s3r_zoo.metrics import aggregate, binary_auroc, classification_metrics


@pytest.fixture(scope="module")
def pdac(tmp_path_factory):
    root = tmp_path_factory.mktemp("pdac")
    write_dataset(root, "pdac_like", n=80, size=48, seed=0, difficulty=0.0, magnification=0.75,
                  stain_balance=0)  # easy: whole glands in 48 px, and the stain differs between classes too
    return root


def test_finetune_beats_chance(pdac, tmp_path):
    agg = run_finetune(FinetuneSpec(data=str(pdac), out=str(tmp_path), epochs=10, batch_size=16, crop=48, lr=1e-3,
                                    max_degrees=0, noise_std=0))
    run = agg["runs"][0]
    assert run["accuracy"] >= 0.75 and run["auroc"] > 0.75, run  # chance: 0.5 (two balanced classes)
    assert 1 <= run["best_epoch"] <= 10
    for f in ("best.safetensors", "best.json", "metrics.json", "confusion_matrix.png", "metrics.jsonl",
              "training_curve.png"):
        assert (tmp_path / "seed_0" / f).is_file()
    vals = [json.loads(line) for line in (tmp_path / "seed_0" / "metrics.jsonl").read_text().splitlines()]
    vals = [v for v in vals if v["kind"] == "val"]
    val_loss = [v["loss"] for v in vals]
    assert len(vals) == 10 and run["best_val_loss"] == min(val_loss)  # selected by validation loss
    assert run["best_epoch"] == 1 + val_loss.index(min(val_loss))  # ties keep the earlier epoch
    assert run["best_val_accuracy"] == vals[run["best_epoch"] - 1]["accuracy"]
    assert json.loads((tmp_path / "seed_0" / "best.json").read_text())["epoch"] == run["best_epoch"]


def test_best_weights_follow_the_lowest_validation_loss_every_val_every_epochs(tmp_path):
    """The trainer's one best-weights mechanism, as fine-tuning uses it: validated every 2 epochs and at the
    last, the lowest loss kept (a tie keeps the earlier epoch), nothing decided between validations."""
    from s3r_zoo.data.simulated_sets import SyntheticHSI
    from s3r_zoo.train import TrainConfig, Trainer

    ds = SyntheticHSI("pdac_like", n=4, size=16, seed=0)
    obj = ClassifierObjective(timm.create_model("s3r_resnet18", in_chans=40, num_classes=2), [0.5] * 40, [0.2] * 40)
    scripted, seen = iter([0.9, 0.5, 0.5]), []

    def validate(o):
        seen.append(len(seen))
        return {"loss": next(scripted)}

    cfg = TrainConfig(epochs=5, batch_size=4, patience=10**9, min_delta=0.0, val_every=2, amp="none")
    s = Trainer(cfg, tmp_path, device="cpu").fit(obj, ds, validate=validate)
    assert len(seen) == 3 and s["best_epoch"] == 4 and s["best_loss"] == 0.5  # epochs 2, 4 and the last (5)
    assert [h.get("val", {}).get("loss") for h in s["history"]] == [None, 0.9, None, 0.5, 0.5]


def test_linear_probe_freezes_encoder(pdac, tmp_path):
    ckpt = tmp_path / "enc.safetensors"
    import s3r_zoo

    torch.manual_seed(0)
    enc = timm.create_model("s3r_resnet18", in_chans=40, num_classes=0)
    s3r_zoo.save_checkpoint(ckpt, enc.state_dict(), architecture="resnet18", objective="cr", data="t",
                            wavelengths_nm=np.linspace(450, 750, 40).tolist())
    run_finetune(FinetuneSpec(data=str(pdac), out=str(tmp_path / "o"), init=str(ckpt), linear_probe=True,
                              epochs=2, batch_size=8, crop=32, lr=1e-2))
    best, _ = s3r_zoo.load_checkpoint(tmp_path / "o" / "seed_0" / "best.safetensors")
    for k, v in enc.state_dict().items():  # weights AND BatchNorm running stats unchanged
        assert torch.equal(best[k], v), k
    assert not torch.equal(best["fc.weight"], torch.zeros_like(best["fc.weight"]))


def test_label_fraction_is_stratified():
    labels = [0] * 50 + [1] * 30 + [2] * 20
    keep = stratified_fraction(labels, 0.1, ["a", "b", "c"], seed=0)
    kept = [labels[i] for i in keep]
    assert (kept.count(0), kept.count(1), kept.count(2)) == (5, 3, 2)
    assert keep == stratified_fraction(labels, 0.1, ["a", "b", "c"], seed=0)
    tiny = stratified_fraction(labels, 0.02, ["a", "b", "c"], seed=0)  # round(0.4) = 0 cubes of 'c': one kept
    assert sorted(np.asarray(labels)[tiny].tolist()) == [0, 1, 2]
    with pytest.raises(ValueError, match="expected 0 < F <= 1"):
        stratified_fraction(labels, 1.5, ["a", "b", "c"], seed=0)


def test_aggregate_mean_std():
    agg = aggregate([{"accuracy": 0.9}, {"accuracy": 0.8}, {"accuracy": 0.7, "auroc": None}])
    assert agg["accuracy"]["mean"] == pytest.approx(0.8)
    assert agg["accuracy"]["std"] == pytest.approx(np.std([0.9, 0.8, 0.7], ddof=1))
    assert "auroc" not in agg


def test_metrics():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    m = classification_metrics(logits, np.array([0, 1, 1, 1]), ["n", "t"])
    assert m["accuracy"] == 0.75 and m["confusion_matrix"] == [[1, 0], [1, 2]]
    assert m["balanced_accuracy"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["per_class"]["t"]["precision"] == 1.0 and m["per_class"]["n"]["precision"] == 0.5
    assert binary_auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert binary_auroc(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.5)


def test_resume_continues(pdac, tmp_path):
    spec = dict(data=str(pdac), out=str(tmp_path), epochs=1, batch_size=8, crop=32)
    run_finetune(FinetuneSpec(**spec))
    agg = run_finetune(FinetuneSpec(**{**spec, "epochs": 2}, resume=True))
    lines = (tmp_path / "seed_0" / "metrics.jsonl").read_text().splitlines()
    assert sum(json.loads(x)["kind"] == "val" for x in lines) == 2 and agg["runs"][0]["best_epoch"] in (1, 2)


def test_bad_inputs(pdac, tmp_path):
    with pytest.raises(FileNotFoundError, match="expected train.txt, val.txt and test.txt"):
        run_finetune(FinetuneSpec(data=str(tmp_path), out=str(tmp_path / "o")))
    bad = tmp_path / "bad"
    bad.mkdir()
    for s in ("train", "val", "test"):  # absolute paths, so only what we break is missing
        lines = (pdac / f"{s}.txt").read_text().splitlines()
        (bad / f"{s}.txt").write_text("".join(f"{pdac}/{line}\n" for line in lines))
    (bad / "val.txt").write_text("cubes/nope1.npy normal\ncubes/nope2.npy carcinoma\n")
    with pytest.raises(FileNotFoundError, match="2 listed files do not exist"):
        run_finetune(FinetuneSpec(data=str(bad), out=str(tmp_path / "o")))
    (bad / "val.txt").write_text((bad / "train.txt").read_text().replace("carcinoma", "adenoma"))
    with pytest.raises(ValueError, match="label 'adenoma' not in the classes"):
        run_finetune(FinetuneSpec(data=str(bad), out=str(tmp_path / "o2")))
    import s3r_zoo

    ckpt = tmp_path / "nowl.safetensors"
    s3r_zoo.save_checkpoint(ckpt, timm.create_model("resnet18", in_chans=41, num_classes=0).state_dict(),
                            architecture="resnet18", objective="cr", data="t")
    with pytest.raises(ValueError, match="does not record wavelengths; pass the data's band centres with --wavelengths"):
        run_finetune(FinetuneSpec(data=str(pdac), out=str(tmp_path / "o3"), init=str(ckpt), epochs=1, crop=32))


def test_cli_finetune(pdac, tmp_path, capsys):
    assert main(["finetune", "--data", str(pdac), "--epochs", "1", "--batch-size", "8", "--crop", "32",
                 "--seeds", "2", "--label-fraction", "0.5", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "(2 seed(s), init=scratch)" in out
    agg = json.loads((tmp_path / "aggregate.json").read_text())
    assert len(agg["runs"]) == 2 and agg["runs"][0]["train_size"] == 25  # half of each class of the 51 training cubes, rounded


@pytest.mark.parametrize("h,w,expected", [(48, 48, 48), (40, 56, 40), (512, 612, 256)])
def test_default_crop_fits_the_cubes(tmp_path, h, w, expected):
    """No --crop: whole cubes up to MAX_DEFAULT_CROP (the smallest side), never an error about the default."""
    from s3r_zoo.finetune import MAX_DEFAULT_CROP, default_crop

    items = []
    for i, (hh, ww) in enumerate([(h, w), (h + 8, w + 8)]):
        np.save(tmp_path / f"{i}.npy", np.zeros((hh, ww, 4), np.float16))
        items.append((tmp_path / f"{i}.npy", 0))
    assert default_crop(items, {}) == expected and MAX_DEFAULT_CROP == 256


def test_finetune_with_default_options_on_small_cubes(tmp_path, capsys):
    write_dataset(tmp_path / "d", "pdac_like", n=24, size=64, seed=1, difficulty=0.0)
    assert main(["finetune", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--epochs", "1"]) == 0
    assert json.loads((tmp_path / "o" / "seed_0" / "metrics.json").read_text())["crop"] == 64


def test_test_predictions_are_saved_per_cube_for_paired_tests(pdac, tmp_path):
    agg = run_finetune(FinetuneSpec(data=str(pdac), out=str(tmp_path), epochs=1, batch_size=16, crop=48))
    pred = agg["runs"][0]["test_predictions"]
    lines = (pdac / "test.txt").read_text().split()
    assert pred["paths"] == lines[0::2] and len(pred["labels"]) == len(pred["predicted"]) == len(lines) // 2
    correct = np.mean(np.array(pred["labels"]) == np.array(pred["predicted"]))
    assert correct == pytest.approx(agg["runs"][0]["accuracy"])


def test_a_tag_init_brings_its_model_and_the_report_prints_auroc_as_a_number(pdac, tmp_path, capsys):
    from conftest import make_checkpoint

    tag = "s3r_resnet50.cr_hims41_v2"
    make_checkpoint(tmp_path / "repo_weights" / f"{tag}.safetensors", arch="resnet50")
    assert main(["finetune", "--data", str(pdac), "--init", tag, "--epochs", "1", "--batch-size", "8", "--crop", "32",
                 "--out", str(tmp_path / "ft")]) == 0  # no --model: the tag names s3r_resnet50
    agg = json.loads((tmp_path / "ft" / "aggregate.json").read_text())
    assert agg["spec"]["model"] == "s3r_resnet50"
    captured = capsys.readouterr()
    out = captured.out
    assert "epoch 1/1: training loss" in captured.err and "held-out loss" in captured.err  # validation on the console
    auroc = next(line for line in out.splitlines() if line.startswith("auroc"))
    assert "%" not in auroc and 0 <= float(auroc.split()[1]) <= 1
    assert "seed 0: kept epoch 1 of 1" in out and "validation loss" in out
