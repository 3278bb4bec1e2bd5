import json
import numpy as np
import pytest

from s3r_zoo.data import SplitFileDataset, read_cube
from s3r_zoo.data.synthetic import PRESETS, absorbance_spectra, simulate_cube
from s3r_zoo.data.simulated_sets import SyntheticHSI, write_dataset
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
    # Beer-Lambert mixtures of 3-4 stains are low-rank, as real HIMS data: median leave-one-band-out R2 per
    # cube (both classes, 4 seeds), typically 0.97-0.99; a cube of pale nuclei (stain-balanced carcinoma) ~0.95
    r2 = [np.median(loo_r2(torch.from_numpy(simulate_cube("pdac_like", lbl, 96, seed=s).data.reshape(-1, 40))).numpy())
          for lbl in (0, 1) for s in range(4)]
    assert np.median(r2) > 0.97 and min(r2) > 0.93


def test_absorbance_peaks():
    lam = np.arange(380, 781, 1.0)
    s = absorbance_spectra(lam)
    assert lam[np.argmax(s["eosin"])] == pytest.approx(525, abs=5)
    assert lam[np.argmax(s["haemoglobin"])] == pytest.approx(415, abs=3)
    assert 540 <= lam[np.argmax(s["haematoxylin"])] <= 600


def test_class_differences_show_in_nuclear_absorbance_without_stain_balance():
    """stain_balance 0: carcinoma's many dark nuclei -> more dark pixels at the haematoxylin band."""
    def hx(label):
        vals = [simulate_cube("pdac_like", label, 128, seed=s, difficulty=0.0, stain_balance=0).data[..., 18]
                for s in range(4)]
        return np.mean([np.mean(v < 0.6) for v in vals])  # fraction of dark nuclear pixels at ~588 nm
    assert hx(1) > 2 * hx(0) > 0


def _mean_spectra(preset, balance, n=12, size=64):
    """Per class: the mean spectra of n cubes, (n, B)."""
    return [np.stack([simulate_cube(preset, c, size, seed=s, difficulty=0.0, magnification=0.75,
                                    stain_balance=balance).data.mean((0, 1)) for s in range(n)])
            for c in range(len(PRESETS[preset].classes))]


@pytest.mark.parametrize("preset", ["pdac_like", "plgc_like"])
def test_stain_balance_leaves_the_class_in_morphology_not_in_the_mean_spectrum(preset):
    """At stain_balance 1 the classes' mean spectra differ, band by band, by about one within-class standard
    deviation (cubes differ in stain strength and tissue content): a mean spectrum says little about the
    class. Without it carcinoma's many dark nuclei put the classes >3 standard deviations apart."""
    def effect_size(spectra):  # largest |difference of class means| / pooled within-class std, over bands
        pooled = np.sqrt(np.mean([s.var(0, ddof=1) for s in spectra], axis=0))
        return max((np.abs(s.mean(0) - spectra[0].mean(0)) / pooled).max() for s in spectra[1:])
    balanced = effect_size(_mean_spectra(preset, 1.0))
    assert balanced < 1.5
    if preset == "pdac_like":
        assert effect_size(_mean_spectra(preset, 0.0)) > 2 * balanced


def test_magnification_scales_structures():
    """Half the magnification: the same tissue in fewer pixels, so more edges per pixel."""
    def edges(mag):
        x = np.stack([simulate_cube("pdac_like", 1, 96, seed=s, magnification=mag).data[..., 18] for s in range(3)])
        return np.abs(np.diff(x, axis=2)).mean()
    assert edges(0.5) > 1.3 * edges(1.0)
    with pytest.raises(ValueError, match=r"magnification: expected a value in \[0.1, 10\]"):
        simulate_cube("pdac_like", 0, 32, magnification=0)
    with pytest.raises(ValueError, match=r"stain_balance: expected a value in \[0, 1\]"):
        simulate_cube("pdac_like", 0, 32, stain_balance=2)


def test_write_dataset_with_own_split_and_wavelengths(tmp_path):
    wl = np.linspace(460, 740, 36)
    meta = write_dataset(tmp_path / "ds", "pdac_like", n=20, size=16, split=(0.4, 0.2, 0.4), wavelengths=wl,
                         magnification=0.75)
    assert meta["split_sizes"] == {"train": 8, "val": 4, "test": 8} and meta["magnification"] == 0.75
    first = (tmp_path / "ds" / "test.txt").read_text().split()[0]
    c = read_cube(tmp_path / "ds" / first)
    assert c.data.shape == (16, 16, 36)
    np.testing.assert_allclose(c.wavelengths, wl, atol=1e-3)
    with pytest.raises(ValueError, match="split: expected three fractions"):
        write_dataset(tmp_path / "bad", "pdac_like", n=20, size=16, split=(0.5, 0.6, 0.1))
    with pytest.raises(ValueError, match="magnification: expected"):
        write_dataset(tmp_path / "bad", "pdac_like", n=20, size=16, magnification=20)
    assert not (tmp_path / "bad").exists()  # refused before writing anything


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


def test_haemoglobin_spectra_have_prahls_bands():
    """Oxy-haemoglobin: two Q bands (~540 and ~580 nm) around a dip at 560; deoxy-haemoglobin: one band at 550-560 nm
    and far more absorption above 600 nm (Prahl's tabulation)."""
    from s3r_zoo.data.chemistry import haemoglobin_spectra

    lam = np.arange(500, 701, 10)
    oxy, deoxy = haemoglobin_spectra(lam)
    at = dict(zip(lam.tolist(), zip(oxy, deoxy)))
    assert at[540][0] > at[560][0] < at[580][0]  # HbO2's Q bands
    assert max(range(520, 600, 10), key=lambda w: at[w][1]) in (550, 560)  # Hb's single band
    assert all(at[w][1] > 3 * at[w][0] for w in range(610, 701, 10))
    assert oxy[lam == 580][0] == pytest.approx(0.5)  # the simulator's earlier Q-band scale


def test_world_c_classes_differ_only_in_the_red_cells_oxygenation():
    """World C: with the same random draws, two classes get the same haemoglobin everywhere in total, the same
    diffuse haemoglobin, and a different oxy / deoxy split only where there are red cells."""
    from s3r_zoo.data.synthetic import _local_chemistry

    p = PRESETS["pdac_like"]
    lam = np.asarray(p.wavelengths_nm)
    vessels = np.zeros((64, 64))
    vessels[10:14, 10:14] = 0.5
    _, (oxy0, de0), _ = _local_chemistry(p, 0, 1.0, vessels, (3, 0, 64, 64), 1.0, lam, {})
    _, (oxy1, de1), _ = _local_chemistry(p, 1, 1.0, vessels, (3, 0, 64, 64), 1.0, lam, {})
    np.testing.assert_allclose(oxy0 + de0, oxy1 + de1)
    changed = ~np.isclose(oxy0, oxy1)
    assert changed[10:14, 10:14].all() and 0 < changed.mean() < 0.3  # the vessel's and capillary red cells only
    assert (oxy1[changed] < oxy0[changed]).all()  # carcinoma's red cells are less oxygenated


def test_worlds_keep_world_m_and_are_recorded(tmp_path):
    """cues='M' is the default world; C and M+C change the cube; the data set's meta names its world; a bad
    world is refused in one line before anything is written."""
    m = simulate_cube("pdac_like", 1, 48, seed=4, magnification=0.75)
    np.testing.assert_array_equal(m.data, simulate_cube("pdac_like", 1, 48, seed=4, magnification=0.75,
                                                        cues="M").data)
    for cues in ("C", "M+C"):
        assert not np.array_equal(m.data, simulate_cube("pdac_like", 1, 48, seed=4, magnification=0.75,
                                                        cues=cues).data)
    assert write_dataset(tmp_path / "c", "pdac_like", n=4, size=16, cues="M+C")["cues"] == "M+C"
    with pytest.raises(ValueError, match=r"cues: expected one of \('M', 'C', 'M\+C'\), found 'X'"):
        write_dataset(tmp_path / "x", "pdac_like", n=4, size=16, cues="X")
    assert not (tmp_path / "x").exists()


def test_simulated_cubes_carry_their_draws(tmp_path):
    """Each simulated cube records its own draws (Cube.meta's latents): the chemistry worlds' red-cell SO2 is the
    class's, the nuisances are within their declared ranges, the same seed gives the same draws, and a written set
    lists every cube's draws under its path in meta.json (what `bench latents` regresses features on)."""
    from s3r_zoo.data.chemistry import CHEMISTRY, DIFFUSE_HB_MAX, DIFFUSE_SO2

    for label, cls in enumerate(("normal", "carcinoma")):
        lat = simulate_cube("pdac_like", label, 32, seed=3, difficulty=0.0, cues="C").meta["latents"]
        assert lat["rbc_so2"] == CHEMISTRY["pdac_like"][cls].rbc_so2
        assert 0 <= lat["diffuse_hb"] <= DIFFUSE_HB_MAX and DIFFUSE_SO2[0] <= lat["diffuse_so2"] <= DIFFUSE_SO2[1]
        assert lat == simulate_cube("pdac_like", label, 32, seed=3, difficulty=0.0, cues="C").meta["latents"]
    m = simulate_cube("pdac_like", 0, 32, seed=3).meta["latents"]
    assert set(m) == {"stain_h", "stain_e", "illumination_tilt"}  # world M has no chemistry draws
    meta = write_dataset(tmp_path / "c", "pdac_like", n=6, size=16, cues="C", split=(0.5, 0.17, 0.33))
    listed = [line.split()[0] for s in ("train", "val", "test") for line in (tmp_path / "c" / f"{s}.txt").open()]
    assert sorted(meta["latents"]) == sorted(listed)
    assert json.loads((tmp_path / "c" / "meta.json").read_text())["latents"] == meta["latents"]


def test_a_chemistry_twin_changes_only_the_draw_it_sets():
    """simulate_cube(chemistry=...) makes a counterfactual twin: setting the red cells' SO2 changes the spectra of
    the red-cell pixels only (same geometry, stains, noise and other draws), setting a draw to its own value gives
    the cube bit for bit, and a bad override is refused in one line naming what was expected."""
    kw = dict(difficulty=0.0, magnification=0.75, cues="C")
    cube = simulate_cube("pdac_like", 1, 40, seed=5, **kw)
    lat = cube.meta["latents"]
    same = simulate_cube("pdac_like", 1, 40, seed=5, **kw, chemistry={"rbc_so2": lat["rbc_so2"]})
    assert np.array_equal(cube.data, same.data)
    twin = simulate_cube("pdac_like", 1, 40, seed=5, **kw, chemistry={"rbc_so2": 0.97})
    assert twin.meta["latents"] == {**lat, "rbc_so2": 0.97}
    moved = np.abs(twin.data - cube.data).max(-1) > 1e-6
    assert 0 < moved.mean() < 0.6  # the red cells (blurred), not the whole tissue
    diffuse = simulate_cube("pdac_like", 1, 40, seed=5, **kw, chemistry={"diffuse_so2": 0.9})
    assert diffuse.meta["latents"]["diffuse_so2"] == 0.9 and not np.array_equal(diffuse.data, cube.data)
    with pytest.raises(ValueError, match=r"chemistry: expected some of \['rbc_so2', 'diffuse_hb', 'diffuse_so2'\], found \['so2'\]"):
        simulate_cube("pdac_like", 1, 40, cues="C", chemistry={"so2": 0.5})
    with pytest.raises(ValueError, match=r"chemistry: expected rbc_so2 in \[0, 1\], found 1.5"):
        simulate_cube("pdac_like", 1, 40, cues="C", chemistry={"rbc_so2": 1.5})
    with pytest.raises(ValueError, match="chemistry: world 'M' has no local chemistry to set"):
        simulate_cube("pdac_like", 1, 40, chemistry={"rbc_so2": 0.5})
