"""The decode-once cube cache and ``s3r-zoo data convert``: same data, memory-mapped, invalidated by edits."""

import os

import numpy as np
import pytest
import tifffile
from scipy.io import savemat

from s3r_zoo.cli import main
from s3r_zoo.data import UnlabelledCubes, read_cube
from s3r_zoo.data.cache import cache_dir, open_cube

RNG = np.random.default_rng(0)
CUBE = RNG.random((12, 10, 4)).astype(np.float32)
WL = [450.0, 500.0, 550.0, 600.0]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("S3R_ZOO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_mat_file_is_decoded_once_then_memory_mapped(tmp_path, cache):
    savemat(tmp_path / "c.mat", {"cube": CUBE, "wavelengths": np.array(WL)})
    first = open_cube(tmp_path / "c.mat")
    entries = sorted(p.suffix for p in cache.iterdir())
    assert entries == [".json", ".npy"]
    second = open_cube(tmp_path / "c.mat")
    assert isinstance(second.data, np.memmap) and second.format == "mat" and second.path == str(tmp_path / "c.mat")
    np.testing.assert_array_equal(second.data, CUBE)
    np.testing.assert_array_equal(first.wavelengths, WL)
    np.testing.assert_array_equal(second.wavelengths, WL)
    # an edited file (new size or time) is decoded again, never served stale
    savemat(tmp_path / "c.mat", {"cube": CUBE * 2, "wavelengths": np.array(WL)})
    os.utime(tmp_path / "c.mat", ns=(1, 10**18))
    np.testing.assert_array_equal(open_cube(tmp_path / "c.mat").data, CUBE * 2)
    assert len(list(cache.glob("*.npy"))) == 2


def test_crops_through_the_cache_equal_crops_of_the_npy(tmp_path, cache):
    tifffile.imwrite(tmp_path / "c.tif", CUBE.transpose(2, 0, 1), photometric="minisblack")
    np.save(tmp_path / "c.npy", CUBE)
    a = UnlabelledCubes(tmp_path / "c.tif", crop=5, crops_per_cube=6, seed=3)
    b = UnlabelledCubes(tmp_path / "c.npy", crop=5, crops_per_cube=6, seed=3)
    for i in range(6):
        np.testing.assert_array_equal(a[i][0].numpy(), b[i][0].numpy())
    assert len(list(cache.glob("*.npy"))) == 1  # the tif, once; the npy needs no cache


def test_cache_off_and_unwritable_cache_still_read(tmp_path, monkeypatch, caplog):
    savemat(tmp_path / "c.mat", {"cube": CUBE})
    monkeypatch.setenv("S3R_ZOO_CACHE", "off")
    assert cache_dir() is None
    np.testing.assert_array_equal(open_cube(tmp_path / "c.mat").data, CUBE)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("S3R_ZOO_CACHE", str(blocker / "sub"))  # cannot be created: a file is in the way
    with caplog.at_level("WARNING"):
        np.testing.assert_array_equal(open_cube(tmp_path / "c.mat").data, CUBE)
    assert "cannot write" in caplog.text


def test_default_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv("S3R_ZOO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "s3r_zoo" / "cubes"


def test_wavelength_override_applies_to_cached_cubes(tmp_path, cache):
    savemat(tmp_path / "c.mat", {"cube": CUBE})
    open_cube(tmp_path / "c.mat")
    np.testing.assert_array_equal(open_cube(tmp_path / "c.mat", wavelengths=WL).wavelengths, WL)
    with pytest.raises(ValueError, match="expected 4"):
        open_cube(tmp_path / "c.mat", wavelengths=WL[:3])


def test_convert_writes_npy_and_sidecars(tmp_path, capsys):
    from spectral.io import envi

    (tmp_path / "src" / "a").mkdir(parents=True)
    savemat(tmp_path / "src" / "a" / "m.mat", {"cube": CUBE, "wavelengths": np.array(WL)})
    envi.save_image(str(tmp_path / "src" / "e.hdr"), CUBE, ext=".img",
                    metadata={"wavelength": WL, "fwhm": [10.0] * 4, "wavelength units": "nm"})
    assert main(["data", "convert", str(tmp_path / "src"), "--out", str(tmp_path / "out")]) == 0
    m = read_cube(tmp_path / "out" / "a" / "m.npy")
    e = read_cube(tmp_path / "out" / "e.npy")
    np.testing.assert_array_equal(m.data, CUBE)
    np.testing.assert_array_equal(m.wavelengths, WL)
    np.testing.assert_array_equal(e.fwhm, [10.0] * 4)
    assert "2 cube(s)" in capsys.readouterr().out


def test_convert_refuses_missing_source_and_writes_nothing(tmp_path, capsys):
    assert main(["data", "convert", str(tmp_path / "ghost"), "--out", str(tmp_path / "out")]) == 2
    assert "ghost: no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
