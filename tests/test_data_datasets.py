"""Datasets, crops, band selection/resampling, stats, loader."""

import json

import numpy as np
import pytest
import torch

from s3r_zoo.data import (BandStats, CubeDataset, HSIFolder, SplitFileDataset, UnlabelledCubes,
                          compute_band_stats, read_split_file)
from s3r_zoo.data.stats import RunningBandStats

WL = np.linspace(400, 700, 7)


def _write(path, h=20, w=24, b=7, seed=0, value=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).random((h, w, b)).astype(np.float32) if value is None else \
        np.full((h, w, b), value, np.float32)
    np.save(path, a)
    np.savetxt(path.with_name("wavelengths_nm.txt"), WL)
    return a


@pytest.fixture
def folder(tmp_path):
    for c, n in (("normal", 2), ("tumour", 3)):
        for i in range(n):
            _write(tmp_path / "data" / c / f"{i}.npy", seed=10 * len(c) + i)
    return tmp_path / "data"


def test_hsi_folder_labels_and_random_crops(folder):
    ds = HSIFolder(folder, crop=8, crops_per_cube=2, seed=1)
    assert ds.classes == ["normal", "tumour"] and len(ds) == 10
    assert sorted(set(ds.labels)) == [0, 1] and ds.labels.count(1) == 6
    x, y = ds[0]
    assert x.shape == (7, 8, 8) and x.dtype == torch.float32 and y == 0
    # deterministic per (seed, epoch, index), new crops in a new epoch
    assert torch.equal(ds[3][0], ds[3][0])
    before = ds[3][0]
    ds.set_epoch(1)
    assert not torch.equal(before, ds[3][0])


def test_grid_tiles_cover_the_cube(tmp_path):
    a = _write(tmp_path / "c.npy", h=20, w=24)
    ds = CubeDataset([(tmp_path / "c.npy", -1)], crop=8, crop_mode="grid")
    assert len(ds) == 2 * 3  # floor(20/8) x floor(24/8)
    np.testing.assert_array_equal(ds[4][0].numpy(), a[8:16, 8:16].transpose(2, 0, 1))


def test_center_crop_and_whole_cube(tmp_path):
    a = _write(tmp_path / "c.npy")
    ds = CubeDataset([(tmp_path / "c.npy", 0)], crop=(10, 12), crop_mode="center")
    np.testing.assert_array_equal(ds[0][0].numpy(), a[5:15, 6:18].transpose(2, 0, 1))
    whole = CubeDataset([(tmp_path / "c.npy", 0)])
    assert whole[0][0].shape == (7, 20, 24)


def test_band_selection_and_wavelength_resampling(tmp_path):
    a = _write(tmp_path / "c.npy")
    sel = CubeDataset([(tmp_path / "c.npy", 0)], bands=[0, 6])
    np.testing.assert_array_equal(sel[0][0].numpy(), a[..., [0, 6]].transpose(2, 0, 1))
    res = CubeDataset([(tmp_path / "c.npy", 0)], wavelengths=[400.0, 425.0, 700.0])
    x = res[0][0].numpy()
    np.testing.assert_allclose(x[1], (a[..., 0] + a[..., 1]) / 2, rtol=1e-6)
    np.testing.assert_allclose(x[2], a[..., 6])


def test_wavelength_resampling_needs_cube_wavelengths(tmp_path):
    np.save(tmp_path / "c.npy", np.ones((4, 4, 3), np.float32))
    ds = CubeDataset([(tmp_path / "c.npy", 0)], wavelengths=[400.0, 500.0])
    with pytest.raises(ValueError, match="c.npy: wavelengths= resampling needs the cube's own wavelengths"):
        ds[0]


def test_crop_larger_than_cube(tmp_path):
    _write(tmp_path / "c.npy", h=10, w=10)
    with pytest.raises(ValueError, match=r"c.npy: crop \(16, 16\) is larger than the cube \(10 x 10\)"):
        CubeDataset([(tmp_path / "c.npy", 0)], crop=16)[0]
    with pytest.raises(ValueError, match="larger than the cube"):
        CubeDataset([(tmp_path / "c.npy", 0)], crop=16, crop_mode="grid")


def test_split_file_names_indices_and_missing(tmp_path, folder):
    (tmp_path / "train.txt").write_text("data/normal/0.npy normal\n# comment\ndata/tumour/1.npy tumour\n")
    ds = SplitFileDataset(tmp_path / "train.txt", crop=8)
    assert ds.classes == ["normal", "tumour"] and ds.labels == [0, 1]
    (tmp_path / "idx.txt").write_text(f"{folder}/normal/1.npy 0\n{folder}/tumour/2.npy 1\n")
    assert SplitFileDataset(tmp_path / "idx.txt").labels == [0, 1]
    (tmp_path / "bad.txt").write_text("data/nope1.npy 0\ndata/normal/0.npy 0\ndata/nope2.npy 1\n")
    with pytest.raises(FileNotFoundError) as e:
        read_split_file(tmp_path / "bad.txt")
    assert "2 listed files do not exist" in str(e.value) and "line 1:" in str(e.value) and "line 3:" in str(e.value)


def test_split_file_label_errors(tmp_path, folder):
    (tmp_path / "s.txt").write_text("data/normal/0.npy 5\n")
    with pytest.raises(ValueError, match="s.txt:1: label 5 outside the classes"):
        read_split_file(tmp_path / "s.txt", classes=["a", "b"])
    (tmp_path / "s.txt").write_text("data/normal/0.npy cat\n")
    with pytest.raises(ValueError, match="s.txt:1: label 'cat' not in the classes \\['a', 'b'\\]"):
        read_split_file(tmp_path / "s.txt", classes=["a", "b"])
    (tmp_path / "s.txt").write_text("justonefield\n")
    with pytest.raises(ValueError, match="s.txt:1: expected '<path> <label>'"):
        read_split_file(tmp_path / "s.txt")


def test_empty_inputs(tmp_path):
    (tmp_path / "root" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="class folders without cube files: \\['a'\\]"):
        HSIFolder(tmp_path / "root")
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        HSIFolder(tmp_path / "none")
    with pytest.raises(ValueError, match="no cube files found"):
        UnlabelledCubes(tmp_path / "none")
    with pytest.raises(ValueError, match="no cubes"):
        CubeDataset([])


def test_unlabelled_cubes_recursive(folder):
    ds = UnlabelledCubes(folder, crop=4)
    assert len(ds) == 5 and set(ds.labels) == {-1}


def test_streaming_stats_match_numpy_and_round_trip(tmp_path, folder):
    ds = UnlabelledCubes(folder)
    stats = compute_band_stats(ds, num_bands=7, wavelengths=WL, total=len(ds))
    allpix = np.concatenate([ds[i][0].numpy().reshape(7, -1) for i in range(len(ds))], axis=1).astype(np.float64)
    np.testing.assert_allclose(stats.mean, allpix.mean(1), rtol=1e-10)
    np.testing.assert_allclose(stats.std, allpix.std(1, ddof=1), rtol=1e-9)
    assert stats.count == allpix.shape[1]
    path = stats.save(tmp_path / "stats.json")
    assert BandStats.load(path) == stats and json.loads(path.read_text())["wavelengths_nm"][0] == 400.0
    normed = UnlabelledCubes(folder, stats=stats)
    cat = torch.cat([normed[i][0].reshape(7, -1) for i in range(len(normed))], dim=1)
    torch.testing.assert_close(cat.mean(1), torch.zeros(7), atol=1e-5, rtol=0)


def test_stats_are_numerically_stable():
    acc = RunningBandStats(1)
    for _ in range(10):
        acc.update(1e4 + np.random.default_rng(0).random((1000, 1)), band_axis=-1)
    assert acc.result().std[0] == pytest.approx(np.sqrt(1 / 12), rel=0.05)


def test_stats_reject_nan_and_bad_json(tmp_path):
    with pytest.raises(ValueError, match="non-finite"):
        RunningBandStats(1).update(np.array([[np.nan]]), band_axis=-1)
    (tmp_path / "s.json").write_text("{}")
    with pytest.raises(ValueError, match="s.json: not a band-stats JSON"):
        BandStats.load(tmp_path / "s.json")


def test_nan_policy_applies_per_crop(tmp_path):
    a = np.ones((16, 16, 3), np.float32)
    a[2, 3, 1] = np.nan
    np.save(tmp_path / "c.npy", a)
    with pytest.raises(ValueError, match=r"c.npy \(crop at row 0, col 0\): 1 NaN/Inf values"):
        CubeDataset([(tmp_path / "c.npy", 0)], crop=8, crop_mode="grid")[0]
    ds = CubeDataset([(tmp_path / "c.npy", 0)], crop=8, crop_mode="grid", nan="inpaint")
    assert all(torch.isfinite(ds[i][0]).all() for i in range(len(ds)))
    assert ds[0][0][1, 2, 3] == 1.0  # neighbours are all 1
    assert np.isnan(ds.cube(0).data[2, 3, 1])  # the repair is per crop: the (cached) cube keeps its NaN
    mapped = CubeDataset([(tmp_path / "c.npy", 0)], crop=8, crop_mode="grid", nan="inpaint", cache_bytes=0)
    assert torch.equal(mapped[0][0], ds[0][0])
    assert isinstance(mapped.cube(0).data, np.memmap)  # without the memory cache it stays memory-mapped


def test_cubes_are_kept_in_memory_within_the_budget(tmp_path):
    items = [(tmp_path / f"{i}.npy", i % 2) for i in range(3)]
    for i, (p, _) in enumerate(items):
        _write(p, seed=i)
    nbytes = 20 * 24 * 7 * 4
    ds = CubeDataset(items, crop=8, crops_per_cube=2, seed=1, cache_bytes=2 * nbytes)  # room for two cubes
    plain = CubeDataset(items, crop=8, crops_per_cube=2, seed=1, cache_bytes=0)
    for epoch in (0, 1):
        ds.set_epoch(epoch), plain.set_epoch(epoch)
        for i in range(len(ds)):  # the same crops, bit for bit, from memory or from the files
            assert torch.equal(ds[i][0], plain[i][0]) and ds[i][1] == plain[i][1]
    assert ds.cube(0) is ds.cube(0) and ds.cube(1) is ds.cube(1)  # read once, then from memory
    assert not isinstance(ds.cube(0).data, np.memmap) and not ds.cube(0).data.flags.writeable
    assert isinstance(ds.cube(2).data, np.memmap)  # over the budget: read from its file each time
    assert ds.cube(2) is not ds.cube(2)


def test_check_files_refuses_mixed_band_sets_listing_the_files(tmp_path):
    """A cube without wavelengths among cubes with them is refused, not silently assumed to match (pretrain once
    took the first file's wavelengths and exported an encoder without any)."""
    import tifffile

    from s3r_zoo.data.io import CubeReadError

    g = np.random.default_rng(0)
    (tmp_path / "a").mkdir()
    for i in range(2):
        np.save(tmp_path / "a" / f"s{i}.npy", g.random((8, 8, 5), dtype=np.float32))
    np.savetxt(tmp_path / "a" / "wavelengths_nm.txt", np.linspace(450, 650, 5))
    (tmp_path / "a" / "export").mkdir()  # a lab export, no wavelengths in the file nor beside it
    tifffile.imwrite(tmp_path / "a" / "export" / "t.tif", g.random((5, 8, 8), dtype=np.float32))
    ds = UnlabelledCubes(tmp_path / "a", crop=4)
    with pytest.raises(CubeReadError, match=r"do not share one band set: 1 with 5 bands without wavelengths \(t.tif\); "
                                            r"2 with 5 bands 450-650 nm \(s0.npy, s1.npy\)"):
        ds.check_files()
    np.savetxt(tmp_path / "a" / "export" / "t.wavelengths_nm.txt", np.linspace(450, 650, 5))  # the fix it names
    UnlabelledCubes(tmp_path / "a", crop=4).check_files()  # one band set: accepted


def test_nan_refusal_names_every_bad_file(tmp_path):
    from s3r_zoo.data.io import CubeReadError

    for name in ("x", "y", "z"):
        a = np.ones((8, 8, 3), np.float32)
        if name != "y":
            a[1, 1, 0] = np.nan
        np.save(tmp_path / f"{name}.npy", a)
    with pytest.raises(CubeReadError, match=r"2 file\(s\) hold NaN/Inf: .*x.npy: 1 NaN/Inf.*; .*z.npy: 1 NaN/Inf"):
        UnlabelledCubes(tmp_path, crop=4).check_files()
