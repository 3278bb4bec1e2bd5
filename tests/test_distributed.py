"""N processes (torchrun, DDP) train the same model as one process with the same global batch.

What makes it so: each step's global batch is the same slice of one seeded permutation, cut into
per-process shards (:func:`s3r_zoo.train.setup.epoch_loader`); crops and augmentations are drawn
per sample (seeded by seed, epoch and index); S3R's target bands and masks are drawn for the
global batch on every process, each keeping its shard; DDP averages the gradients. What stays
different: BatchNorm statistics are per process on CPU (SyncBatchNorm needs a GPU), so the
end-to-end test trains a linear probe (frozen encoder and BatchNorm), where the only difference
left is the order of float additions: tolerance 1e-6 (measured: 4e-9; another global batch: > 1e-3).
"""

import json
import os
import subprocess
import sys

import pytest
import torch
import timm
from safetensors.torch import load_file

from s3r_zoo.data.simulated_sets import write_dataset
from s3r_zoo.pretrain import S3RObjective
from s3r_zoo.train.setup import TrainConfig, epoch_loader


def test_the_shards_of_a_global_batch_are_the_single_process_batch():
    data = list(range(37))
    cfg1, cfg2 = TrainConfig(batch_size=8, seed=4), TrainConfig(batch_size=4, seed=4)
    for epoch in (0, 1):
        one = [b.tolist() for b in epoch_loader(data, cfg1, epoch, 0)]
        two = [[b.tolist() for b in epoch_loader(data, cfg2, epoch, 0, world=2, rank=r)] for r in (0, 1)]
        assert len(one) == len(two[0]) == len(two[1]) == 37 // 8
        assert one == [a + b for a, b in zip(*two)]
    # a mid-epoch resume skips the same global steps on every process
    assert [b.tolist() for b in epoch_loader(data, cfg2, 1, 2, world=2, rank=1)] == \
        [b.tolist() for b in epoch_loader(data, cfg2, 1, 0, world=2, rank=1)][2:]


@pytest.mark.parametrize("mask_patch", [8, 5])  # the folded mask path, and the general one
def test_s3r_draws_the_global_batch_and_keeps_its_shard(mask_patch):
    cube = 0.3 + 0.4 * torch.rand(8, 6, 16, 16, generator=torch.Generator().manual_seed(0))
    mean, std = [0.5] * 6, [0.1] * 6
    obj = S3RObjective(timm.create_model("resnet18", in_chans=6, num_classes=0), mean, std, mask_patch=mask_patch)
    torch.manual_seed(3)
    band = obj.draw_bands(8, cube.device)
    full = obj.encoder_input(cube, band)
    for rank in (0, 1):
        obj.shard = (rank, 2)
        torch.manual_seed(3)
        b = obj.draw_bands(4, cube.device)
        part = slice(4 * rank, 4 * rank + 4)
        assert torch.equal(b, band[part])
        assert torch.equal(obj.encoder_input(cube[part], b), full[part])


def _finetune(tmp_path, data, out, nproc, batch):
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    args = ["-m", "s3r_zoo", "finetune", "--data", str(data), "--linear-probe", "--epochs", "2", "--batch-size",
            str(batch), "--crop", "24", "--amp", "none", "--seed", "1", "--lr", "0.01", "--out", str(tmp_path / out)]
    cmd = [sys.executable, *(["-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
                              "29533"] if nproc > 1 else []), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return load_file(tmp_path / out / "seed_1" / "best.safetensors")


def test_two_processes_train_the_model_of_one_process_with_the_same_global_batch(tmp_path):
    data = tmp_path / "d"
    write_dataset(data, "pdac_like", n=24, size=24, seed=0, difficulty=0.0, split=(0.5, 0.25, 0.25))
    one = _finetune(tmp_path, data, "one", 1, 4)
    two = _finetune(tmp_path, data, "two", 2, 2)
    other = _finetune(tmp_path, data, "other", 1, 2)  # another global batch: what a real difference looks like

    def diff(a, b):
        assert a.keys() == b.keys()
        return max((a[k].double() - b[k].double()).abs().max().item() for k in a)

    assert diff(one, two) < 1e-6, diff(one, two)
    assert diff(one, other) > 1e-3, diff(one, other)
    assert json.loads((tmp_path / "two" / "aggregate.json").read_text())["runs"][0]["steps"] == \
        json.loads((tmp_path / "one" / "aggregate.json").read_text())["runs"][0]["steps"]
