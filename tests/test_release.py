"""`s3r-zoo release`: fp16 weights file, manifest entry, byte-identical hub folder."""

import json

import pytest
import timm
import torch
from conftest import make_checkpoint

from s3r_zoo import load_checkpoint
from s3r_zoo.cli import main
from s3r_zoo.weights import file_digest


def test_release_writes_fp16_manifest_and_hub_folder(tmp_path, capsys):
    run = tmp_path / "run"
    sd = make_checkpoint(run / "encoder.safetensors", extra={"final_loss": 0.25, "hardware": "cpu: test",
                                                            "wall_time_s": 12.5, "epochs": 3})
    (tmp_path / "w" / "recipes").mkdir(parents=True)
    (tmp_path / "w" / "recipes" / "s3r_resnet18.cr_hims41.yaml").write_text("objective: cr\n")
    rc = main(["release", str(run), "--tag", "cr_hims41", "--weights-dir", str(tmp_path / "w"),
               "--hub-dir", str(tmp_path / "hub")])
    assert rc == 0, capsys.readouterr().err
    out = tmp_path / "w" / "s3r_resnet18.cr_hims41.safetensors"
    rel_sd, info = load_checkpoint(out)
    assert all(v.dtype == torch.float16 for v in rel_sd.values() if v.is_floating_point())
    assert not any(k.startswith("fc.") for k in rel_sd)
    assert torch.equal(rel_sd["conv1.weight"], sd["conv1.weight"].half())
    assert info.extra["release"] == "s3r_resnet18.cr_hims41"
    entry = json.loads((tmp_path / "w" / "manifest.json").read_text())["files"]["s3r_resnet18.cr_hims41"]
    assert (entry["sha256"], entry["size"]) == file_digest(out)
    assert entry["bands"] == 41 and entry["wavelengths_nm"][0] == 380.0 and entry["final_loss"] == 0.25
    assert entry["recipe"] == "weights/recipes/s3r_resnet18.cr_hims41.yaml"
    assert entry["hardware"] == "cpu: test" and entry["wall_time_s"] == 12.5
    # the hub copy is the same bytes, so one manifest entry guards both
    assert (tmp_path / "hub" / "model.safetensors").read_bytes() == out.read_bytes()
    m = timm.create_model(f"local-dir:{tmp_path / 'hub'}", pretrained=True)
    assert torch.equal(m.conv1.weight, sd["conv1.weight"].half().float())


def test_release_keeps_other_manifest_entries(tmp_path):
    for tag, seed in (("cr_hims41", 0), ("br_hims41", 1)):
        make_checkpoint(tmp_path / tag / "encoder.safetensors", seed=seed)
        assert main(["release", str(tmp_path / tag), "--tag", tag, "--weights-dir", str(tmp_path / "w")]) == 0
    files = json.loads((tmp_path / "w" / "manifest.json").read_text())["files"]
    assert sorted(files) == ["s3r_resnet18.br_hims41", "s3r_resnet18.cr_hims41"]


@pytest.mark.parametrize("tag,kwargs,match", [
    ("xx_hims41", {}, "not a registered pretrained tag"),
    ("cr_hims41", {"in_chans": 40}, "40 bands, but tag 'cr_hims41' declares 41"),
])
def test_release_refuses_what_does_not_fit_the_tag(tmp_path, capsys, tag, kwargs, match):
    make_checkpoint(tmp_path / "run" / "encoder.safetensors", **kwargs)
    assert main(["release", str(tmp_path / "run"), "--tag", tag, "--weights-dir", str(tmp_path / "w")]) == 2
    assert match in capsys.readouterr().err


def test_release_of_a_missing_run_names_it(tmp_path, capsys):
    assert main(["release", str(tmp_path / "nothing"), "--tag", "cr_hims41"]) == 2
    assert "encoder.safetensors" in capsys.readouterr().err
