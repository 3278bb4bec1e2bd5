"""s3r-zoo export: a hub folder that plain timm loads without s3r_zoo."""

import json
import subprocess
import sys

import torch
import timm

import s3r_zoo
from s3r_zoo.cli import main

from conftest import HIMS, make_checkpoint

PLAIN_TIMM = """
import sys, timm, torch
m = timm.create_model("local-dir:{d}", pretrained=True).eval()
assert "s3r_zoo" not in sys.modules, "plain timm must not import s3r_zoo"
sd = m.state_dict()
print(m.conv1.in_channels, m.num_classes, len(m.pretrained_cfg["mean"]))
from safetensors.torch import load_file
ref = load_file("{d}/model.safetensors")
assert all(torch.equal(sd[k], ref[k]) for k in ref), "weights differ"
print("ok")
"""


def test_export_loads_with_plain_timm(tmp_path, capsys):
    ckpt = tmp_path / "enc.safetensors"
    make_checkpoint(ckpt, extra={"final_loss": 0.123})
    assert main(["export", str(ckpt), "--out", str(tmp_path / "hub"), "--name", "s3r_resnet18.cr_test",
                 "--repo", "me/s3r_resnet18.cr_test"]) == 0
    hub = tmp_path / "hub"
    cfg = json.loads((hub / "config.json").read_text())
    assert cfg["architecture"] == "resnet18" and "model_args" not in cfg
    assert cfg["pretrained_cfg"]["input_size"] == [41, 224, 224] and cfg["s3r_zoo"]["wavelengths_nm"][0] == 380.0
    card = (hub / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0\nlibrary_name: timm\n") and "## Limitations" in card
    assert "hf-hub:me/s3r_resnet18.cr_test" in card and "0.123" in card
    res = subprocess.run([sys.executable, "-c", PLAIN_TIMM.format(d=hub)], capture_output=True, text=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["41", "0", "41", "ok"]


def test_exported_file_is_a_zoo_checkpoint_for_band_adaptation(tmp_path):
    ckpt = tmp_path / "enc.safetensors"
    sd = make_checkpoint(ckpt)
    s3r_zoo.hub.export_hub_folder(ckpt, tmp_path / "hub")
    m = timm.create_model("s3r_resnet18", pretrained=True, in_chans=40, wavelengths=[450 + i * 300 / 39 for i in range(40)],
                          pretrained_cfg_overlay=dict(file=str(tmp_path / "hub" / "model.safetensors")))
    assert torch.equal(m.layer1[0].conv1.weight, sd["layer1.0.conv1.weight"])
    assert s3r_zoo.band_info(m).wavelengths_nm[0] == 450.0 and HIMS.in_chans == 41


def test_a_runs_card_is_named_by_model_objective_and_run_and_warns_where_the_head_learnt_nothing(tmp_path):
    from conftest import VALIDATION

    run = tmp_path / "my_run"
    worse = {**VALIDATION, "metrics": {**VALIDATION["metrics"], "cr_l1": 1.98, "cr_l1_zeros": 1.53}}
    make_checkpoint(run / "encoder.safetensors", extra={"validation": worse})
    s3r_zoo.hub.export_hub_folder(run / "encoder.safetensors", tmp_path / "hub")
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "\n# s3r_resnet18.cr_my_run\n" in card and "\n# encoder\n" not in card
    assert "**Warning**: held-out CR L1 1.980 is not below predicting zeros (1.530)" in card
    assert "simulated data" not in card and "s3r-zoo evaluate" in card  # no claim of a check never made


def test_releases_view_fits_100_columns_and_says_where_a_release_is_no_better_than_a_baseline(capsys):
    assert main(["releases"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "s3r_resnet50.cr_hims41_v2" in out and "BR unexplained variance 6.3914 is above" in out
