"""The device-resident data path cuts the loader path's crops: the same batches, the same trained weights."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from s3r_zoo.cli import main
from s3r_zoo.data import CubeDataset
from s3r_zoo.data.device import DeviceCubes, data_bytes, use_device_data
from s3r_zoo.data.simulated_sets import write_dataset
from s3r_zoo.train.setup import TrainConfig, epoch_loader


@pytest.fixture(scope="module")
def cubes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cubes")
    rng = np.random.default_rng(0)
    items = []
    for i, (h, w) in enumerate([(40, 36), (32, 44), (48, 40), (36, 36), (44, 32)]):  # sizes differ: padded
        np.save(folder / f"c{i}.npy", (0.2 + 0.6 * rng.random((h, w, 6))).astype(np.float16))
        items.append((folder / f"c{i}.npy", i % 2))
    return items


@pytest.mark.parametrize("options", [dict(crops_per_cube=3), dict(crops_per_cube=2, rows=(0, -8)),
                                     dict(crops_per_cube=2, bands=[0, 2, 4]), dict(crop_mode="center")])
def test_device_batches_are_the_loader_batches(cubes, options):
    ds = CubeDataset(cubes, crop=16, seed=7, **options)
    dev = DeviceCubes(CubeDataset(cubes, crop=16, seed=7, **options), torch.device("cpu"))
    cfg = TrainConfig(batch_size=3, seed=2)
    for epoch in (0, 1):
        ours = list(epoch_loader(dev, cfg, epoch, 0))
        theirs = list(epoch_loader(ds, cfg, epoch, 0))
        assert len(ours) == len(theirs) > 0
        for (x, y), (xr, yr) in zip(ours, theirs):
            assert x.is_contiguous(memory_format=torch.channels_last) and x.dtype == torch.float32
            assert torch.equal(x, xr) and torch.equal(y, yr)


def test_a_run_on_device_data_equals_the_loader_run(tmp_path):
    write_dataset(tmp_path / "d", "pdac_like", n=8, size=32, seed=0, difficulty=0.0)
    common = ["pretrain", "--data", str(tmp_path / "d" / "cubes"), "--epochs", "2", "--batch-size", "4", "--crop",
              "16", "--crops-per-cube", "2", "--mask-patch", "8", "--amp", "none"]
    assert main([*common, "--data-on-device", "on", "--out", str(tmp_path / "on")]) == 0
    assert main([*common, "--data-on-device", "off", "--out", str(tmp_path / "off")]) == 0
    a, b = (load_file(tmp_path / n / "encoder.safetensors") for n in ("on", "off"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "on" / "summary.json").read_text())["final_loss"] == \
        json.loads((tmp_path / "off" / "summary.json").read_text())["final_loss"]


def test_auto_uses_the_device_only_on_a_gpu_and_only_for_plain_crops(cubes):
    ds = CubeDataset(cubes, crop=16)
    assert data_bytes(ds) == 5 * 48 * 44 * 6 * 2  # float16 files stay float16, padded to the largest cube
    assert not use_device_data("auto", ds, torch.device("cpu"))
    assert use_device_data("on", ds, torch.device("cpu")) and not use_device_data("off", ds, torch.device("cpu"))
    assert not use_device_data("on", CubeDataset(cubes, crop=16, transform=lambda x, generator: x),
                               torch.device("cpu"))
