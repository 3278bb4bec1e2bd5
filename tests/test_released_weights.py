"""The released hims41 weights (v2, and the v3 ResNet-18) in weights/: intact, documented, reproducible, loadable with band adaptation."""

import math
from pathlib import Path

import pytest
import timm
import torch

import s3r_zoo
from s3r_zoo import read_checkpoint_info
from s3r_zoo.files import file_digest
from s3r_zoo.models.releases import load_releases
from s3r_zoo.models.s3r_resnet import default_cfgs
from s3r_zoo.options import build_spec, load_yaml
from s3r_zoo.pretrain import PretrainSpec
from s3r_zoo.release import model_card_table

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "weights"
RELEASES = load_releases()[0]  # the package's records (conftest's fixture does not touch these objects)
TARGET_WL = [450 + i * 300 / 39 for i in range(40)]


@pytest.fixture
def repo_weights(monkeypatch):
    """Undo conftest's isolation: this module tests the repository's own weights/ and records."""
    monkeypatch.setattr("s3r_zoo.weights.REPO_WEIGHTS_DIR", WEIGHTS)
    for name, r in RELEASES.items():
        monkeypatch.setitem(s3r_zoo.models.RELEASES, name, r)


def test_every_registered_tag_is_released_with_a_recipe():
    registered = sorted(f"{m}.{t}" for m, c in default_cfgs.items() for t in c.tags)
    assert registered == sorted(RELEASES)  # timm's default_cfgs are derived from the records
    total = 0
    for tag, r in RELEASES.items():
        path = WEIGHTS / r.file_name
        assert (r.sha256, r.size) == file_digest(path), tag
        total += r.size
        assert (REPO / r.recipe).is_file(), r.recipe
        info = read_checkpoint_info(path)
        assert info.in_chans == r.bands.in_chans == 41 and info.wavelengths_nm[0] == 380.0
        assert info.objective == r.objective == tag.split(".")[1].split("_")[0]
        assert info.architecture == r.architecture
        for key in ("final_loss", "best_loss", "hardware", "wall_time_s", "epochs", "steps", "recipe"):
            assert r.training[key] not in (None, ""), (tag, key)
        metrics = r.training["validation"]["metrics"]
        assert all(math.isfinite(v) for v in metrics.values()) and "bottom" in r.training["validation"]["held_out"]
        assert r.training["steps"] >= (6000 if r.model == "s3r_resnet18" else 2000)  # the v2 budget
    assert total <= 170e6  # four v2 files and the v3 ResNet-18: 163 MB; a device run carries none of them


def test_the_weights_folder_manifest_verifies():
    from s3r_zoo.release import verify_manifest

    assert verify_manifest(WEIGHTS) == []


def test_model_card_table_is_the_release_records():
    assert model_card_table() in (REPO / "MODEL_CARD.md").read_text()


def test_release_is_float16():
    from safetensors import safe_open

    with safe_open(str(WEIGHTS / "s3r_resnet18.cr_hims41_v2.safetensors"), framework="pt") as f:
        assert f.get_tensor("conv1.weight").dtype == torch.float16


@pytest.mark.parametrize("tag", ["s3r_resnet18.cr_hims41_v2", "s3r_resnet50.cr_hims41_v2"])
def test_released_weights_adapt_to_40_bands(repo_weights, tag):
    model = timm.create_model(tag, in_chans=40, pretrained=True, wavelengths=TARGET_WL)
    torch.manual_seed(0)
    random = timm.create_model(tag.split(".")[0], in_chans=40)
    assert model.conv1.weight.shape[1] == 40
    assert not torch.allclose(model.conv1.weight, random.conv1.weight)
    info = s3r_zoo.band_info(model)
    assert info.wavelengths_nm[0] == pytest.approx(450.0) and len(info.mean) == 40
    with torch.no_grad():
        out = model(torch.rand(1, 40, 64, 64))
    assert torch.isfinite(out).all() and out.shape[1] == model.num_features


def test_a_shortened_v2_recipe_reproduces_its_checkpoint_bit_exactly(hims_dir, tmp_path):
    """The released recipe, cut to a few steps, run twice from the data file: the same bytes."""
    from s3r_zoo.pretrain import run_pretrain

    raw = load_yaml(str(REPO / RELEASES["s3r_resnet18.br_hims41_v2"].recipe))
    raw.update(data=str(hims_dir / "cube_hwc_f16.npy"), epochs=1, crops_per_cube=32, stats_samples=8, val_crops=4)
    weights = []
    for k in range(2):
        spec = build_spec(PretrainSpec, {**raw, "out": str(tmp_path / f"run{k}")})
        weights.append(s3r_zoo.load_checkpoint(run_pretrain(spec)["checkpoint"])[0])
    assert weights[0].keys() == weights[1].keys()
    for key, value in weights[0].items():  # the tensors, bit for bit (the metadata holds the wall time)
        assert torch.equal(value, weights[1][key]), key


def test_the_default_tag_is_v2(repo_weights):
    model = timm.create_model("s3r_resnet50", pretrained=True, in_chans=40, wavelengths=TARGET_WL)
    assert model.pretrained_cfg["tag"] == "cr_hims41_v2"
    same = timm.create_model("s3r_resnet50.cr_hims41_v2", pretrained=True, in_chans=40, wavelengths=TARGET_WL)
    assert torch.equal(model.conv1.weight, same.conv1.weight)


def test_recipes_are_pretrain_configs():
    for tag, r in RELEASES.items():
        spec = build_spec(PretrainSpec, load_yaml(str(REPO / r.recipe)))
        assert spec.model == tag.split(".")[0] and spec.nan == "inpaint"
        assert spec.out == f"runs/weights/{tag}"
