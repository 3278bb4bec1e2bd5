"""``python -m benchmarks speed``: every cost of the zoo, side by side in one run.

1. beta~ by closed form vs a 100-step AdamW fit, on real HIMS tiles, for the one target
   band per sample that training uses and for all bands at once (one inverse vs B fits).
   Two AdamW references: the recipe of the public DF-S3R code (float32, L1, lr 0.01,
   weight decay 0.01, its channels-last einsum) and our own batched
   float64 least-squares fit, the strongest gradient baseline we could write. Target
   >= 200x faster than the DF-S3R recipe, residual <= both.
2. S3R-CR / S3R-BR training step / a plain timm forward-backward-AdamW step of the same
   backbone and input, in fp32, both sides in the same memory format (contiguous, and
   channels_last). Target <= 1.10. And what the default ``--amp auto`` + channels_last buy:
   an S3R-CR step (16 x 40 x 96 x 96 real tiles) in bf16 autocast + channels_last over the
   same step in fp32. Target <= 0.6 on a CPU with AVX-512-BF16 / AMX.
3. Loader throughput (simulated .npy cubes on disk) / crops per second a ResNet-18 training
   step consumes. Target >= 2. Also the simulator's cubes/s (target >= 10 at 256 x 256 x 40),
   and random 128-px crops/s of one 512 x 612 x 40 cube stored in each readable format, through
   the decode-once cache (and without it, for comparison). Target: every format within 2x of npy.
   And what the datasets' memory cache buys on a set of small cubes (crops/s, files re-opened for
   every crop as reference).
4. s3r_resnet50 / timm resnet50 inference throughput. Target >= 0.98.
5. CUDA only: ResNet-50 training images/s and model FLOP utilisation at 32 x 512 x 512,
   bf16 autocast and channels_last, and the time of one PLGC-sized S3R-CR epoch (661 cubes).
   Target <= 5 s on an H100.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import timm
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from s3r_zoo.data import SplitFileDataset, UnlabelledCubes
from s3r_zoo.data.cache import CACHE_ENV
from s3r_zoo.data.datasets import CACHE_BYTES
from s3r_zoo.data.synthetic import simulate_cube
from s3r_zoo.data.simulated_sets import write_dataset
from s3r_zoo.lowrank import gram, loo_coefficients, loo_rss
from s3r_zoo.pretrain import S3RObjective
from s3r_zoo.pretrain.targets import DEFAULT_RIDGE, coefficient_targets
from s3r_zoo.train.engine import cpu_has_fast_bf16
from .common import (PEAK_BF16, environment, hims_tiles, interleaved_medians, median, round_ratio_spread, run_device,
                     train_step, write_result)

TARGETS = {"targets_speedup": 200.0, "step_ratio": 1.10, "bf16_over_fp32": 0.6, "loader_over_model": 2.0,
           "format_over_npy": 0.5,
           "inference_ratio": 0.98, "simulator_cubes_per_s": 10.0, "plgc_epoch_s_h100": 5.0}
# dense bf16 tensor-core peak (FLOP/s) for MFU; other GPUs report images/s only


def _adamw_least_squares(residual, shape: tuple, device: torch.device, steps: int, lr: float) -> torch.Tensor:
    """Minimise mean(residual(beta)^2) over a float64 ``beta`` of ``shape`` with AdamW (no weight decay)."""
    beta = torch.zeros(shape, dtype=torch.float64, device=device, requires_grad=True)
    opt = torch.optim.AdamW([beta], lr=lr, weight_decay=0.0)
    for _ in range(steps):
        loss = residual(beta).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return beta.detach()


def adamw_fit(cube: torch.Tensor, band: torch.Tensor, steps: int = 100, lr: float = 0.05) -> torch.Tensor:
    """beta by AdamW on the ridge-free least-squares objective, one target band per sample."""
    n, b = cube.shape[:2]
    pix = cube.reshape(n, b, -1).double()
    keep = torch.ones(n, b, dtype=torch.bool, device=cube.device)
    keep[torch.arange(n), band] = False
    target = pix[torch.arange(n), band]
    beta = _adamw_least_squares(lambda w: torch.einsum("nb,nbp->np", w * keep, pix) - target, (n, b),
                                cube.device, steps, lr)
    return beta * keep


def adamw_fit_dfs3r(cube: torch.Tensor, band: torch.Tensor, steps: int = 100) -> torch.Tensor:
    """beta by the recipe of the public DF-S3R code (Xie et al., ACM MM 2023), re-written here.

    Per batch: fresh coefficients (N, B-1, 1) drawn from a truncated normal (std 0.02),
    AdamW (lr 0.01, betas 0.9/0.999, weight decay 0.01), an L1 loss on the pixels of band
    b, float32, and the prediction as an einsum over the channels-last view of the other
    bands. Its step-wise lr decay acts every 200 steps, so never within 100. The split into
    target band and other bands is vectorised here (DF-S3R loops over samples in Python)
    and counted in the time.
    """
    n, b = cube.shape[:2]
    keep = torch.arange(b, device=cube.device)[None, :] != band[:, None]
    others = cube[keep].view(n, b - 1, *cube.shape[2:]).float()  # (N, B-1, H, W)
    target = cube[torch.arange(n, device=cube.device), band][:, None].float()  # (N, 1, H, W)
    w = torch.empty(n, b - 1, 1, device=cube.device)
    torch.nn.init.trunc_normal_(w, std=0.02, generator=torch.Generator(cube.device).manual_seed(0))
    w.requires_grad_(True)
    opt = torch.optim.AdamW([w], lr=0.01, betas=(0.9, 0.999), weight_decay=1e-2)
    for _ in range(steps):
        pred = torch.einsum("nhwc,ncd->nhwd", others.transpose(1, 3), w).transpose(1, 3)
        loss = F.l1_loss(pred, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = torch.zeros(n, b, dtype=torch.float64, device=cube.device)
    out[keep] = w.detach().reshape(-1).double()
    return out


def adamw_fit_all(cube: torch.Tensor, steps: int = 100, lr: float = 0.05) -> torch.Tensor:
    """beta for every band of every sample (N, B, B) by AdamW: B fits, batched."""
    n, b = cube.shape[:2]
    pix = cube.reshape(n, b, -1).double()
    off = ~torch.eye(b, dtype=torch.bool, device=cube.device)
    beta = _adamw_least_squares(lambda w: torch.einsum("nkb,nbp->nkp", w * off, pix) - pix, (n, b, b),
                                cube.device, steps, lr)
    return beta * off


def _targets(cube: torch.Tensor, dev: torch.device, repeats: int) -> dict:
    n, b = cube.shape[:2]
    band = torch.randint(0, b, (n,), generator=torch.Generator().manual_seed(0)).to(dev)
    pix = cube.reshape(n, b, -1).transpose(1, 2)
    one = {"closed form": lambda: coefficient_targets(cube, band),
           "AdamW 100 steps, DF-S3R recipe": lambda: adamw_fit_dfs3r(cube, band),
           "AdamW 100 steps, batched float64": lambda: adamw_fit(cube, band)}
    t = interleaved_medians({**one, "closed form, all bands": lambda: loo_coefficients(gram(pix), DEFAULT_RIDGE),
                             "AdamW 100 steps, all bands": lambda: adamw_fit_all(cube)},
                            repeats=repeats, warmup=1, device=dev, desc="beta~ timing")
    g = gram(pix.double())  # residuals measured exactly, whatever the fit used
    rows = torch.arange(n, device=dev)

    def rss_one(beta):
        full = torch.zeros(n, b, b, dtype=torch.float64, device=dev)
        full[rows, band] = beta.double()
        return loo_rss(g, full)[rows, band].mean().item()

    med = {k: median(v) for k, v in t.items()}
    return {
        "median_s": med,
        "speedup_one_band": med["AdamW 100 steps, DF-S3R recipe"] / med["closed form"],
        "speedup_one_band_batched_float64": med["AdamW 100 steps, batched float64"] / med["closed form"],
        "speedup_all_bands": med["AdamW 100 steps, all bands"] / med["closed form, all bands"],
        "residual_one_band": {k.replace("AdamW 100 steps, ", "AdamW, "): rss_one(f()) for k, f in one.items()},
        "residual_all_bands": {"closed form": loo_rss(g, loo_coefficients(gram(pix), DEFAULT_RIDGE)).mean().item(),
                               "AdamW": loo_rss(g, adamw_fit_all(cube)).mean().item()},
    }


def _band_stats(cube: torch.Tensor) -> tuple[list, list, torch.Tensor]:
    """Per-band mean and std of ``cube`` (N, B, H, W), and the cube normalised by them (a plain model's input)."""
    mean, std = cube.mean((0, 2, 3)), cube.std((0, 2, 3)).clamp_min(1e-6)
    return mean.tolist(), std.tolist(), (cube - mean[:, None, None]) / std[:, None, None]


def _in_format(module: torch.nn.Module, x: torch.Tensor, fmt: torch.memory_format):
    return module.to(memory_format=fmt), x.contiguous(memory_format=fmt)


def _steps(model_name: str, cube: torch.Tensor, dev: torch.device, repeats: int) -> dict:
    """S3R-CR / S3R-BR step over a plain timm step, both sides in the SAME memory format and precision
    (fp32 contiguous, fp32 channels_last, bf16 autocast + channels_last: a model fed the other layout pays a
    conversion the comparison must not charge to one side only), and each objective's bf16 step over its fp32
    step. All in one interleaved timing, so the ratios share the machine's state."""
    b = cube.shape[1]
    mean, std, x_norm = _band_stats(cube)
    settings = (("fp32", torch.contiguous_format, False), ("fp32 + channels_last", torch.channels_last, False),
                ("bf16 + channels_last", torch.channels_last, True))
    fns = {}
    for label, fmt, amp in settings:
        torch.manual_seed(0)
        plain, xp = _in_format(timm.create_model(model_name, in_chans=b, num_classes=0).to(dev), x_norm, fmt)
        fns[f"timm plain | {label}"] = train_step(plain, lambda x, m=plain: m(x).float().pow(2).mean(), xp, amp=amp)
        for mode in ("cr", "br"):
            obj, xc = _in_format(S3RObjective(timm.create_model(model_name, in_chans=b, num_classes=0), mean, std,
                                              mode=mode, mask_patch=8).to(dev), cube, fmt)
            fns[f"S3R-{mode.upper()} | {label}"] = train_step(obj, lambda x, o=obj: o(x)["loss"], xc, amp=amp)
    t = interleaved_medians(fns, repeats=repeats, warmup=2, device=dev, desc="step timing")
    med = {k: median(v) for k, v in t.items()}
    out = {"median_s": {}, "ratio": {}, "ratio_iqr": {}, "s3r_part_s": {}}
    for label, _, _ in settings:
        m = {k.split(" | ")[0]: v for k, v in med.items() if k.endswith(f"| {label}")}
        out["median_s"][label] = m
        out["ratio"][label] = {k: m[k] / m["timm plain"] for k in ("S3R-CR", "S3R-BR")}
        out["ratio_iqr"][label] = {k: round_ratio_spread(t[f"{k} | {label}"], t[f"timm plain | {label}"])
                                   for k in ("S3R-CR", "S3R-BR")}
        out["s3r_part_s"][label] = {k: m[k] - m["timm plain"] for k in ("S3R-CR", "S3R-BR")}
    out["bf16_over_fp32"] = {k: med[f"{k} | bf16 + channels_last"] / med[f"{k} | fp32"]
                             for k in ("S3R-CR", "S3R-BR", "timm plain")}
    return out


def _precision(model_name: str, shape: tuple, dev: torch.device, repeats: int) -> dict:
    """An S3R-CR training step with bf16 autocast + channels_last over the same step in fp32 (contiguous):
    what ``--amp auto`` and the default channels_last buy; the input is real HIMS tiles."""
    n, _, size, _ = shape
    cube, source = hims_tiles(size, n, seed=2)
    cube = cube.to(dev)
    b = cube.shape[1]
    mean, std, x_norm = _band_stats(cube)
    fns = {}
    for label, fmt, amp in (("fp32", torch.contiguous_format, False),
                            ("fp32 + channels_last", torch.channels_last, False),
                            ("bf16 + channels_last", torch.channels_last, True)):
        torch.manual_seed(0)
        obj, x = _in_format(S3RObjective(timm.create_model(model_name, in_chans=b, num_classes=0), mean, std,
                                         mode="cr").to(dev), cube, fmt)
        fns[label] = train_step(obj, lambda x, o=obj: o(x)["loss"], x, amp=amp)
        if label != "fp32 + channels_last":  # the network alone: what autocast can speed up
            plain, xp = _in_format(timm.create_model(model_name, in_chans=b, num_classes=0).to(dev), x_norm, fmt)
            fns[f"plain {label}"] = train_step(plain, lambda x, m=plain: m(x).float().pow(2).mean(), xp, amp=amp)
    t = interleaved_medians(fns, repeats=repeats, warmup=2, device=dev, desc="precision timing")
    med = {k: median(v) for k, v in t.items()}
    ratio = {"bf16 + channels_last": med["bf16 + channels_last"] / med["fp32"],
             "fp32 + channels_last": med["fp32 + channels_last"] / med["fp32"],
             "plain bf16 + channels_last": med["plain bf16 + channels_last"] / med["plain fp32"]}
    iqr = {"bf16 + channels_last": round_ratio_spread(t["bf16 + channels_last"], t["fp32"])}
    return {"model": model_name, "input": list(cube.shape), "data_source": source, "objective": "S3R-CR",
            "ratio_iqr": iqr,
            "bf16_supported": bool(cpu_has_fast_bf16()) if dev.type == "cpu" else torch.cuda.is_bf16_supported(),
            "median_s": med, "ratio": ratio}


def _data(n: int, size: int, crop: int, batch: int) -> dict:
    simulate_cube("pdac_like", 0, 256, seed=0)  # warm-up
    t = time.perf_counter()
    for i in range(4):
        simulate_cube("pdac_like", i % 2, 256, seed=i)
    sim_rate = 4 / (time.perf_counter() - t)
    loader_rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(tmp, "pdac_like", n=n, size=size, seed=0)
        ds = SplitFileDataset(f"{tmp}/train.txt", crop=crop, crops_per_cube=4)
        for workers in (0, 2):
            loader = make_loader(ds, batch_size=batch, num_workers=workers, pin_memory=False)
            next(iter(loader))
            t = time.perf_counter()
            count = sum(x.shape[0] for x, _ in loader)
            loader_rates[f"{workers} workers"] = count / (time.perf_counter() - t)
    model = timm.create_model("s3r_resnet18", in_chans=40, num_classes=2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, y = torch.randn(batch, 40, crop, crop), torch.randint(0, 2, (batch,))
    steps = []
    for i in range(4):
        t = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            steps.append(time.perf_counter() - t)
    consume = batch / median(steps)
    return {"simulator_cubes_per_s": sim_rate, "loader_crops_per_s": loader_rates, "crop": crop,
            "resnet18_train_crops_per_s": consume, "loader_over_model": max(loader_rates.values()) / consume}


def _memory_cache(n: int, size: int) -> dict:
    """Crops/s over a set of small cubes (the labels benchmark's kind: ``size`` px, float16 .npy, whole-cube
    crops, one pass in split order) with the datasets' memory cache (the default) and with every crop
    re-opening its file (``cache_bytes=0``), measured alternately."""
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(tmp, "pdac_like", n=n, size=size, seed=0, dtype="float16", split=(1.0, 0.0, 0.0))
        sets = {"memory": SplitFileDataset(f"{tmp}/train.txt", crop=size, cache_bytes=CACHE_BYTES),
                "files": SplitFileDataset(f"{tmp}/train.txt", crop=size, cache_bytes=0)}
        times: dict[str, list] = {k: [] for k in sets}
        for rep in range(4):
            for name, ds in sets.items():
                ds.set_epoch(rep)
                t = time.perf_counter()
                for i in range(len(ds)):
                    ds[i]
                if rep:  # the first pass fills the memory cache (and the page cache): not timed
                    times[name].append(time.perf_counter() - t)
    rate = {k: n / median(v) for k, v in times.items()}
    return {"cubes": n, "cube": [size, size, 40], "crops_per_s": rate, "speedup": rate["memory"] / rate["files"]}


def _write_formats(folder: Path, cube: np.ndarray) -> dict[str, Path]:
    """One cube ``(H, W, B)`` float32 in each readable format; MATLAB v7.3 is HDF5 after a 512-byte header."""
    import h5py
    import tifffile
    from scipy.io import savemat
    from spectral.io import envi

    paths = {"npy": folder / "c.npy", "ENVI": folder / "c.hdr", "TIFF": folder / "c.tif",
             "MATLAB v5": folder / "c5.mat", "MATLAB v7.3": folder / "c73.mat", "HDF5": folder / "c.h5",
             "npz": folder / "c.npz"}
    np.save(paths["npy"], cube)
    envi.save_image(str(paths["ENVI"]), cube, ext=".img", interleave="bsq")
    tifffile.imwrite(paths["TIFF"], cube.transpose(2, 0, 1), photometric="minisblack")
    savemat(paths["MATLAB v5"], {"cube": cube})
    with h5py.File(paths["MATLAB v7.3"], "w", userblock_size=512) as f:
        f["cube"] = cube.T  # MATLAB's column-major order, as MATLAB writes it
    with h5py.File(paths["HDF5"], "w") as f:
        f["cube"] = cube
    np.savez(paths["npz"], cube=cube)
    return paths


def _formats(shape: tuple[int, int, int], crop: int, crops: int) -> dict:
    """Random-crop rate of ``UnlabelledCubes`` per file format, with the decode-once cache (steady state,
    after its first pass) and without it (``S3R_ZOO_CACHE=off``: every crop decodes the file)."""
    cube = np.random.default_rng(0).random(shape, dtype=np.float32)
    rates: dict[str, dict] = {}
    saved = os.environ.get(CACHE_ENV)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = _write_formats(Path(tmp), cube)
            for mode, env in (("cache", str(Path(tmp) / "cache")), ("no cache", "off")):
                os.environ[CACHE_ENV] = env
                for name, path in paths.items():
                    ds = UnlabelledCubes(path, crop=crop, crops_per_cube=crops if mode == "cache" else 4,
                                         cache_bytes=0)  # the files' read rates, not the memory cache's
                    ds[0]  # the cache's one decode (and the page cache) outside the timing
                    t = time.perf_counter()
                    for i in range(len(ds)):
                        ds[i]
                    rates.setdefault(name, {})[mode] = len(ds) / (time.perf_counter() - t)
    finally:
        if saved is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = saved
    npy = rates["npy"]["cache"]
    return {"cube": list(shape), "crop": crop, "crops_per_s": rates,
            "ratio_to_npy": {k: v["cache"] / npy for k, v in rates.items()}}


def _inference(dev: torch.device, batch: int, size: int, repeats: int) -> dict:
    torch.manual_seed(0)
    models = {"timm resnet50": timm.create_model("resnet50", in_chans=40, num_classes=0),
              "s3r_resnet50": timm.create_model("s3r_resnet50", in_chans=40, num_classes=0)}
    models["s3r_resnet50"].load_state_dict(models["timm resnet50"].state_dict())
    x = torch.randn(batch, 40, size, size, device=dev)
    fns = {}
    for name, m in models.items():
        m.to(dev).eval()
        fns[name] = (lambda m=m: m(x))
    with torch.inference_mode():
        t = interleaved_medians(fns, repeats=repeats, warmup=2, device=dev, desc="inference timing")
    med = {k: median(v) for k, v in t.items()}
    return {"input": [batch, 40, size, size], "median_s": med, "ratio": med["timm resnet50"] / med["s3r_resnet50"]}


def _cuda(dev: torch.device, quick: bool) -> dict:
    """ResNet-50 bf16 + channels_last training throughput and MFU; one PLGC-sized S3R-CR epoch."""
    batch, bands, size = 32, 32, 512
    model = timm.create_model("resnet50", in_chans=bands, num_classes=3).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, bands, size, size, device=dev).to(memory_format=torch.channels_last)
    y = torch.randint(0, 3, (batch,), device=dev)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    t = interleaved_medians({"step": step}, repeats=5 if quick else 20, warmup=3, device=dev, desc="bf16 step")
    s = median(t["step"])
    name = torch.cuda.get_device_name(dev)
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    out = {"input": [batch, bands, size, size], "step_s": s, "images_per_s": batch / s, "flops_per_step": flops,
           "mfu": flops / s / peak if peak else None, "peak_flops": peak}

    # one PLGC-sized epoch of S3R-CR: 661 cubes of 40 x 512 x 612 in batches of 32 (data on the GPU)
    n_cubes, b = 661, 40
    cube = torch.rand(32, b, 512, 612, device=dev)
    obj = S3RObjective(timm.create_model("s3r_resnet50", in_chans=b, num_classes=0), [0.5] * b, [0.25] * b,
                       mode="cr").to(dev).to(memory_format=torch.channels_last)
    opt2 = torch.optim.AdamW(obj.parameters(), lr=1e-4)

    def s3r_step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = obj(cube)["loss"]
        opt2.zero_grad(set_to_none=True)
        loss.backward()
        opt2.step()

    ts = interleaved_medians({"s3r": s3r_step}, repeats=3 if quick else 10, warmup=2, device=dev, desc="S3R-CR step")
    steps = -(-n_cubes // 32)
    out["plgc_epoch"] = {"cubes": n_cubes, "input": [32, b, 512, 612], "step_s": median(ts["s3r"]),
                         "epoch_s": steps * median(ts["s3r"])}
    return out


def run(results_dir: Path, quick: bool = False) -> dict:
    """Run every speed measurement; write ``speed.json``; return the payload."""
    dev = run_device()
    crop, batch = (32, 4) if quick else (64, 8)
    cube, source = hims_tiles(crop, batch)
    cube = cube.to(dev)
    payload = {"name": "speed", "quick": quick, "data_source": source, "targets": TARGETS,
               "beta_targets": {"input": list(cube.shape), **_targets(cube, dev, 2 if quick else 7)},
               "train_step": {"model": "s3r_resnet18", "input": list(cube.shape),
                              **_steps("s3r_resnet18", cube, dev, 3 if quick else 30)},
               "precision": _precision("s3r_resnet18", (4, 40, 32, 32) if quick else (16, 40, 96, 96), dev,
                                       3 if quick else 15),
               "data": _data(n=12 if quick else 40, size=96 if quick else 256, crop=64 if quick else 128, batch=16),
               "memory_cache": _memory_cache(n=40 if quick else 200, size=40),
               "formats": _formats((96, 112, 40) if quick else (512, 612, 40), 32 if quick else 128,
                                   16 if quick else 200),
               "inference": _inference(dev, 2 if quick else 4, 96 if quick else 224, 5 if quick else 15),
               "cuda": _cuda(dev, quick) if dev.type == "cuda" else {"skipped": "no CUDA device"},
               **environment(dev)}
    write_result(results_dir, "speed", payload)
    return payload


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = True, num_workers: Optional[int] = None,
                drop_last: bool = False, seed: int = 0, pin_memory: Optional[bool] = None) -> DataLoader:
    """A DataLoader set up to keep the accelerator busy.

    Workers default to ``min(8, cpus - 1)``; pinned memory when CUDA is available;
    persistent workers and a prefetch of 4 batches per worker. Under ``torchrun``
    (an initialised process group) a :class:`DistributedSampler` shards the data.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, found {batch_size}")
    if num_workers is None:
        num_workers = max(0, min(8, (os.cpu_count() or 1) - 1))
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    sampler = None
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
        shuffle = False
    g = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler, num_workers=num_workers,
                      pin_memory=pin_memory, drop_last=drop_last, generator=g, worker_init_fn=_worker_init,
                      persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None)
