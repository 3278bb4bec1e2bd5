"""Loading checkpoints through timm.create_model(pretrained=True): band adaptation and sources."""

import logging

import numpy as np
import pytest
import timm
import torch
from timm.models import adapt_input_conv

import s3r_zoo
from s3r_zoo.checkpoint import CheckpointError
from s3r_zoo.spectral import index_positions, interpolation_matrix, resample_conv_weight
from s3r_zoo.weights import WeightsNotFoundError

from conftest import HIMS, make_checkpoint, set_records

TARGET_WL = [450 + i * 300 / 39 for i in range(40)]


def create(path, **kwargs):
    kwargs.setdefault("num_classes", 0)
    return timm.create_model("s3r_resnet18", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs)


def assert_body_equal(model, sd):
    msd = model.state_dict()
    for k, v in sd.items():
        if k != "conv1.weight":
            assert torch.equal(msd[k], v), k


def test_same_bands_loads_unchanged_and_quietly(ckpt18, caplog):
    path, sd = ckpt18
    with caplog.at_level(logging.WARNING):
        m = create(path)
    assert torch.equal(m.conv1.weight, sd["conv1.weight"])
    assert_body_equal(m, sd)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    info = s3r_zoo.band_info(m)
    assert info.wavelengths_nm == HIMS.wavelengths_nm and info.mean == HIMS.mean


def test_same_bands_same_wavelengths_is_identity(ckpt18):
    path, sd = ckpt18
    m = create(path, in_chans=41, wavelengths=list(HIMS.wavelengths_nm))
    assert torch.equal(m.conv1.weight, sd["conv1.weight"])


def test_wavelength_resampling_through_create_model(ckpt18, caplog):
    path, sd = ckpt18
    with caplog.at_level(logging.WARNING):
        m = create(path, in_chans=40, wavelengths=TARGET_WL)
    matrix, clamped = interpolation_matrix(HIMS.wavelengths_nm, TARGET_WL)
    assert clamped == 0
    torch.testing.assert_close(m.conv1.weight.detach(), resample_conv_weight(sd["conv1.weight"], matrix))
    assert_body_equal(m, sd)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text  # no timm stem warning
    info = s3r_zoo.band_info(m)
    assert info.wavelengths_nm == tuple(TARGET_WL)
    np.testing.assert_allclose(info.mean, matrix @ np.array(HIMS.mean))
    np.testing.assert_allclose(m.pretrained_cfg["std"], matrix @ np.array(HIMS.std))
    assert m.pretrained_cfg["input_size"] == (40, 224, 224)
    assert "resampled by wavelength" in info.source
    # 450 nm is exactly source band 7: its weights carry over, scaled by 41/40
    torch.testing.assert_close(m.conv1.weight[:, 0].detach(), sd["conv1.weight"][:, 7] * 41 / 40)


def test_adapted_stem_differs_from_random(ckpt18):
    path, _ = ckpt18
    loaded = create(path, in_chans=40, wavelengths=TARGET_WL)
    random = timm.create_model("s3r_resnet18", in_chans=40, num_classes=0)
    assert not torch.allclose(loaded.conv1.weight, random.conv1.weight)


def test_index_interpolation_without_wavelengths_logs_once(ckpt18, caplog):
    path, sd = ckpt18
    with caplog.at_level(logging.WARNING, logger="s3r_zoo"):
        m = create(path, in_chans=20)
        create(path, in_chans=20)
    notes = [r for r in caplog.records if "normalised band index" in r.getMessage()]
    assert len(notes) <= 1  # once per process (it may already have been said by an earlier test)
    matrix, _ = interpolation_matrix(index_positions(41), index_positions(20))
    torch.testing.assert_close(m.conv1.weight.detach(), resample_conv_weight(sd["conv1.weight"], matrix))
    assert s3r_zoo.band_info(m).wavelengths_nm is None
    assert "band-index interpolation" in s3r_zoo.band_info(m).source


def test_clamped_targets_warn(ckpt18, caplog):
    path, sd = ckpt18
    with caplog.at_level(logging.WARNING, logger="s3r_zoo"):
        m = create(path, in_chans=3, wavelengths=[350.0, 550.0, 800.5])
    assert any("2 of 3 target wavelengths" in r.getMessage() for r in caplog.records), caplog.text
    w = m.conv1.weight.detach()
    torch.testing.assert_close(w[:, 0], sd["conv1.weight"][:, 0] * 41 / 3)
    torch.testing.assert_close(w[:, 2], sd["conv1.weight"][:, 40] * 41 / 3)


def test_repeat_mode_is_timm_adapt_input_conv(ckpt18):
    path, sd = ckpt18
    m = create(path, in_chans=40, band_adapt="repeat")
    expected = adapt_input_conv(40, sd["conv1.weight"], base_chans=41)
    torch.testing.assert_close(m.conv1.weight.detach(), expected)
    assert s3r_zoo.band_info(m).mean[:2] == HIMS.mean[:2]


def test_checkpoint_without_wavelengths_uses_index(tmp_path):
    path = tmp_path / "nowl.safetensors"
    sd = make_checkpoint(path, in_chans=41, wavelengths=None)
    m = create(path, in_chans=40, wavelengths=TARGET_WL)
    matrix, _ = interpolation_matrix(index_positions(41), index_positions(40))
    torch.testing.assert_close(m.conv1.weight.detach(), resample_conv_weight(sd["conv1.weight"], matrix))
    # an explicit file speaks for itself: the tag's hims41 table does not fill in its bands
    info = s3r_zoo.band_info(m)
    assert info.wavelengths_nm == tuple(TARGET_WL) and "does not record" not in info.source
    np.testing.assert_allclose(info.mean, matrix @ np.array(HIMS.mean))


def test_tag_file_without_wavelengths_uses_tag_table(tmp_path, monkeypatch):
    """The tag's own file (found in a weights dir) may rely on the tag's band table."""
    d = tmp_path / "w"
    sd = make_checkpoint(d / "s3r_resnet18.cr_hims41_v2.safetensors", wavelengths=None)
    monkeypatch.setenv("S3R_ZOO_WEIGHTS", str(d))
    m = timm.create_model("s3r_resnet18", pretrained=True, in_chans=40, wavelengths=TARGET_WL)
    matrix, _ = interpolation_matrix(HIMS.wavelengths_nm, TARGET_WL)
    torch.testing.assert_close(m.conv1.weight.detach(), resample_conv_weight(sd["conv1.weight"], matrix))


def test_checkpoint_with_other_bands_and_no_stats(tmp_path):
    path = tmp_path / "three.safetensors"
    sd = make_checkpoint(path, in_chans=3)
    m = create(path)
    assert m.conv1.in_channels == 3 and torch.equal(m.conv1.weight, sd["conv1.weight"])
    info = s3r_zoo.band_info(m)
    assert info.mean == (0.0, 0.0, 0.0) and info.std == (1.0, 1.0, 1.0) and info.wavelengths_nm is None


def test_classifier_head_is_fresh_and_body_loaded(ckpt18):
    path, sd = ckpt18
    m = create(path, num_classes=5)
    assert m.fc.out_features == 5
    assert_body_equal(m, sd)


def test_features_only_pretrained(ckpt18):
    path, sd = ckpt18
    m = create(path, features_only=True, in_chans=40, wavelengths=TARGET_WL)
    assert torch.equal(m.layer4[1].conv2.weight, sd["layer4.1.conv2.weight"])
    assert len(m(torch.randn(1, 40, 64, 64))) == 5


def test_fp16_checkpoint_loads(tmp_path):
    path = tmp_path / "half.safetensors"
    sd = make_checkpoint(path, dtype=torch.float16)
    m = create(path)
    assert m.conv1.weight.dtype == torch.float32
    torch.testing.assert_close(m.conv1.weight.detach(), sd["conv1.weight"].half().float())


# --- where weights come from -------------------------------------------------------------------

def test_weights_dir_from_env(tmp_path, monkeypatch):
    d = tmp_path / "mine"
    sd = make_checkpoint(d / "s3r_resnet18.cr_hims41_v2.safetensors")
    monkeypatch.setenv("S3R_ZOO_WEIGHTS", str(d))
    m = timm.create_model("s3r_resnet18", pretrained=True)
    assert torch.equal(m.conv1.weight, sd["conv1.weight"])


def test_repo_weights_dir_and_env_priority(tmp_path, monkeypatch):
    repo = tmp_path / "repo_weights"  # the conftest points the repository's weights/ here
    repo_sd = make_checkpoint(repo / "s3r_resnet18.br_hims41_v2.safetensors", seed=1)
    m = timm.create_model("s3r_resnet18.br_hims41_v2", pretrained=True)
    assert torch.equal(m.conv1.weight, repo_sd["conv1.weight"])
    env_sd = make_checkpoint(tmp_path / "env" / "s3r_resnet18.br_hims41_v2.safetensors", seed=2)
    monkeypatch.setenv("S3R_ZOO_WEIGHTS", str(tmp_path / "env"))
    m = timm.create_model("s3r_resnet18.br_hims41_v2", pretrained=True)
    assert torch.equal(m.conv1.weight, env_sd["conv1.weight"])


def hub_cache_file(cache, repo_id="s3r-zoo/s3r_resnet18.cr_hims41_v2", filename="model.safetensors"):
    """Path of ``filename`` in a huggingface_hub cache layout (refs/main -> snapshot), folders created."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    path = repo / "snapshots" / commit / filename
    path.parent.mkdir(parents=True)
    return path


def test_hub_cache_is_used_offline(tmp_path):
    """A file in the huggingface_hub cache layout is found through huggingface_hub with HF_HUB_OFFLINE=1."""
    cache = tmp_path / "hf_cache"
    sd = make_checkpoint(hub_cache_file(cache))
    m = timm.create_model("s3r_resnet18", pretrained=True, cache_dir=str(cache), in_chans=40,
                          wavelengths=TARGET_WL)
    assert torch.equal(m.layer1[0].conv1.weight, sd["layer1.0.conv1.weight"])


def test_not_found_lists_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("S3R_ZOO_WEIGHTS", str(tmp_path / "env"))
    with pytest.raises(WeightsNotFoundError) as e:
        timm.create_model("s3r_resnet50.br_hims41_v2", pretrained=True, cache_dir=str(tmp_path / "c"))
    msg = str(e.value)
    assert "No weights found for 's3r_resnet50.br_hims41_v2'" in msg
    assert str(tmp_path / "env" / "s3r_resnet50.br_hims41_v2.safetensors") in msg and "$S3R_ZOO_WEIGHTS" in msg
    assert "repo_weights" in msg and "repository weights/" in msg
    assert "hub s3r-zoo/s3r_resnet50.br_hims41_v2/model.safetensors" in msg and "HF_HUB_OFFLINE" in msg


def test_explicit_file_missing_or_not_safetensors(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="file='.*missing.safetensors': no such file"):
        create(tmp_path / "missing.safetensors")
    pth = tmp_path / "weights.pth"
    pth.write_bytes(b"\x80\x04pickle")
    with pytest.raises(WeightsNotFoundError, match=r"expected a '.safetensors' file, found suffix '.pth'"):
        create(pth)


def test_architecture_mismatch(ckpt18):
    path, _ = ckpt18
    with pytest.raises(CheckpointError, match="metadata architecture 'resnet18' does not fit s3r_resnet50"):
        timm.create_model("s3r_resnet50", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))


def test_wrong_shapes_are_reported(tmp_path):
    torch.manual_seed(0)
    sd = timm.create_model("resnet18", in_chans=41, num_classes=0).state_dict()
    sd["layer1.0.conv1.weight"] = torch.randn(64, 64, 5, 5)
    del sd["layer4.1.bn2.bias"]
    sd["extra.weight"] = torch.randn(3)
    path = tmp_path / "bad.safetensors"
    s3r_zoo.save_checkpoint(path, sd, architecture="resnet18", objective="cr", data="t")
    with pytest.raises(CheckpointError) as e:
        create(path)
    msg = str(e.value)
    assert "bad.safetensors: state dict does not fit ResNet" in msg
    assert "layer1.0.conv1.weight: checkpoint (64, 64, 5, 5) vs model (64, 64, 3, 3)" in msg
    assert "1 missing keys (layer4.1.bn2.bias)" in msg and "1 unexpected keys (extra.weight)" in msg


def test_not_safetensors_through_create_model(tmp_path):
    path = tmp_path / "fake.safetensors"
    path.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="fake.safetensors: not a readable safetensors file"):
        create(path)


# --- release record integrity -------------------------------------------------------------------

def test_record_accepts_matching_and_rejects_corrupt_local_file(tmp_path, monkeypatch):
    from s3r_zoo.weights import WeightsIntegrityError

    repo = tmp_path / "repo_weights"
    path = repo / "s3r_resnet18.cr_hims41_v2.safetensors"
    sd = make_checkpoint(path)
    set_records(monkeypatch, **{"s3r_resnet18.cr_hims41_v2": path})
    m = timm.create_model("s3r_resnet18", pretrained=True)
    assert torch.equal(m.conv1.weight, sd["conv1.weight"])
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # flip bits in the tensor data: still parses, wrong weights
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="does not match the release record of 's3r_resnet18.cr_hims41_v2'"):
        timm.create_model("s3r_resnet18", pretrained=True)


def test_corrupt_hub_cache_file_is_fetched_again_or_reported(tmp_path, monkeypatch):
    """Offline, the re-download cannot happen: the error says both what was wrong and that it failed."""
    from s3r_zoo.weights import WeightsIntegrityError

    cache = tmp_path / "hf_cache"
    good = tmp_path / "good.safetensors"
    make_checkpoint(good)
    set_records(monkeypatch, **{"s3r_resnet18.cr_hims41_v2": good})
    partial = hub_cache_file(cache)
    partial.write_bytes(good.read_bytes()[:-100] + bytes(100))  # same size, wrong bytes
    with pytest.raises(WeightsIntegrityError) as e:
        timm.create_model("s3r_resnet18", pretrained=True, cache_dir=str(cache))
    assert "delete it and download it again" in str(e.value) and "A fresh download failed too" in str(e.value)
