"""``s3r-zoo embed``: features per cube or per window, the checkpoint's normalisation, resume, refusals."""

import csv
import json

import numpy as np
import pytest
import timm
import torch

import s3r_zoo
from s3r_zoo.embed import run as embed_module
from s3r_zoo.cli import main
from s3r_zoo.embed import EmbedSpec, run_embed, windows

B = 6
WL = np.linspace(450, 700, B)


@pytest.fixture
def folder(tmp_path):
    g = np.random.default_rng(0)
    d = tmp_path / "cubes"
    (d / "sub").mkdir(parents=True)
    for name, (h, w) in {"a.npy": (40, 48), "b.npy": (32, 32), "sub/c.npy": (24, 36)}.items():
        np.save(d / name, g.random((h, w, B), dtype=np.float32) * 100)
    np.savetxt(d / "wavelengths_nm.txt", WL)
    np.savetxt(d / "sub" / "wavelengths_nm.txt", WL)
    torch.manual_seed(0)
    enc = timm.create_model("s3r_resnet18", in_chans=B, num_classes=0)
    s3r_zoo.save_checkpoint(tmp_path / "enc.safetensors", enc.state_dict(), architecture="resnet18", objective="cr",
                            data="test", wavelengths_nm=WL.tolist(), mean=[50.0] * B, std=[29.0] * B)
    return d, tmp_path / "enc.safetensors", enc.eval()


def test_windows_cover_every_pixel():
    assert windows(40, 48, 16, None) == [(t, l, 16, 16) for t in (0, 16, 24) for l in (0, 16, 32)]
    assert windows(10, 12, 16, 8) == [(0, 0, 10, 12)]  # smaller than a tile: one window
    assert windows(5, 7, None, None) == [(0, 0, 5, 7)]


def test_whole_cube_features_match_the_encoder(folder, tmp_path, capsys):
    d, ckpt, enc = folder
    assert main(["embed", str(d), "--init", str(ckpt), "--out", str(tmp_path / "e"), "--amp", "none"]) == 0
    feats = np.load(tmp_path / "e" / "features.npy")
    with open(tmp_path / "e" / "index.csv") as f:
        rows = list(csv.DictReader(f))
    assert feats.shape == (3, 512) and [r["path"] for r in rows] == ["a.npy", "b.npy", "sub/c.npy"]
    assert rows[0]["height"] == "40" and rows[0]["width"] == "48"
    x = (torch.from_numpy(np.load(d / "b.npy")).permute(2, 0, 1)[None] - 50.0) / 29.0
    with torch.no_grad():
        np.testing.assert_allclose(feats[1], enc(x)[0].numpy(), rtol=1e-4, atol=1e-5)
    summary = json.loads((tmp_path / "e" / "embed.json").read_text())
    assert summary["normalisation"] == "checkpoint" and summary["model"] == "s3r_resnet18"
    assert not (tmp_path / "e" / ".embed_parts").exists() and "3 cube(s) -> 3 feature vectors" in capsys.readouterr().out


def test_tiles_of_a_split_file_and_data_statistics(folder, tmp_path):
    d, ckpt, _ = folder
    (d / "test.txt").write_text("a.npy 0\nsub/c.npy 1\n")
    s = run_embed(EmbedSpec(source=str(d / "test.txt"), out=str(tmp_path / "t"), init="random",
                            model="s3r_resnet18", tile=16, stride=16, amp="none", normalize="data"))
    assert s["features"] == [9 + 2 * 3, 512] and s["normalisation"] == "data (2 cubes)"
    with open(tmp_path / "t" / "index.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["path"], r["top"], r["left"]) for r in rows[9:12]] == [("sub/c.npy", "0", "0"),
                                                                     ("sub/c.npy", "0", "16"),
                                                                     ("sub/c.npy", "0", "20")]


def test_a_killed_embed_resumes_to_the_same_features(folder, tmp_path, monkeypatch):
    d, ckpt, _ = folder
    spec = EmbedSpec(source=str(d), out=str(tmp_path / "r"), init=str(ckpt), tile=16, amp="none")
    full = run_embed(EmbedSpec(**{**spec.__dict__, "out": str(tmp_path / "full")}))
    real = embed_module.embed_cube
    calls = []

    def dies_on_the_second_cube(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(embed_module, "embed_cube", dies_on_the_second_cube)
    with pytest.raises(KeyboardInterrupt):
        run_embed(spec)
    assert sorted(p.name for p in (tmp_path / "r" / ".embed_parts").iterdir()) == ["000000.json", "000000.npy",
                                                                                   "settings.json"]
    monkeypatch.setattr(embed_module, "embed_cube", real)
    calls.clear()
    assert run_embed(spec)["features"] == full["features"] == [9 + 4 + 6, 512]
    np.testing.assert_array_equal(np.load(tmp_path / "r" / "features.npy"), np.load(tmp_path / "full" / "features.npy"))
    # an unfinished embed with other settings (a rerun with --nan zero after a NaN refusal, say): its parts are
    # discarded and the run starts over, instead of blocking until someone deletes them by hand
    (tmp_path / "r" / ".embed_parts").mkdir()
    (tmp_path / "r" / ".embed_parts" / "settings.json").write_text(json.dumps({"tile": 99}))
    (tmp_path / "r" / ".embed_parts" / "000005.npy").write_bytes(b"stale")
    assert run_embed(spec)["features"] == full["features"] and not (tmp_path / "r" / ".embed_parts").exists()
    # a user's own folder of that name is never emptied: refused, nothing removed
    (tmp_path / "r" / ".embed_parts").mkdir()
    (tmp_path / "r" / ".embed_parts" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds files embed did not write \\(notes.txt\\)"):
        run_embed(spec)
    assert (tmp_path / "r" / ".embed_parts" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("args,message", [
    (["--tile", "4"], "--tile: expected at least 8 pixels, found 4"),
    (["--stride", "8"], "--stride: expected a positive step with --tile, found 8 (tile None)"),
    (["--init", "random"], "--model: required with --init 'random'"),
])
def test_embed_refusals_are_one_line_and_write_nothing(folder, tmp_path, capsys, args, message):
    d, ckpt, _ = folder
    argv = ["embed", str(d), "--out", str(tmp_path / "o"), "--init", str(ckpt)] + args
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    assert main(["embed", str(tmp_path / "ghost"), "--init", str(ckpt), "--out", str(tmp_path / "o")]) == 2
    assert "ghost: no such file or folder" in capsys.readouterr().err


def test_a_cube_of_another_band_set_is_refused(folder, tmp_path, capsys):
    d, ckpt, _ = folder
    (d / "other").mkdir()
    np.save(d / "other" / "d.npy", np.zeros((16, 16, B + 1), np.float32))
    assert main(["embed", str(d), "--init", str(ckpt), "--out", str(tmp_path / "o"), "--amp", "none"]) == 2
    assert "d.npy: its bands differ from those of" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["file", "tag", "local-dir"])
def test_a_cubes_features_do_not_depend_on_the_other_cubes(folder, tmp_path, source):
    """The checkpoint's statistics (a tag's resampled to the data's bands), never the batch's: one cube alone
    gives the same vector as the same cube among others."""
    from conftest import make_checkpoint

    d, ckpt, _ = folder
    init = str(ckpt)
    if source == "tag":
        init = "s3r_resnet18.cr_hims41_v2"
        make_checkpoint(tmp_path / "repo_weights" / f"{init}.safetensors")  # 41 bands 380-780 nm, by wavelength
    if source == "local-dir":  # a folder written by `s3r-zoo export`
        s3r_zoo.hub.export_hub_folder(ckpt, tmp_path / "exported")
        init = f"local-dir:{tmp_path / 'exported'}"
    alone = tmp_path / "alone"
    alone.mkdir()
    np.save(alone / "b.npy", np.load(d / "b.npy"))
    np.savetxt(alone / "wavelengths_nm.txt", WL)
    one = run_embed(EmbedSpec(source=str(alone), out=str(tmp_path / "one"), init=init, amp="none"))
    run_embed(EmbedSpec(source=str(d), out=str(tmp_path / "all"), init=init, amp="none"))
    assert one["normalisation"] == "checkpoint"
    np.testing.assert_array_equal(np.load(tmp_path / "one" / "features.npy")[0],
                                  np.load(tmp_path / "all" / "features.npy")[1])


def test_an_init_without_statistics_asks_for_data_statistics(folder, tmp_path, capsys):
    d, _, _ = folder
    assert main(["embed", str(d), "--init", "random", "--model", "s3r_resnet18", "--out", str(tmp_path / "r")]) == 2
    assert "pass --normalize data" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_a_cube_without_wavelengths_among_cubes_with_them_is_refused(folder, tmp_path, capsys):
    d, ckpt, _ = folder
    (d / "nowl").mkdir()
    np.save(d / "nowl" / "x.npy", np.load(d / "b.npy"))  # same bands, but its file does not say which
    assert main(["embed", str(d), "--init", str(ckpt), "--out", str(tmp_path / "m"), "--amp", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "x.npy: its bands differ from those of" in err and not (tmp_path / "m" / ".embed_parts").exists()


def test_data_statistics_follow_the_nan_policy(folder, tmp_path):
    """One NaN pixel with --nan zero and data statistics: finite features (the statistics were NaN, and with
    them all 512 feature values)."""
    d, _, _ = folder
    a = np.load(d / "b.npy")
    a[3, 4, 2] = np.nan
    np.save(d / "b.npy", a)
    s = run_embed(EmbedSpec(source=str(d), out=str(tmp_path / "z"), init="random", model="s3r_resnet18",
                            normalize="data", nan="zero", amp="none"))
    assert s["normalisation"].startswith("data") and np.isfinite(np.load(tmp_path / "z" / "features.npy")).all()
