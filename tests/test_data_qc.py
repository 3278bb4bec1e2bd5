"""``s3r-zoo data qc``: noise bands, NaN pixels, saturation and artefacts found by the low-rank residual."""

import csv
import json

import numpy as np
import pytest

from s3r_zoo.cli import main
from s3r_zoo.data.io import Cube
from s3r_zoo.data.qc import cube_qc

B = 12


def _tissue(h=64, w=64, seed=0, dust=True):
    """A 3-endmember low-rank cube with sensor noise; band 11 pure noise; a dust spot of a foreign spectrum."""
    g = np.random.default_rng(seed)
    spectra = g.random((3, B)) + 0.2
    abund = g.dirichlet(np.ones(3), size=(h, w))
    cube = abund @ spectra + g.normal(0, 0.002, (h, w, B))
    cube[..., 11] = g.normal(0.5, 0.1, (h, w))
    if dust:
        cube[20:28, 40:48] += np.sin(np.arange(B) * 2.0) * 0.3  # no mix of the tissue spectra makes this
    return cube.astype(np.float32)


def test_qc_finds_the_noise_band_the_dust_and_the_nan_pixels():
    data = _tissue()
    data[5, 7, 3] = np.nan
    data[60, 2, 0] = np.inf
    data[..., 4] = np.minimum(data[..., 4], np.percentile(data[..., 4], 90))  # clipped: 10 % at the top value
    wl = np.linspace(450, 780, B)
    rec, score = cube_qc(Cube(data=data, wavelengths=wl, path="t"))
    assert [n["band"] for n in rec["noise_bands"]] == [12] and rec["noise_bands"][0]["nm"] == 780.0
    assert rec["nonfinite_pixel_rc"] == [[5, 7], [60, 2]] and rec["nonfinite_pixels"] == 2
    assert rec["saturated_per_band"]["5"] >= 0.09 * 64 * 64 and set(rec["saturated_per_band"]) == {"5"}
    dust = score[20:28, 40:48]
    rest = score.copy()
    rest[20:28, 40:48] = np.nan
    assert np.nanmin(dust) > 5 and np.nanmedian(rest) < 1.5
    assert rec["artefact_pixels"] >= 64 and rec["artefact_fraction"] < 0.05
    top = rec["regions"][0]  # the worst window holds the dust
    assert top["row"] <= 27 and top["row"] + top["size"] >= 20 and top["col"] <= 47 and top["col"] + top["size"] >= 40
    assert rec["qc_score"] == pytest.approx(100 * (rec["artefact_pixels"] + 2) / (64 * 64), abs=1e-4)


def test_qc_command_ranks_a_folder_worst_first(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / "clean.npy", _tissue(dust=False, seed=1))
    np.save(tmp_path / "d" / "dusty.npy", _tissue(seed=2))
    assert main(["data", "qc", str(tmp_path / "d"), "--out", str(tmp_path / "q")]) == 0
    with open(tmp_path / "q" / "qc_ranking.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == ["dusty.npy", "clean.npy"]
    assert float(rows[0]["qc_score"]) > 10 * float(rows[1]["qc_score"])
    for stem in ("clean", "dusty"):
        assert (tmp_path / "q" / f"{stem}_qc.png").stat().st_size > 10_000
        assert json.loads((tmp_path / "q" / f"{stem}_qc.json").read_text())["path"] == f"{stem}.npy"
    assert str(tmp_path) not in (tmp_path / "q" / "qc_ranking.csv").read_text()
    assert "dusty.npy: QC score" in capsys.readouterr().out


@pytest.mark.parametrize("args,message", [(["--r2-min", "2"], "--r2-min: expected 0..1, found 2.0"),
                                          (["--z", "0"], "--z: expected > 0, found 0.0")])
def test_qc_bad_options_write_nothing(tmp_path, capsys, args, message):
    np.save(tmp_path / "c.npy", _tissue())
    assert main(["data", "qc", str(tmp_path / "c.npy"), "--out", str(tmp_path / "q"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "q").exists()
    assert main(["data", "qc", str(tmp_path / "ghost.npy"), "--out", str(tmp_path / "q")]) == 2
    assert "ghost.npy: no such file or folder" in capsys.readouterr().err and not (tmp_path / "q").exists()


def test_qc_on_the_real_hims_cube(hims_dir, tmp_path, capsys):
    assert main(["data", "qc", str(hims_dir / "cube_hwc_f16.npy"), "--out", str(tmp_path)]) == 0
    rec = json.loads((tmp_path / "cube_hwc_f16_qc.json").read_text())
    assert [n["nm"] for n in rec["noise_bands"]] == [780.0]
    assert rec["weakest_kept_band"]["nm"] == 380.0
    assert rec["nonfinite_pixel_rc"] == [[537, 590], [680, 622]]  # the data README's two NaN pixels
    assert "noise bands: 780 nm; weakest of the rest: 380.0 nm" in capsys.readouterr().out


def test_a_clean_cube_gets_no_region_boxes_and_a_nan_cube_ranks_above_a_clean_one_on_a_tie():
    clean, _ = cube_qc(Cube(data=_tissue(dust=False, seed=1), wavelengths=None, path="c"), z=1e6)
    assert clean["qc_score"] == 0 and clean["regions"] == []  # nothing to look at: no box drawn
    data = _tissue(dust=False, seed=1)
    data[3, 3, 2] = np.nan
    rec, _ = cube_qc(Cube(data=data, wavelengths=None, path="n"), z=1e6)
    assert rec["nonfinite_pixels"] == 1 and len(rec["regions"]) == 1  # the window around the NaN pixel
    r = rec["regions"][0]
    assert r["row"] <= 3 < r["row"] + r["size"] and r["col"] <= 3 < r["col"] + r["size"]


def test_qc_ranking_breaks_a_tie_by_nan_pixels():
    from s3r_zoo.data.qc import rank

    clean = {"path": "clean", "qc_score": 0.0244, "nonfinite_pixels": 0, "artefact_fraction": 0.000244}
    nan = {"path": "nan", "qc_score": 0.0244, "nonfinite_pixels": 1, "artefact_fraction": 0.0}
    assert [r["path"] for r in rank([clean, nan])] == ["nan", "clean"]
    worse = {**clean, "path": "worse", "qc_score": 1.0}
    assert [r["path"] for r in rank([clean, nan, worse])] == ["worse", "nan", "clean"]


def test_false_colours_say_which_bands_they_show_and_when_they_are_guessed():
    from s3r_zoo.data.report import colour_bands

    data = np.zeros((4, 4, 40), np.float32)
    assert colour_bands(Cube(data=data, wavelengths=None, path="x.tif")) == \
        "R/G/B = bands 30 / 21 / 11 (guessed: the file has no wavelengths)"
    assert colour_bands(Cube(data=data, wavelengths=np.linspace(450, 750, 40), path="x.npy")).startswith(
        "R/G/B = 642.308 nm / 550 nm")
