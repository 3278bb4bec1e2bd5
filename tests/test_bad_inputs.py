"""Bad files, options, states and weights: each gets its own clear refusal, and nothing is lost.

Every case asserts the specific message (what was expected, what was found), not only
that something was raised; command-line cases also assert exit code 2, one line on stderr
and that the refused run wrote nothing.
"""

import json
import logging
import os
import shutil
import stat

import numpy as np
import pytest
import timm
import torch
from conftest import make_checkpoint, set_records
from safetensors.torch import save_file

import s3r_zoo
from s3r_zoo.checkpoint import CheckpointError
from s3r_zoo.cli import main
from s3r_zoo.data import CubeDataset, read_cube
from s3r_zoo.data.io import CubeReadError
from s3r_zoo.files import file_digest
from s3r_zoo.lowrank import loo_r2
from s3r_zoo.pretrain import PretrainSpec, coefficient_targets, run_pretrain
from s3r_zoo.spectral import validate_wavelengths
from s3r_zoo.train import NonFiniteError
from s3r_zoo.weights import WeightsIntegrityError

TINY = ["--data", "synthetic:pdac_like", "--synthetic-n", "4", "--epochs", "1", "--batch-size", "4", "--crop", "32",
        "--crops-per-cube", "1", "--mask-patch", "8"]


def _cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _listing(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in folder.rglob("*")) if folder.exists() else []


# --- files ----------------------------------------------------------------------------------------

def _envi(tmp_path, interleave="bil", extra_bytes=0):
    from spectral.io import envi

    envi.save_image(str(tmp_path / "c.hdr"), np.random.default_rng(0).random((5, 6, 4)).astype(np.float32),
                    interleave=interleave, ext=".img")
    hdr = (tmp_path / "c.hdr").read_text()
    return hdr, tmp_path / "c.hdr"


@pytest.mark.parametrize("case,match", [
    ("interleave", r"c.hdr: interleave: expected bsq, bil or bip, found 'xyz'"),
    ("longer", r"c.img: expected 480 bytes \(5 lines x 6 samples x 4 bands of float32, header offset 0\) from "
               r"c.hdr, found 488"),
    ("shorter", r"c.img: expected 480 bytes .* found 472"),
])
def test_envi_file_that_does_not_fit_its_header(tmp_path, case, match):
    hdr, path = _envi(tmp_path)
    if case == "interleave":
        path.write_text(hdr.replace("interleave = bil", "interleave = xyz"))
    elif case == "longer":
        with open(tmp_path / "c.img", "ab") as f:
            f.write(b"\0" * 8)
    else:
        data = (tmp_path / "c.img").read_bytes()
        (tmp_path / "c.img").write_bytes(data[:-8])
    with pytest.raises(CubeReadError, match=match):
        read_cube(path)


def test_micrometre_wavelengths_are_refused_with_a_hint(tmp_path):
    np.save(tmp_path / "c.npy", np.random.default_rng(0).random((8, 8, 3)).astype(np.float32))
    np.savetxt(tmp_path / "wavelengths_nm.txt", [0.45, 0.55, 0.65])
    with pytest.raises(CubeReadError, match=r"expected band centres in nm \(>= 100\), found 0.45; these look like "
                                            r"micrometres: multiply by 1000 \(e.g. 0.45 um = 450 nm\)"):
        read_cube(tmp_path / "c.npy")
    with pytest.raises(ValueError, match="look like micrometres"):
        timm.create_model("s3r_resnet18", in_chans=3, wavelengths=[0.45, 0.55, 0.65])
    with pytest.raises(ValueError, match=r"found 12; these look like micrometres"):
        validate_wavelengths([12.0, 13.0])


def test_all_nan_band_is_refused_by_band_mean_and_inpaint(tmp_path):
    a = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    a[..., 1] = np.nan
    np.save(tmp_path / "c.npy", a)
    np.savetxt(tmp_path / "wavelengths_nm.txt", [450, 550, 650])
    for nan in ("band_mean", "inpaint"):
        with pytest.raises(CubeReadError, match=rf"c.npy: band 2 \(550 nm\) holds no finite value, so "
                                                rf"nan='{nan}' has nothing to repair it from"):
            read_cube(tmp_path / "c.npy", nan=nan)
        with pytest.raises(CubeReadError, match=r"band 2 \(550 nm\) holds no finite value"):
            CubeDataset([(tmp_path / "c.npy", 0)], crop=8, nan=nan).check_files()
    assert np.all(read_cube(tmp_path / "c.npy", nan="zero").data[..., 1] == 0)  # asked for: allowed


def test_crop_inside_a_nan_region_uses_the_band_mean_of_its_file(tmp_path):
    a = np.ones((16, 16, 3), np.float32)
    a[:8, :8, 1] = np.nan  # one grid tile of band 2 is all NaN; the file's band 2 is not
    a[8:, 8:, 1] = 3.0
    np.save(tmp_path / "c.npy", a)
    ds = CubeDataset([(tmp_path / "c.npy", 0)], crop=8, crop_mode="grid", nan="band_mean")
    ds.check_files()
    x = ds[0][0]
    assert torch.allclose(x[1], torch.full((8, 8), 320 / 192))  # mean of the 192 finite values: (128 + 64 * 3) / 192


def test_nan_error_is_found_before_training_and_lists_the_repairs(tmp_path, capsys, hims_dir):
    out = tmp_path / "run"
    err = _cli_error(capsys, ["pretrain", "--data", str(hims_dir / "cube_hwc_f16.npy"), "--epochs", "1",
                              "--crop", "32", "--out", str(out)])
    assert err.endswith("cube_hwc_f16.npy: 2 NaN/Inf values (band 41 (780 nm): 2); choose a repair with --nan (nan=): "
                        "'zero', 'band_mean' or 'inpaint'")
    assert not out.exists()


def test_hims_folder_with_two_files_for_one_band(tmp_path):
    import h5py

    for name in ("trans_mean_camera_1.mat", "trans_mean_camera_01.mat", "trans_mean_camera_2.mat"):
        with h5py.File(tmp_path / name, "w") as f:
            f["vv"] = np.ones((4, 5))
    with pytest.raises(CubeReadError, match=r"two files for band 1 \(trans_mean_camera_01.mat and "
                                            r"trans_mean_camera_1.mat\); expected one trans_mean_camera_N.mat per band"):
        read_cube(tmp_path)


@pytest.mark.parametrize("value", [0.0, 0.5])
def test_constant_cube_is_not_a_linalg_error(tmp_path, capsys, value):
    np.save(tmp_path / "c.npy", np.full((16, 16, 5), value, np.float32))
    assert main(["data", "info", str(tmp_path / "c.npy")]) == 0
    assert "median leave-one-band-out R2" in capsys.readouterr().out
    assert torch.isfinite(loo_r2(torch.full((1, 64, 5), value))).all()
    beta = coefficient_targets(torch.full((2, 5, 8, 8), value), torch.tensor([0, 3]))  # S3R-CR's targets
    assert torch.isfinite(beta).all() and beta[0, 0] == 0 and beta[1, 3] == 0


# --- options and output folders -------------------------------------------------------------------

def test_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("mine")
    err = _cli_error(capsys, ["pretrain", *TINY, "--out", str(tmp_path / "f")])
    assert err.endswith(f"--out {tmp_path / 'f'}: expected a folder, found an existing file")
    assert (tmp_path / "f").read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        err = _cli_error(capsys, ["pretrain", *TINY, "--out", str(ro / "run")])
        assert "cannot write there" in err and not (ro / "run").exists()
    finally:
        ro.chmod(stat.S_IRWXU)


def test_read_only_out_as_root_is_refused_by_the_check(tmp_path, monkeypatch):
    """The writability check itself (root ignores folder permissions, so it is simulated here)."""
    from s3r_zoo.files import check_writable_dir

    monkeypatch.setattr(os, "access", lambda p, mode: False)
    with pytest.raises(ValueError, match=r"--out .*run: cannot write there \(.* is not a writable folder\)"):
        check_writable_dir(tmp_path / "run")


@pytest.mark.parametrize("field,value,match", [
    ("epochs", 0, "epochs: expected an integer >= 1, found 0"),
    ("batch_size", 0, "batch_size: expected an integer >= 1, found 0"),
    ("mask_ratio", 1.5, r"mask_ratio: expected a number >= 0 and <= 1, found 1.5"),
])
def test_library_spec_is_checked_before_anything_is_written(tmp_path, field, value, match):
    spec = PretrainSpec(data="synthetic:pdac_like", synthetic_n=4, crop=32, out=str(tmp_path / "run"), **{field: value})
    with pytest.raises(ValueError, match=match):
        run_pretrain(spec)
    assert not (tmp_path / "run").exists()


# --- states ---------------------------------------------------------------------------------------

@pytest.fixture
def finished_run(tmp_path):
    out = tmp_path / "run"
    assert main(["pretrain", *TINY, "--epochs", "2", "--out", str(out)]) == 0
    return out


def test_refused_runs_write_nothing(finished_run, capsys):
    before = _listing(finished_run)
    err = _cli_error(capsys, ["pretrain", *TINY, "--epochs", "2", "--out", str(finished_run)])
    assert err.endswith(f"{finished_run / 'state.safetensors'} exists: pass resume=True (--resume) to continue it, "
                        f"or use a new folder")
    err = _cli_error(capsys, ["pretrain", *TINY, "--epochs", "2", "--lr", "3e-4", "--out", str(finished_run),
                              "--resume"])
    assert "written by another configuration (lr: saved 0.0001, now 0.0003); refusing to resume" in err
    assert _listing(finished_run) == before  # stats.json included: it used to be overwritten here


def _flip(path, offset=-4096, n=64):
    data = bytearray(path.read_bytes())
    for i in range(n):
        data[offset + i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flipped", "truncated", "empty"])
def test_corrupt_latest_state_falls_back_to_the_previous_one(finished_run, caplog, damage):
    state, prev = finished_run / "state.safetensors", finished_run / "state.prev.safetensors"
    assert prev.is_file()
    if damage == "flipped":
        _flip(state)
    elif damage == "truncated":
        state.write_bytes(state.read_bytes()[:1000])
    else:
        state.write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        assert main(["pretrain", *TINY, "--epochs", "3", "--out", str(finished_run), "--resume"]) == 0
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert str(state) in warned and str(prev) in warned and "resuming from the previous state" in warned
    assert json.loads((finished_run / "summary.json").read_text())["epochs"] == 3


def test_corrupt_state_and_previous_state_is_one_line(finished_run, capsys):
    for p in (finished_run / "state.safetensors", finished_run / "state.prev.safetensors"):
        _flip(p)
    err = _cli_error(capsys, ["pretrain", *TINY, "--epochs", "3", "--out", str(finished_run), "--resume"])
    assert "state.safetensors: checksum mismatch" in err and "the previous state is unusable too" in err


def test_non_finite_weights_stop_the_run_naming_the_step(tmp_path):
    """A BatchNorm statistic that turns NaN (as a diverging forward pass leaves it) stops the run unsaved."""
    from s3r_zoo.data.simulated_sets import SyntheticHSI
    from s3r_zoo.pretrain import S3RObjective
    from s3r_zoo.train import TrainConfig, Trainer

    class Poisoned(S3RObjective):
        steps = 0

        def after_step(self):
            Poisoned.steps += 1
            if Poisoned.steps == 3:
                self.encoder.bn1.running_var.fill_(float("nan"))

    ds = SyntheticHSI("pdac_like", n=16, size=32, seed=0)
    obj = Poisoned(timm.create_model("s3r_resnet18", in_chans=40), [0.5] * 40, [0.2] * 40, mask_patch=8)
    with pytest.raises(NonFiniteError, match=r"epoch 1, step 3: training diverged, non-finite values in "
                                             r"encoder.bn1.running_var; nothing was saved from this point"):
        Trainer(TrainConfig(epochs=2, batch_size=4, ckpt_every=1), tmp_path, device="cpu").fit(obj, ds)
    from s3r_zoo.train.state import _read

    _, meta = _read(tmp_path / "state.safetensors")  # the last state saved is the last good one
    assert json.loads(meta["position"])["global_step"] == 2


def test_divergence_never_exports(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["pretrain", "--data", "synthetic:pdac_like", "--synthetic-n", "8", "--epochs", "3", "--batch-size", "4",
            "--crop", "32", "--crops-per-cube", "1", "--mask-patch", "8", "--lr", "1e6", "--out", str(out)]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]  # after the progress bars: one error line, no traceback
    assert "Traceback" not in err and last.startswith("s3r-zoo pretrain: error: epoch ")
    assert "NaN/Inf" in last and "lower --lr" in last
    assert not (out / "encoder.safetensors").exists()


def test_wall_time_spans_every_process_of_a_resumed_run(finished_run):
    first = json.loads((finished_run / "summary.json").read_text())["wall_time_s"]
    assert main(["pretrain", *TINY, "--epochs", "3", "--out", str(finished_run), "--resume"]) == 0
    assert json.loads((finished_run / "summary.json").read_text())["wall_time_s"] > first


# --- weights --------------------------------------------------------------------------------------

def test_save_checkpoint_refuses_non_finite_tensors(tmp_path):
    sd = timm.create_model("resnet18", in_chans=3, num_classes=0).state_dict()
    sd["bn1.running_var"][0] = float("inf")
    with pytest.raises(CheckpointError, match=r"x.safetensors: non-finite values \(NaN/Inf\) in 1 tensors "
                                              r"\(bn1.running_var\)"):
        s3r_zoo.save_checkpoint(tmp_path / "x.safetensors", sd, architecture="resnet18", objective="cr", data="t")
    assert not (tmp_path / "x.safetensors").exists()


def _poison(path, key="layer1.0.bn1.running_var"):
    """A zoo checkpoint whose tensor ``key`` holds NaN, metadata intact (as flipped exponent bits do)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        sd = {k: f.get_tensor(k) for k in f.keys()}
    sd[key][0] = float("nan")
    save_file(sd, str(path), metadata=meta)


def test_every_load_path_refuses_non_finite_weights(tmp_path, monkeypatch):
    path = tmp_path / "w" / "s3r_resnet18.cr_hims41_v2.safetensors"
    make_checkpoint(path)
    _poison(path)
    match = r"non-finite values \(NaN/Inf\) in 1 tensors \(layer1.0.bn1.running_var\)"
    with pytest.raises(CheckpointError, match=match):
        s3r_zoo.load_checkpoint(path)
    with pytest.raises(CheckpointError, match=match):  # explicit file
        timm.create_model("s3r_resnet18", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    monkeypatch.setenv("S3R_ZOO_WEIGHTS", str(tmp_path / "w"))
    with pytest.raises(CheckpointError, match=match):  # weights folder
        timm.create_model("s3r_resnet18.cr_hims41_v2", pretrained=True)


def test_explicit_file_that_claims_a_release_is_checked_against_its_record(tmp_path, monkeypatch):
    good = tmp_path / "good.safetensors"
    make_checkpoint(good, extra={"release": "s3r_resnet18.cr_hims41_v2"})
    set_records(monkeypatch, **{"s3r_resnet18.cr_hims41_v2": good})
    timm.create_model("s3r_resnet18", pretrained=True, pretrained_cfg_overlay=dict(file=str(good)))  # intact: loads
    bad = tmp_path / "bad.safetensors"
    shutil.copy(good, bad)
    _flip(bad, offset=-100000, n=16)  # inside the tensor data: still parses, finite or not
    digest, size = file_digest(bad)
    with pytest.raises(WeightsIntegrityError, match=rf"bad.safetensors: does not match the release record of "
                                                    rf"'s3r_resnet18.cr_hims41_v2' .* found {size} bytes, sha256 "
                                                    rf"{digest[:12]}"):
        timm.create_model("s3r_resnet18", pretrained=True, pretrained_cfg_overlay=dict(file=str(bad)))
