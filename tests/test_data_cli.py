import json
import os

import numpy as np

from s3r_zoo.cli import main


def test_data_info_on_real_hims(hims_dir, tmp_path, capsys):
    png, js = tmp_path / "o" / "cube_hwc_f16_preview.png", tmp_path / "o" / "cube_hwc_f16_report.json"
    assert main(["data", "info", str(hims_dir / "cube_hwc_f16.npy"), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "shape (H, W, B) = (844, 676, 41)" in out and "NaN/Inf: 2" in out
    rep = json.loads(js.read_text())
    assert rep["median_r2_in_range"] > 0.98  # S3R's low-rank premise holds on real data (400-700 nm)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_synth_then_info_then_stats(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["data", "synth", "--preset", "pdac_like", "--n", "6", "--size", "32", "--out", str(out),
                 "--magnification", "0.75", "--stain-balance", "0.5"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n"] == 6 and meta["class_counts"] == {"normal": 3, "carcinoma": 3}
    assert meta["magnification"] == 0.75 and meta["stain_balance"] == 0.5
    cube = sorted((out / "cubes").rglob("*.npy"))[0]
    assert main(["data", "info", str(cube), "--out", str(tmp_path / "c")]) == 0
    assert "450-750 nm (40 bands)" in capsys.readouterr().out
    assert (tmp_path / "c" / f"{cube.stem}_preview.png").is_file()
    assert main(["data", "stats", str(out / "train.txt"), "--out", str(tmp_path / "s.json")]) == 0
    stats = json.loads((tmp_path / "s.json").read_text())
    assert len(stats["mean"]) == 40 and all(0 < m < 1.2 for m in stats["mean"])


def test_data_info_bad_file_is_one_line(tmp_path, capsys):
    (tmp_path / "x.npy").write_bytes(b"junk")
    assert main(["data", "info", str(tmp_path / "x.npy")]) == 2
    assert capsys.readouterr().err.startswith("s3r-zoo data info: error: ")


def test_data_info_wavelengths_file(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.random.default_rng(0).random((16, 16, 5)).astype(np.float32))
    np.savetxt(tmp_path / "wl.txt", [400, 450, 500, 550, 600])
    assert main(["data", "info", str(tmp_path / "c.npy"), "--wavelengths-file", str(tmp_path / "wl.txt"),
                 "--out", str(tmp_path / "o")]) == 0
    assert "400-600 nm (5 bands)" in capsys.readouterr().out


def test_data_info_writes_nothing_unless_asked(tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "c.npy", np.random.default_rng(0).random((16, 16, 5)).astype(np.float32))
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["data", "info", str(tmp_path / "c.npy")]) == 0
    assert "shape (H, W, B) = (16, 16, 5)" in capsys.readouterr().out and os.listdir(work) == []


def test_data_info_reports_every_cube_of_a_folder(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["data", "synth", "--preset", "pdac_like", "--n", "4", "--size", "16", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["data", "info", str(out / "cubes"), "--out", str(tmp_path / "r")]) == 0  # was refused: a folder
    printed = capsys.readouterr().out
    assert printed.count("== ") == 4 and printed.count("450-750 nm (40 bands)") == 4
    assert len(list((tmp_path / "r").glob("*__*_preview.png"))) == 4  # named by class folder and cube
