"""Simulator speed and loader throughput, side by side in one run.

Target (issue 3): the simulator makes >= 10 cubes/s of 256 x 256 x 40 on 2 CPU cores.
Loader: crops/s from simulated .npy cubes on disk, with 0 and N workers, next to how many
crops/s a ResNet-18 training step consumes on this machine (the loader must not be the
bottleneck: ratio >= 2 is the aim of the speed benchmark in issue 8).

    python benchmarks/bench_data.py [--n 40] [--size 256] [--crop 128] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import timm
import torch

import s3r_zoo  # noqa: F401
from _common import environment, write_result
from s3r_zoo.data import SplitFileDataset, make_loader
from s3r_zoo.data.synthetic import simulate_cube, write_dataset

TARGET_CUBES_PER_S = 10.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=40, help="cubes to simulate for the timing")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    simulate_cube("pdac_like", 0, args.size, seed=0)  # warm-up
    t = time.perf_counter()
    for i in range(args.n):
        simulate_cube("pdac_like", i % 2, args.size, seed=i)
    sim_rate = args.n / (time.perf_counter() - t)

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(tmp, "pdac_like", n=args.n, size=args.size, seed=0)
        ds = SplitFileDataset(f"{tmp}/train.txt", crop=args.crop, crops_per_cube=4)
        for workers in sorted({0, args.workers}):
            loader = make_loader(ds, batch_size=args.batch_size, num_workers=workers, pin_memory=False)
            next(iter(loader))  # start workers
            t = time.perf_counter()
            n = sum(x.shape[0] for x, _ in loader)
            rows[f"loader, {workers} workers"] = n / (time.perf_counter() - t)

    model = timm.create_model("s3r_resnet18", in_chans=40, num_classes=2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch_size, 40, args.crop, args.crop)
    y = torch.randint(0, 2, (args.batch_size,))
    steps = []
    for i in range(4):
        t = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            steps.append(time.perf_counter() - t)
    consume = args.batch_size / (sorted(steps)[len(steps) // 2])
    best_loader = max(rows.values())

    payload = {"name": "data", "simulator_cubes_per_s": sim_rate, "simulator_size": [args.size, args.size, 40],
               "simulator_target": TARGET_CUBES_PER_S, "loader_crops_per_s": rows, "crop": args.crop,
               "resnet18_train_crops_per_s": consume, "loader_over_model": best_loader / consume,
               **environment(torch.device("cpu"))}
    path = write_result("data", payload)
    print(f"\n{'what':<34}{'rate':>12}")
    print(f"{'simulator (cubes/s, ' + str(args.size) + 'x' + str(args.size) + 'x40)':<34}{sim_rate:>12.1f}"
          f"   target >= {TARGET_CUBES_PER_S:g}: {'met' if sim_rate >= TARGET_CUBES_PER_S else 'NOT met'}")
    for k, v in rows.items():
        print(f"{k + ' (crops/s)':<34}{v:>12.1f}")
    print(f"{'resnet18 train step (crops/s)':<34}{consume:>12.1f}")
    print(f"loader / model consumption = {best_loader / consume:.1f}x  -> {path}")


if __name__ == "__main__":
    main()
