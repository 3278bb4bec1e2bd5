"""`s3r-zoo release`: fp16 weights file, release record, byte-identical hub folder."""

import json
import shutil

import pytest
import timm
import torch
from conftest import VALIDATION, make_checkpoint

from s3r_zoo import load_checkpoint
from s3r_zoo.cli import main
from s3r_zoo.files import file_digest
from s3r_zoo.models.releases import RELEASES_FILE, load_releases


@pytest.fixture
def records(tmp_path):
    """A copy of the package's release records, for release to update."""
    path = tmp_path / "releases.json"
    shutil.copy(RELEASES_FILE, path)
    return path


def test_release_writes_fp16_record_and_hub_folder(tmp_path, capsys, records):
    run = tmp_path / "run"
    sd = make_checkpoint(run / "encoder.safetensors", extra={"final_loss": 0.25, "hardware": "cpu: test",
                                                            "wall_time_s": 12.5, "epochs": 3, "steps": 48,
                                                            "validation": VALIDATION},
                         recipe={"data": str(tmp_path / "where" / "cube.npy"), "lr": 3e-4})
    rc = main(["release", str(run), "--tag", "cr_hims41_v2", "--weights-dir", str(tmp_path / "w"),
               "--hub-dir", str(tmp_path / "hub"), "--records", str(records)])
    assert rc == 0, capsys.readouterr().err
    out = tmp_path / "w" / "s3r_resnet18.cr_hims41_v2.safetensors"
    rel_sd, info = load_checkpoint(out)
    assert all(v.dtype == torch.float16 for v in rel_sd.values() if v.is_floating_point())
    assert not any(k.startswith("fc.") for k in rel_sd)
    assert torch.equal(rel_sd["conv1.weight"], sd["conv1.weight"].half())
    assert info.extra["release"] == "s3r_resnet18.cr_hims41_v2"
    assert info.extra["recipe_file"] == "weights/recipes/s3r_resnet18.cr_hims41_v2.yaml"
    r = load_releases(records)[0]["s3r_resnet18.cr_hims41_v2"]
    assert (r.sha256, r.size) == file_digest(out) and r.dtype == "float16"
    assert r.bands.in_chans == 41 and r.bands.wavelengths_nm[0] == 380.0 and r.training["final_loss"] == 0.25
    assert r.recipe == "weights/recipes/s3r_resnet18.cr_hims41_v2.yaml"
    assert r.training["hardware"] == "cpu: test" and r.training["wall_time_s"] == 12.5
    assert r.training["steps"] == 48 and r.training["validation"]["metrics"]["cr_l1"] == 0.45
    # the recipe names the data file, never where it was on the training machine
    assert r.training["recipe"] == {"data": "cube.npy", "lr": 3e-4} and info.recipe["data"] == "cube.npy"
    assert str(tmp_path) not in records.read_text()
    # the hub copy is the same bytes, so one record guards both
    assert (tmp_path / "hub" / "model.safetensors").read_bytes() == out.read_bytes()
    m = timm.create_model(f"local-dir:{tmp_path / 'hub'}", pretrained=True)
    assert torch.equal(m.conv1.weight, sd["conv1.weight"].half().float())


def test_release_keeps_other_records(tmp_path, records):
    before = load_releases(records)[0]
    for tag, seed in (("cr_hims41_v2", 0), ("br_hims41_v2", 1)):
        make_checkpoint(tmp_path / tag / "encoder.safetensors", seed=seed, extra={"validation": VALIDATION})
        assert main(["release", str(tmp_path / tag), "--tag", tag, "--weights-dir", str(tmp_path / "w"),
                     "--records", str(records)]) == 0
    after = load_releases(records)[0]
    assert list(after) == list(before)  # same tags, same order (the first of a model stays its default)
    for name in after:
        changed = name in ("s3r_resnet18.cr_hims41_v2", "s3r_resnet18.br_hims41_v2")
        assert (after[name].sha256 != before[name].sha256) == changed, name
    band_sets = json.loads(records.read_text())["band_sets"]  # each band set is kept as it was
    for name, record in before.items():
        assert band_sets[record.band_set]["mean"] == list(record.bands.mean), name


@pytest.mark.parametrize("tag,kwargs,match", [
    ("xx_hims41", {}, "'s3r_resnet18.xx_hims41' has no release record"),
    ("cr_hims41_v2", {"extra": {"validation": {"held_out": "none", "exported": "last epoch"}}},
     "no held-out validation metrics in its metadata; release only runs trained with --val-fraction > 0"),
    ("cr_hims41_v2", {"extra": {"validation": {"metrics": {"loss": 0.5, "cr_l1": float("nan")}}}},
     "held-out validation metrics ['cr_l1'] are not finite numbers"),
    ("cr_hims41_v2", {"in_chans": 40}, "40 bands, but tag 'cr_hims41_v2' declares 41"),
])
def test_release_refuses_what_does_not_fit_the_tag(tmp_path, capsys, records, tag, kwargs, match):
    make_checkpoint(tmp_path / "run" / "encoder.safetensors", **{"extra": {"validation": VALIDATION}, **kwargs})
    assert main(["release", str(tmp_path / "run"), "--tag", tag, "--weights-dir", str(tmp_path / "w"),
                 "--records", str(records)]) == 2
    assert not (tmp_path / "w").exists()
    assert match in capsys.readouterr().err


def test_release_of_a_missing_run_names_it(tmp_path, capsys):
    assert main(["release", str(tmp_path / "nothing"), "--tag", "cr_hims41_v2"]) == 2
    assert "encoder.safetensors" in capsys.readouterr().err


def test_release_writes_a_manifest_that_verifies(tmp_path, capsys, records):
    make_checkpoint(tmp_path / "run" / "encoder.safetensors",
                    extra={"steps": 64, "epochs": 1, "validation": VALIDATION})
    assert main(["release", str(tmp_path / "run"), "--tag", "cr_hims41_v2", "--weights-dir", str(tmp_path / "w"),
                 "--records", str(records)]) == 0
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())["files"]
    entry = manifest["s3r_resnet18.cr_hims41_v2.safetensors"]
    assert entry["steps"] == 64 and entry["validation"]["metrics"]["locality"] == 0.38 and entry["recipe"]
    assert (entry["sha256"], entry["size"]) == file_digest(tmp_path / "w" / "s3r_resnet18.cr_hims41_v2.safetensors")
    capsys.readouterr()
    assert main(["releases", "--verify", str(tmp_path / "w"), "--records", str(records)]) == 0
    assert "verifies" in capsys.readouterr().out
    shutil.copy(tmp_path / "w" / "s3r_resnet18.cr_hims41_v2.safetensors", tmp_path / "w" / "stray.safetensors")
    assert main(["releases", "--verify", str(tmp_path / "w"), "--records", str(records)]) == 1
    assert "stray.safetensors: not in manifest.json" in capsys.readouterr().err
    (tmp_path / "w" / "stray.safetensors").unlink()
    (tmp_path / "w" / "s3r_resnet18.cr_hims41_v2.safetensors").unlink()  # e.g. a retired file leaves the folder
    assert main(["releases", "--verify", str(tmp_path / "w"), "--records", str(records)]) == 1
    assert "listed in manifest.json but missing" in capsys.readouterr().err
    assert main(["releases", "--write-manifest", str(tmp_path / "w"), "--records", str(records)]) == 0
    assert main(["releases", "--verify", str(tmp_path / "w"), "--records", str(records)]) == 0
