import numpy as np
import pytest

from s3r_zoo.data import SplitFileDataset, read_cube
from s3r_zoo.data.synthetic import PRESETS, SyntheticHSI, absorbance_spectra, simulate_cube, write_dataset
from s3r_zoo.lowrank import loo_r2
import torch


@pytest.mark.parametrize("preset, bands, lo, hi", [("pdac_like", 40, 450, 750), ("plgc_like", 32, 470, 670)])
def test_presets_match_the_paper(preset, bands, lo, hi):
    p = PRESETS[preset]
    assert p.num_bands == bands and p.wavelengths_nm[0] == lo and p.wavelengths_nm[-1] == hi
    c = simulate_cube(preset, 0, 48, seed=1)
    assert c.shape == (48, 48, bands) and c.data.dtype == np.float32
    np.testing.assert_allclose(c.wavelengths, p.wavelengths_nm)


def test_default_size_and_any_size():
    assert PRESETS["pdac_like"].size == (512, 612) and PRESETS["plgc_like"].size == (512, 512)
    assert simulate_cube("plgc_like", 2, (40, 70)).shape == (40, 70, 32)


def test_deterministic_by_seed():
    a = simulate_cube("pdac_like", 1, 64, seed=5)
    b = simulate_cube("pdac_like", 1, 64, seed=5)
    c = simulate_cube("pdac_like", 1, 64, seed=6)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)


def test_physics_transmittance_and_low_rank():
    c = simulate_cube("pdac_like", 1, 96, seed=2)
    d = c.data
    assert 0.05 < d.min() and d.max() < 1.2 and np.isfinite(d).all()
    # glass is bright, stained tissue absorbs most near the eosin/haematoxylin peaks (~530-590 nm)
    mean_spectrum = d.reshape(-1, d.shape[-1]).mean(0)
    assert c.wavelengths[np.argmin(mean_spectrum)] == pytest.approx(550, abs=45)
    r2 = loo_r2(torch.from_numpy(d.reshape(-1, d.shape[-1]))).numpy()
    assert np.median(r2) > 0.95  # Beer-Lambert mixtures of 3-4 stains are low-rank, as real HIMS data


def test_absorbance_peaks():
    lam = np.arange(380, 781, 1.0)
    s = absorbance_spectra(lam)
    assert lam[np.argmax(s["eosin"])] == pytest.approx(525, abs=5)
    assert lam[np.argmax(s["haemoglobin"])] == pytest.approx(415, abs=3)
    assert 540 <= lam[np.argmax(s["haematoxylin"])] <= 600


def test_class_differences_show_in_nuclear_absorbance():
    """Carcinoma: more / darker nuclei -> lower transmittance at the haematoxylin band."""
    def hx(label):
        vals = [simulate_cube("pdac_like", label, 128, seed=s, difficulty=0.0).data[..., 18] for s in range(4)]
        return np.mean([np.mean(v < 0.6) for v in vals])  # fraction of dark nuclear pixels at ~588 nm
    assert hx(1) > 2 * hx(0) > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"label: expected 0..1"):
        simulate_cube("pdac_like", 2, 32)
    with pytest.raises(ValueError, match=r"difficulty: expected a value in \[0, 1\]"):
        simulate_cube("pdac_like", 0, 32, difficulty=2)
    with pytest.raises(ValueError, match="size: expected at least 8"):
        simulate_cube("pdac_like", 0, 4)


def test_write_dataset_and_read_back(tmp_path):
    meta = write_dataset(tmp_path / "ds", "plgc_like", n=12, size=24, seed=0)
    assert sum(meta["split_sizes"].values()) == 12 and set(meta["class_counts"]) == set(PRESETS["plgc_like"].classes)
    train = SplitFileDataset(tmp_path / "ds" / "train.txt", crop=16)
    assert train.classes == sorted(PRESETS["plgc_like"].classes) or set(train.classes) <= set(PRESETS["plgc_like"].classes)
    x, _ = train[0]
    assert x.shape == (32, 16, 16)
    first = (tmp_path / "ds" / "train.txt").read_text().split()[0]
    c = read_cube(tmp_path / "ds" / first)
    np.testing.assert_allclose(c.wavelengths, PRESETS["plgc_like"].wavelengths_nm, atol=1e-3)
    # every cube is in exactly one split
    lines = sum(((tmp_path / "ds" / f"{s}.txt").read_text().splitlines() for s in ("train", "val", "test")), [])
    assert len(lines) == len(set(lines)) == 12


def test_synthetic_dataset_on_the_fly():
    ds = SyntheticHSI("pdac_like", n=10, size=32, seed=1)
    assert len(ds) == 10 and ds.labels.count(1) == 5
    x, y = ds[3]
    assert x.shape == (40, 32, 32) and y == ds.labels[3]
    assert torch.equal(ds[3][0], x)
