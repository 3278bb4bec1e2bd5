"""Readers: round trips through files the tests write, real HIMS files, NaN policy, bad input."""

import shutil

import h5py
import numpy as np
import pytest
import tifffile
from scipy.io import savemat

from s3r_zoo.data import CubeReadError, detect_format, read_cube
from s3r_zoo.data.io import apply_nan_policy

RNG = np.random.default_rng(0)
CUBE = RNG.random((6, 5, 4)).astype(np.float32)  # H=6, W=5, B=4: every axis distinguishable
WL = np.array([450.0, 500.0, 550.0, 600.0])


def test_npy_is_memory_mapped_with_sidecar_wavelengths(tmp_path):
    np.save(tmp_path / "a.npy", CUBE)
    c = read_cube(tmp_path / "a.npy")
    assert isinstance(c.data, np.memmap) and c.wavelengths is None and c.format == "npy"
    np.testing.assert_array_equal(c.data, CUBE)
    np.savetxt(tmp_path / "a.wavelengths_nm.txt", WL)
    np.testing.assert_array_equal(read_cube(tmp_path / "a.npy").wavelengths, WL)


def test_npy_band_axis(tmp_path):
    np.save(tmp_path / "b.npy", CUBE.transpose(2, 0, 1))
    np.testing.assert_array_equal(read_cube(tmp_path / "b.npy", band_axis=0).data, CUBE)


def test_npz_single_array_and_wavelengths(tmp_path):
    np.savez(tmp_path / "a.npz", cube=CUBE, wavelengths=WL)
    c = read_cube(tmp_path / "a.npz")
    np.testing.assert_array_equal(c.data, CUBE)
    np.testing.assert_array_equal(c.wavelengths, WL)


def test_npz_needs_key_when_ambiguous(tmp_path):
    np.savez(tmp_path / "two.npz", a=CUBE, b=CUBE)
    with pytest.raises(CubeReadError, match="expected exactly one 3-D array, found 2.*key='NAME'"):
        read_cube(tmp_path / "two.npz")
    np.testing.assert_array_equal(read_cube(tmp_path / "two.npz", key="b").data, CUBE)
    with pytest.raises(CubeReadError, match="no variable 'c'; found \\['a', 'b'\\]"):
        read_cube(tmp_path / "two.npz", key="c")


def test_mat_v5_and_v73_agree(tmp_path):
    savemat(tmp_path / "v5.mat", {"hsi": CUBE, "wavelengths": WL})
    # MATLAB -v7.3 = HDF5 after a 512-byte text header; column-major, so h5py sees the axes reversed
    path = tmp_path / "v73.mat"
    with h5py.File(path, "w", userblock_size=512) as h:
        h["hsi"] = CUBE.T
        h["wavelengths"] = WL[None, :].T
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file")
    for name in ("v5.mat", "v73.mat"):
        c = read_cube(tmp_path / name)
        np.testing.assert_array_equal(c.data, CUBE)
        np.testing.assert_array_equal(c.wavelengths, WL)


def test_hdf5_generic(tmp_path):
    with h5py.File(tmp_path / "c.h5", "w") as h:
        h["data"] = CUBE
    np.testing.assert_array_equal(read_cube(tmp_path / "c.h5").data, CUBE)


def test_tiff_multipage_bands_first_and_samples_last(tmp_path):
    tifffile.imwrite(tmp_path / "pages.tif", CUBE.transpose(2, 0, 1), photometric="minisblack",
                     metadata={"wavelengths_nm": WL.tolist()})
    c = read_cube(tmp_path / "pages.tif")
    np.testing.assert_array_equal(c.data, CUBE)
    np.testing.assert_array_equal(c.wavelengths, WL)
    tifffile.imwrite(tmp_path / "hwc.tiff", CUBE, photometric="minisblack", planarconfig="contig")
    np.testing.assert_array_equal(read_cube(tmp_path / "hwc.tiff", band_axis=-1).data, CUBE)


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
def test_envi_round_trip(tmp_path, interleave):
    from spectral.io import envi

    envi.save_image(str(tmp_path / "c.hdr"), CUBE, interleave=interleave, ext=".img",
                    metadata={"wavelength": [w / 1000 for w in WL], "wavelength units": "Micrometers"})
    for p in ("c.hdr", "c.img"):
        c = read_cube(tmp_path / p)
        np.testing.assert_allclose(c.data, CUBE)
        np.testing.assert_allclose(c.wavelengths, WL)


@pytest.mark.parametrize("units,values,expected_nm", [
    ("Nanometers", WL, WL), ("nm", WL, WL), ("Micrometers", WL / 1000, WL), ("um", WL / 1000, WL),
    ("Millimeters", WL / 1e6, WL), ("Angstroms", WL * 10, WL),
    (None, WL / 1000, WL), ("Unknown", WL, WL), ("Index", np.arange(1.0, 5.0), None)])
def test_envi_wavelength_units_and_fwhm(tmp_path, caplog, units, values, expected_nm):
    from spectral.io import envi

    meta = {"wavelength": list(values), "fwhm": [v / 50 for v in values]}
    if units is not None:
        meta["wavelength units"] = units
    envi.save_image(str(tmp_path / "c.hdr"), CUBE, ext=".img", metadata=meta)
    with caplog.at_level("WARNING"):
        c = read_cube(tmp_path / "c.hdr")
    if expected_nm is None:
        assert c.wavelengths is None and c.fwhm is None and "band numbers, not wavelengths" in caplog.text
        return
    np.testing.assert_allclose(c.wavelengths, expected_nm)
    np.testing.assert_allclose(c.fwhm, expected_nm / 50)  # the widths in the same units, converted alike
    assert ("from their magnitude" in caplog.text) == (units in (None, "Unknown"))


def test_envi_non_length_units_and_bad_fwhm_are_refused(tmp_path):
    from spectral.io import envi

    envi.save_image(str(tmp_path / "w.hdr"), CUBE, ext=".img",
                    metadata={"wavelength": [22222.0, 20000.0, 18181.8, 16666.7], "wavelength units": "Wavenumber"})
    with pytest.raises(CubeReadError, match="w.hdr: wavelength units: expected a length .* found 'Wavenumber'"):
        read_cube(tmp_path / "w.hdr")
    envi.save_image(str(tmp_path / "f.hdr"), CUBE, ext=".img",
                    metadata={"wavelength": list(WL), "fwhm": [10.0, 10.0]})
    with pytest.raises(CubeReadError, match=r"f.hdr: fwhm: expected 4 positive widths \(one per band\), found 2"):
        read_cube(tmp_path / "f.hdr")
    np.save(tmp_path / "n.npy", CUBE)
    assert read_cube(tmp_path / "n.npy").fwhm is None  # formats without widths


def _hims_band(path, arr):
    with h5py.File(path, "w", userblock_size=512) as h:
        h["vv"] = arr
        h["sizex"] = np.array([[arr.shape[0]]], dtype=float)
        h["sizey"] = np.array([[arr.shape[1]]], dtype=float)


def test_hims_folder_numeric_order(tmp_path):
    """camera_10 must come after camera_2 (numeric, not lexicographic, order)."""
    for n in (1, 2, 10, 3):
        _hims_band(tmp_path / f"trans_mean_camera_{n}.mat", np.full((4, 3), float(n)))
    c = read_cube(tmp_path)
    assert c.format == "hims" and c.shape == (4, 3, 4)
    np.testing.assert_array_equal(c.data[0, 0], [1, 2, 3, 10])
    np.testing.assert_array_equal(c.wavelengths, [380, 390, 400, 470])


def test_hims_folder_shape_mismatch(tmp_path):
    _hims_band(tmp_path / "trans_mean_camera_1.mat", np.zeros((4, 3)))
    _hims_band(tmp_path / "trans_mean_camera_2.mat", np.zeros((4, 4)))
    with pytest.raises(CubeReadError, match="trans_mean_camera_2.mat: band shape \\(4, 4\\) differs from \\(4, 3\\)"):
        read_cube(tmp_path, nan="keep")


def test_real_hims_originals_match_published_cube(hims_dir, tmp_path):
    folder = tmp_path / "hims"
    shutil.copytree(hims_dir / "original", folder)
    c = read_cube(folder, nan="keep")
    ref = read_cube(hims_dir / "cube_hwc_f16.npy", nan="keep")
    assert c.shape == (844, 676, 3) and ref.shape == (844, 676, 41)
    np.testing.assert_array_equal(c.wavelengths, [380, 390, 780])
    np.testing.assert_array_equal(ref.wavelengths, np.arange(380, 781, 10))
    sel = np.asarray(ref.data[..., [0, 1, 40]], dtype=np.float32)
    ok = np.isfinite(sel)
    # float16 rounding of the published cube: |x| < 1.6 -> 1e-3, band 41 up to |54| -> 3e-2
    assert np.allclose(c.data[ok], sel[ok], rtol=2e-3, atol=1e-3)
    nan_rc = sorted(map(tuple, np.argwhere(np.isnan(c.data[..., 2]))))
    assert nan_rc == [(537, 590), (680, 622)]  # the orientation of the data README


def test_real_hims_nan_error_names_band(hims_dir):
    with pytest.raises(CubeReadError, match=r"2 NaN/Inf values \(band 41 \(780 nm\): 2\)"):
        read_cube(hims_dir / "cube_hwc_f16.npy")


@pytest.mark.parametrize("policy", ["zero", "band_mean", "inpaint"])
def test_nan_policies(policy):
    a = np.ones((5, 5, 2), dtype=np.float32)
    a[..., 1] = np.arange(25, dtype=np.float32).reshape(5, 5)
    a[2, 2, 1] = np.nan
    a[0, 0, 1] = np.inf
    out = apply_nan_policy(a, policy, "x")
    assert np.isfinite(out).all() and np.isnan(a[2, 2, 1])  # input untouched
    if policy == "zero":
        assert out[2, 2, 1] == 0
    elif policy == "band_mean":
        assert out[2, 2, 1] == pytest.approx(np.mean(a[..., 1][np.isfinite(a[..., 1])]))
    else:
        assert out[2, 2, 1] == pytest.approx(12.0)  # mean of its 8 neighbours on a linear ramp
    np.testing.assert_array_equal(out[..., 0], 1)


def test_nan_keep_and_bad_policy():
    a = np.full((2, 2, 1), np.nan, dtype=np.float32)
    assert np.isnan(apply_nan_policy(a, "keep", "x")).all()
    with pytest.raises(ValueError, match="nan: expected one of"):
        apply_nan_policy(a, "drop", "x")


def test_corrupt_and_wrong_files(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(CubeReadError, match="bad.npy: cannot read as npy"):
        read_cube(tmp_path / "bad.npy")
    np.save(tmp_path / "full.npy", CUBE)
    (tmp_path / "cut.npy").write_bytes((tmp_path / "full.npy").read_bytes()[:200])
    with pytest.raises(CubeReadError, match="cut.npy: cannot read as npy"):
        read_cube(tmp_path / "cut.npy")
    (tmp_path / "bad.mat").write_bytes(b"MATLAB 5.0 MAT-file nonsense")
    with pytest.raises(CubeReadError, match="bad.mat: cannot read as mat"):
        read_cube(tmp_path / "bad.mat")
    np.save(tmp_path / "flat.npy", CUBE[..., 0])
    with pytest.raises(CubeReadError, match="flat.npy: expected a 3-D cube .H, W, B., found a 2-D array"):
        read_cube(tmp_path / "flat.npy")
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(CubeReadError, match="x.png: unknown cube format '.png'"):
        read_cube(tmp_path / "x.png")
    with pytest.raises(CubeReadError, match="nope.npy: no such file"):
        read_cube(tmp_path / "nope.npy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CubeReadError, match="empty: a folder, but not a HIMS folder"):
        detect_format(tmp_path / "empty")


def test_mismatched_wavelengths(tmp_path):
    np.save(tmp_path / "a.npy", CUBE)
    with pytest.raises(CubeReadError, match="a.npy: wavelengths: expected 4 band centres .* found 3"):
        read_cube(tmp_path / "a.npy", wavelengths=[1.0, 2.0, 3.0])
    np.savetxt(tmp_path / "wavelengths_nm.txt", [500.0, 400.0, 600.0, 700.0])
    with pytest.raises(CubeReadError, match="strictly increasing"):
        read_cube(tmp_path / "a.npy")


def test_a_tiff_without_wavelengths_takes_them_from_a_sidecar_even_through_the_cache(tmp_path, monkeypatch):
    import tifffile

    from s3r_zoo.data.cache import open_cube

    monkeypatch.setenv("S3R_ZOO_CACHE", str(tmp_path / "cache"))
    tifffile.imwrite(tmp_path / "t.tif", np.random.default_rng(0).random((5, 8, 8), dtype=np.float32))
    assert read_cube(tmp_path / "t.tif").wavelengths is None and open_cube(tmp_path / "t.tif").wavelengths is None
    np.savetxt(tmp_path / "t.wavelengths_nm.txt", np.linspace(450, 650, 5))  # added after the first (cached) read
    assert read_cube(tmp_path / "t.tif").wavelengths.tolist() == [450, 500, 550, 600, 650]
    assert open_cube(tmp_path / "t.tif").wavelengths.tolist() == [450, 500, 550, 600, 650]
