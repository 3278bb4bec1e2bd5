"""The released hims41 weights in weights/: intact, documented, and loadable with band adaptation."""

import json
from pathlib import Path

import pytest
import timm
import torch

import s3r_zoo
from s3r_zoo import read_checkpoint_info
from s3r_zoo.models.s3r_resnet import PRETRAINED_BANDS
from s3r_zoo.weights import file_digest

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "weights"
MANIFEST = json.loads((WEIGHTS / "manifest.json").read_text())["files"]
TARGET_WL = [450 + i * 300 / 39 for i in range(40)]


@pytest.fixture
def repo_weights(monkeypatch):
    """Undo conftest's isolation: this module tests the repository's own weights/."""
    monkeypatch.setattr("s3r_zoo.weights.REPO_WEIGHTS_DIR", WEIGHTS)


def test_every_registered_tag_is_released_with_a_recipe():
    assert sorted(MANIFEST) == sorted(PRETRAINED_BANDS)
    total = 0
    for tag, entry in MANIFEST.items():
        path = WEIGHTS / f"{tag}.safetensors"
        assert (entry["sha256"], entry["size"]) == file_digest(path), tag
        total += entry["size"]
        assert (REPO / entry["recipe"]).is_file(), entry["recipe"]
        info = read_checkpoint_info(path)
        assert info.in_chans == entry["bands"] == 41 and info.wavelengths_nm[0] == 380.0
        assert info.objective == tag.split(".")[1].split("_")[0]
        for key in ("final_loss", "best_loss", "hardware", "wall_time_s", "epochs"):
            assert entry[key] not in (None, ""), (tag, key)
    assert total <= 160e6


def test_release_is_float16():
    from safetensors import safe_open

    with safe_open(str(WEIGHTS / "s3r_resnet18.cr_hims41.safetensors"), framework="pt") as f:
        assert f.get_tensor("conv1.weight").dtype == torch.float16


@pytest.mark.parametrize("tag", ["s3r_resnet18.cr_hims41", "s3r_resnet50.cr_hims41"])
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


def test_recipes_are_pretrain_configs():
    from s3r_zoo.config import load_yaml, spec_from_dict
    from s3r_zoo.pretrain.run import PretrainSpec

    for tag in MANIFEST:
        spec = spec_from_dict(PretrainSpec, load_yaml(str(WEIGHTS / "recipes" / f"{tag}.yaml")))
        assert spec.model == tag.split(".")[0] and spec.nan == "inpaint"
        assert spec.out == f"runs/weights/{tag}"
