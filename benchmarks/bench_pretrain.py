"""S3R pre-training costs, side by side in one run.

1. beta~ by closed form (one float64 inverse of the Gram matrix) vs a 100-step AdamW fit
   of the same least-squares problem (how the public DF-S3R code gets its targets):
   target >= 200x faster with an equal or lower residual.
2. One S3R-CR / S3R-BR training step (masking, targets, head, loss, backward, AdamW) vs a
   plain timm forward/backward/AdamW step of the same backbone on the same input:
   target <= 1.10.

Uses real HIMS tiles from $S3R_ZOO_TEST_DATA (default ../shared/data) when present,
else simulated cubes (the output says which).

    python benchmarks/bench_pretrain.py [--model s3r_resnet18] [--crop 64] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import timm
import torch

import s3r_zoo  # noqa: F401
from _common import environment, interleaved_medians, median, write_result
from s3r_zoo.data import read_cube
from s3r_zoo.data.synthetic import simulate_cube
from s3r_zoo.lowrank import gram, loo_rss
from s3r_zoo.pretrain import S3RObjective, coefficient_targets
from s3r_zoo.pretrain.targets import DEFAULT_RIDGE


def tiles(crop: int, n: int) -> tuple[torch.Tensor, str]:
    root = Path(os.environ.get("S3R_ZOO_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    path = root / "hims_bladder" / "cube_hwc_f16.npy"
    if path.is_file():
        cube = read_cube(path, nan="inpaint").data
        h, w, _ = cube.shape
        g = np.random.default_rng(0)
        out = [cube[t:t + crop, l:l + crop] for t, l in zip(g.integers(0, h - crop, n), g.integers(0, w - crop, n))]
        return torch.from_numpy(np.stack(out).transpose(0, 3, 1, 2).copy()), f"real HIMS tiles ({path})"
    out = [simulate_cube("pdac_like", i % 2, crop, seed=i).data for i in range(n)]
    return torch.from_numpy(np.stack(out).transpose(0, 3, 1, 2).copy()), "simulated pdac_like (no HIMS data found)"


def adamw_fit(cube: torch.Tensor, band: torch.Tensor, steps: int = 100, lr: float = 0.05) -> torch.Tensor:
    """beta by gradient descent on the same ridge least-squares objective."""
    n, b = cube.shape[:2]
    pix = cube.reshape(n, b, -1).double()
    keep = torch.ones(n, b, dtype=torch.bool)
    keep[torch.arange(n), band] = False
    beta = torch.zeros(n, b, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.AdamW([beta], lr=lr, weight_decay=0.0)
    target = pix[torch.arange(n), band]
    for _ in range(steps):
        pred = torch.einsum("nb,nbp->np", beta * keep, pix)
        loss = ((pred - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (beta * keep).detach()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="s3r_resnet18")
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cube, source = tiles(args.crop, args.batch_size)
    cube = cube.to(dev)
    n, b = cube.shape[:2]
    band = torch.randint(0, b, (n,), generator=torch.Generator().manual_seed(0)).to(dev)

    # 1. targets
    t_targets = interleaved_medians({"closed form": lambda: coefficient_targets(cube, band),
                                     "AdamW 100 steps": lambda: adamw_fit(cube, band)},
                                    repeats=3, warmup=1, device=dev)
    g = gram(cube.reshape(n, b, -1).transpose(1, 2))

    def rss(beta):
        full = torch.zeros(n, b, b, dtype=torch.float64, device=dev)
        full[torch.arange(n), band] = beta.double()
        return loo_rss(g, full)[torch.arange(n), band]

    res_cf = rss(coefficient_targets(cube, band, DEFAULT_RIDGE)).mean().item()
    res_gd = rss(adamw_fit(cube, band)).mean().item()
    speedup = median(t_targets["AdamW 100 steps"]) / median(t_targets["closed form"])

    # 2. step time
    mean = cube.mean((0, 2, 3)).tolist()
    std = cube.std((0, 2, 3)).clamp_min(1e-6).tolist()
    torch.manual_seed(0)
    plain = timm.create_model(args.model, in_chans=b, num_classes=0).to(dev)
    objs = {m: S3RObjective(timm.create_model(args.model, in_chans=b, num_classes=0), mean, std, mode=m,
                            mask_patch=8).to(dev) for m in ("cr", "br")}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in {"plain": plain, **objs}.items()}
    x_norm = (cube - torch.tensor(mean, device=dev)[:, None, None]) / torch.tensor(std, device=dev)[:, None, None]

    def plain_step():
        loss = plain(x_norm).float().pow(2).mean()
        opts["plain"].zero_grad()
        loss.backward()
        opts["plain"].step()

    def s3r_step(mode):
        def f():
            loss = objs[mode](cube)["loss"]
            opts[mode].zero_grad()
            loss.backward()
            opts[mode].step()
        return f

    t_steps = interleaved_medians({"timm plain": plain_step, "S3R-CR": s3r_step("cr"), "S3R-BR": s3r_step("br")},
                                  repeats=args.repeats, warmup=2, device=dev)
    ratio = {k: median(t_steps[k]) / median(t_steps["timm plain"]) for k in ("S3R-CR", "S3R-BR")}

    payload = {"name": "pretrain", "data": source, "input": list(cube.shape), "model": args.model,
               "targets_median_s": {k: median(v) for k, v in t_targets.items()}, "targets_speedup": speedup,
               "residual_closed_form": res_cf, "residual_adamw": res_gd,
               "step_median_s": {k: median(v) for k, v in t_steps.items()}, "step_ratio": ratio,
               "targets": {"speedup": ">= 200", "residual": "closed form <= AdamW", "step_ratio": "<= 1.10"},
               **environment(dev)}
    path = write_result("pretrain", payload)
    print(f"\ndata: {source}, input {tuple(cube.shape)}, {payload['device']}")
    print(f"beta~  closed form {median(t_targets['closed form']) * 1e3:8.2f} ms   residual {res_cf:.4e}")
    print(f"beta~  AdamW x100  {median(t_targets['AdamW 100 steps']) * 1e3:8.2f} ms   residual {res_gd:.4e}")
    print(f"       speed-up {speedup:.0f}x (target >= 200: {'met' if speedup >= 200 else 'NOT met'}); residual "
          f"{'<=' if res_cf <= res_gd else '>'} AdamW's")
    for k, v in t_steps.items():
        print(f"step   {k:<11}{median(v) * 1e3:8.1f} ms" + (f"   ratio {ratio[k]:.3f} (target <= 1.10: "
                                                            f"{'met' if ratio[k] <= 1.10 else 'NOT met'})"
                                                            if k in ratio else ""))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
