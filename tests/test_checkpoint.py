import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import s3r_zoo
from s3r_zoo.checkpoint import FORMAT, CheckpointError, load_checkpoint, read_checkpoint_info, save_checkpoint

from conftest import HIMS, make_checkpoint


def test_round_trip_keeps_tensors_and_metadata(ckpt18):
    path, sd = ckpt18
    loaded, info = load_checkpoint(path)
    assert set(loaded) == set(sd)
    for k in sd:
        assert torch.equal(loaded[k], sd[k])
    assert info.architecture == "resnet18" and info.in_chans == 41 and info.objective == "cr"
    assert info.wavelengths_nm == HIMS.wavelengths_nm and info.mean == HIMS.mean and info.std == HIMS.std
    assert info.recipe == {"test": True}
    assert read_checkpoint_info(path) == info


def test_header_uses_documented_string_keys(ckpt18):
    path, _ = ckpt18
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == FORMAT == "s3r_zoo.v1"
    assert meta["architecture"] == "resnet18" and meta["in_chans"] == "41"
    assert json.loads(meta["wavelengths_nm"]) == list(HIMS.wavelengths_nm)
    assert len(json.loads(meta["mean"])) == len(json.loads(meta["std"])) == 41
    assert json.loads(meta["recipe"]) == {"test": True}


def test_file_written_by_another_tool_is_accepted(tmp_path):
    """Compatibility: plain safetensors.save_file with the documented metadata."""
    w = torch.randn(64, 3, 7, 7)
    path = tmp_path / "other.safetensors"
    save_file({"conv1.weight": w}, str(path), metadata={
        "format": "s3r_zoo.v1", "architecture": "resnet18", "in_chans": "3", "objective": "byol",
        "data": "elsewhere", "recipe": "free text recipe"})
    sd, info = load_checkpoint(path)
    assert info.wavelengths_nm is None and info.mean is None and info.recipe == "free text recipe"
    assert torch.equal(sd["conv1.weight"], w)


def test_fp16_save_and_extra_metadata(tmp_path):
    path = tmp_path / "half.safetensors"
    make_checkpoint(path, in_chans=3, dtype=torch.float16, extra={"final_loss": 0.25, "note": "hi"})
    sd, info = load_checkpoint(path)
    assert sd["conv1.weight"].dtype == torch.float16
    assert info.extra == {"final_loss": "0.25", "note": "hi"}


def test_atomic_write_leaves_no_temp_files(tmp_path):
    make_checkpoint(tmp_path / "a.safetensors", in_chans=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "a.safetensors"
    make_checkpoint(path, in_chans=3)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("s3r_zoo.checkpoint.save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        make_checkpoint(path, in_chans=3, seed=1)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]


def test_not_safetensors_is_a_clear_error(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"PK\x03\x04 this is a zip/pickle, not safetensors")
    with pytest.raises(CheckpointError, match=r"model.safetensors: not a readable safetensors file"):
        load_checkpoint(path)


def test_truncated_file_is_a_clear_error(tmp_path, ckpt18):
    path, _ = ckpt18
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cut.safetensors: not a readable safetensors"):
        load_checkpoint(cut)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.safetensors: checkpoint file not found"):
        read_checkpoint_info(tmp_path / "nope.safetensors")


def _raw(tmp_path, meta, in_chans=3):
    path = tmp_path / "raw.safetensors"
    save_file({"conv1.weight": torch.randn(64, in_chans, 7, 7)}, str(path), metadata=meta)
    return path


BASE = {"format": "s3r_zoo.v1", "architecture": "resnet18", "in_chans": "3", "objective": "cr", "data": "d",
        "recipe": "{}"}


@pytest.mark.parametrize("change, match", [
    ({"format": None}, r"missing required metadata \['format'\]"),
    ({"architecture": None, "data": None}, r"missing required metadata \['architecture', 'data'\]"),
    ({"format": "other.v0"}, "'format' expected 's3r_zoo.v1', found 'other.v0'"),
    ({"in_chans": "three"}, "'in_chans' expected a decimal integer, found 'three'"),
    ({"in_chans": "4"}, r"'conv1.weight' shape \(64, 3, 7, 7\) does not match metadata in_chans=4"),
    ({"wavelengths_nm": "[400, 500]"}, "'wavelengths_nm' expected 3 values .in_chans., found 2"),
    ({"wavelengths_nm": "[400, 500, 450]"}, "strictly increasing"),
    ({"wavelengths_nm": "[400, 500, NaN]"}, "finite"),
    ({"wavelengths_nm": "400-500"}, "'wavelengths_nm' expected a JSON list of numbers"),
    ({"mean": "{\"a\": 1}"}, "'mean' expected a JSON list of numbers, found dict"),
    ({"std": "[1, 0, 1]"}, "'std' expected positive values"),
])
def test_invalid_metadata(tmp_path, change, match):
    meta = dict(BASE)
    for k, v in change.items():
        if v is None:
            meta.pop(k)
        else:
            meta[k] = v
    path = _raw(tmp_path, meta)
    with pytest.raises(CheckpointError, match=match):
        read_checkpoint_info(path)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_no_metadata_at_all(tmp_path):
    path = tmp_path / "bare.safetensors"
    save_file({"conv1.weight": torch.randn(64, 3, 7, 7)}, str(path))
    with pytest.raises(CheckpointError, match="missing required metadata"):
        read_checkpoint_info(path)


def test_no_stem(tmp_path):
    path = tmp_path / "nostem.safetensors"
    save_file({"fc.weight": torch.randn(2, 2)}, str(path), metadata=BASE)
    with pytest.raises(CheckpointError, match="expected a 'conv1.weight' tensor"):
        read_checkpoint_info(path)


def test_save_validates_before_writing(tmp_path):
    sd = {"conv1.weight": torch.randn(64, 3, 7, 7)}
    with pytest.raises(CheckpointError, match="'wavelengths_nm' expected 3 values"):
        save_checkpoint(tmp_path / "x.safetensors", sd, architecture="resnet18", objective="cr", data="d",
                        wavelengths_nm=[400, 500])
    with pytest.raises(CheckpointError, match="expected a '.safetensors' file name, found suffix '.pth'"):
        save_checkpoint(tmp_path / "x.pth", sd, architecture="resnet18", objective="cr", data="d")
    with pytest.raises(CheckpointError, match="reserved keys"):
        save_checkpoint(tmp_path / "x.safetensors", sd, architecture="resnet18", objective="cr", data="d",
                        extra={"in_chans": 4})
    assert list(tmp_path.iterdir()) == []


def test_public_api_exports():
    assert s3r_zoo.save_checkpoint is save_checkpoint and s3r_zoo.load_checkpoint is load_checkpoint
