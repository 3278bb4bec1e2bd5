"""``python -m benchmarks gpu``: S3R at training size on one GPU, inside a fixed time budget.

What one lent GPU has to answer (issue "one GPU at full speed"), in one JSON (``gpu.json``):

1. **Steps**: S3R-CR, S3R-BR and a plain timm step (forward, backward, AdamW) of ResNet-18 and
   ResNet-50 at 128, 256 and 512 px, bf16 autocast + channels_last, images/s, the S3R / plain ratio,
   and MFU against the chip's bf16 peak (FLOPs counted by ``FlopCounterMode``); ``torch.compile``
   on the 256-px rows while the budget lasts.
2. **Data**: the S3R-CR ResNet-18 step fed by the device-resident cubes (``DeviceCubes``), by the
   DataLoader over ``.npy`` files (workers), and by one fixed in-memory batch (the step alone): the
   loader must never be the bottleneck.
3. **Epochs**: a PDAC-sized (331 scenes) and a PLGC-sized (661 scenes) S3R-CR ResNet-18 epoch
   (one 256-px crop per scene, batch 32, data on the device), measured as steps x the median step,
   and 200 epochs projected next to the paper's ~400 minutes on an RTX 3090.

Rows run in that order of importance; one that would start after ``--budget-s`` seconds is recorded as
skipped, so the script ends inside the device time it was given. ``--tiny`` is the CPU rehearsal
(32-px crops, batch 2, ResNet-18, seconds).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from s3r_zoo.data import CubeDataset
from s3r_zoo.data.device import DeviceCubes
from s3r_zoo.pretrain import S3RObjective
from s3r_zoo.train import TrainConfig
from s3r_zoo.train.setup import epoch_loader

from .common import PEAK_BF16, environment, interleaved_medians, median, train_step, write_result

__all__ = ["run", "main", "gpu_section"]

PAPER_200_EPOCHS_MIN = 400  # docs/method.md: ~2 min per S3R epoch on PLGC, one RTX 3090
BANDS = 40


class _Clock:
    def __init__(self, budget_s: float):
        self.t0, self.budget_s = time.perf_counter(), budget_s

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)


def _modules(model: str, dev: torch.device, compile_: bool) -> dict[str, tuple[torch.nn.Module, Callable]]:
    mean, std = [0.5] * BANDS, [0.2] * BANDS
    cl = torch.channels_last
    plain = timm.create_model(model, in_chans=BANDS, num_classes=0).to(dev).to(memory_format=cl)
    out = {"timm plain": (plain, lambda m: (lambda x: m(x).float().pow(2).mean()))}
    for mode in ("cr", "br"):
        obj = S3RObjective(timm.create_model(model, in_chans=BANDS, num_classes=0), mean, std, mode=mode)
        out[f"S3R-{mode.upper()}"] = (obj.to(dev).to(memory_format=cl), lambda m: (lambda x: m(x)["loss"]))
    if compile_:
        out = {k: (torch.compile(m), f) for k, (m, f) in out.items()}
    return out


def _flops(step: Callable[[], None]) -> int:
    with FlopCounterMode(display=False) as fc:
        step()
    return fc.get_total_flops()


def _step_rows(dev: torch.device, models: Sequence[str], sizes: dict[int, int], repeats: int, clock: _Clock,
               compile_: bool = False) -> list[dict]:
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    rows = []
    for model, size in [(m, s) for s in sizes for m in models]:
        row = {"model": model, "size": size, "batch": sizes[size], "compile": compile_}
        if clock.left() < (90 if compile_ else 20):
            rows.append({**row, "skipped": "time budget"})
            continue
        torch.manual_seed(0)
        x = (0.3 + 0.4 * torch.rand(sizes[size], BANDS, size, size, device=dev)).contiguous(
            memory_format=torch.channels_last)
        fns = {k: train_step(m, f(m), x, amp=True) for k, (m, f) in _modules(model, dev, compile_).items()}
        flops = {k: _flops(fn) for k, fn in fns.items()} if not compile_ else {}
        t = interleaved_medians(fns, repeats=repeats, warmup=3, device=dev, desc=f"{model} {size}px")
        med = {k: median(v) for k, v in t.items()}
        row.update({"step_s": med, "images_per_s": {k: sizes[size] / v for k, v in med.items()},
                    "ratio_to_plain": {k: med[k] / med["timm plain"] for k in ("S3R-CR", "S3R-BR")}})
        if flops and peak:
            row["mfu"] = {k: flops[k] / med[k] / peak for k in med}
        rows.append(row)
        del fns
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def _scenes(folder: Path, n: int, h: int, w: int) -> list[tuple[Path, int]]:
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        path = folder / f"s{i:04d}.npy"
        np.save(path, (0.2 + 0.6 * rng.random((h, w, BANDS), dtype=np.float32)).astype(np.float16))
        items.append((path, 0))
    return items


def _data_rows(dev: torch.device, crop: int, batch: int, n: int, repeats: int, workers: int, clock: _Clock) -> dict:
    """One S3R-CR ResNet-18 step per batch, fed three ways, images/s of each (data drawn anew every step)."""
    if clock.left() < 30:
        return {"skipped": "time budget"}
    with tempfile.TemporaryDirectory() as tmp:
        items = _scenes(Path(tmp), n, crop + crop // 4, crop + crop // 3)
        ds = CubeDataset(items, crop=crop, crops_per_cube=4, seed=0)
        on_device = DeviceCubes(CubeDataset(items, crop=crop, crops_per_cube=4, seed=0), dev)
        obj = S3RObjective(timm.create_model("s3r_resnet18", in_chans=BANDS, num_classes=0), [0.5] * BANDS,
                           [0.2] * BANDS, mode="cr").to(dev).to(memory_format=torch.channels_last)
        fixed = next(iter(on_device.batches(range(batch), batch)))[0]
        cfg = TrainConfig(batch_size=batch, num_workers=workers)
        pin = dev.type == "cuda"
        feeds = {"fixed batch (the step alone)": lambda: fixed,
                 "device-resident cubes": _endless(lambda e: epoch_loader(on_device, cfg, e, 0), dev),
                 f"DataLoader, {workers} workers": _endless(lambda e: epoch_loader(ds, cfg, e, 0, pin_memory=pin),
                                                            dev)}

        def loss(x):
            return obj(x.contiguous(memory_format=torch.channels_last))["loss"]
        t = interleaved_medians({k: train_step(obj, loss, v, amp=True) for k, v in feeds.items()},
                                repeats=repeats, warmup=2, device=dev,
                                desc="data paths")
    med = {k: median(v) for k, v in t.items()}
    base = med["fixed batch (the step alone)"]
    return {"crop": crop, "batch": batch, "scenes": n, "step_s": med,
            "images_per_s": {k: batch / v for k, v in med.items()}, "rate_over_fixed": {k: base / v for k, v in med.items()}}


def _endless(make: Callable[[int], object], dev: torch.device) -> Callable[[], torch.Tensor]:
    state = {"epoch": 0, "it": iter(make(0))}

    def nxt() -> torch.Tensor:
        try:
            x, _ = next(state["it"])
        except StopIteration:
            state["epoch"] += 1
            state["it"] = iter(make(state["epoch"]))
            x, _ = next(state["it"])
        return x.to(dev, non_blocking=True)
    return nxt


def _epochs(dev: torch.device, crop: int, batch: int, repeats: int, clock: _Clock,
            scenes: dict[str, int]) -> dict:
    """S3R-CR ResNet-18 epochs of PDAC and PLGC size (one crop per scene), from the median device-data step."""
    if clock.left() < 30:
        return {"skipped": "time budget"}
    n = max(batch, 64)
    with tempfile.TemporaryDirectory() as tmp:
        cubes = DeviceCubes(CubeDataset(_scenes(Path(tmp), n, crop, crop), crop=crop, seed=0), dev)
    obj = S3RObjective(timm.create_model("s3r_resnet18", in_chans=BANDS, num_classes=0), [0.5] * BANDS,
                       [0.2] * BANDS, mode="cr").to(dev).to(memory_format=torch.channels_last)
    order = iter(range(10**9))
    step = train_step(obj, lambda x: obj(x.contiguous(memory_format=torch.channels_last))["loss"],
                      lambda: cubes.batch([next(order) % n for _ in range(batch)])[0], amp=True)
    s = median(interleaved_medians({"step": step}, repeats=repeats, warmup=3, device=dev, desc="epoch step")["step"])
    out = {"crop": crop, "batch": batch, "step_s": s, "paper_200_epochs_min": PAPER_200_EPOCHS_MIN}
    for name, k in scenes.items():
        epoch = (k // batch) * s
        out[name] = {"scenes": k, "steps": k // batch, "epoch_s": epoch, "epochs_200_min": 200 * epoch / 60}
    return out


def run(results_dir: Path, tiny: bool = False, budget_s: float = 420.0) -> dict:
    """Every measurement within ``budget_s`` seconds; writes ``gpu.json``; returns the payload."""
    dev = torch.device("cuda" if torch.cuda.is_available() and not tiny else "cpu")
    clock = _Clock(budget_s)
    if tiny:
        steps = _step_rows(dev, ["s3r_resnet18"], {32: 2}, 2, clock)
        data = _data_rows(dev, 32, 2, 8, 2, 0, clock)
        epochs = _epochs(dev, 32, 2, 2, clock, {"PDAC-sized": 8, "PLGC-sized": 16})
    else:  # in order of importance: compiled rows (~30-60 s of compilation each) last
        models = ["s3r_resnet18", "s3r_resnet50"]
        steps = _step_rows(dev, models, {128: 128, 256: 32, 512: 8}, 10, clock)
        data = _data_rows(dev, 256, 32, 48, 10, 8, clock)
        epochs = _epochs(dev, 256, 32, 10, clock, {"PDAC-sized": 331, "PLGC-sized": 661})
        steps += _step_rows(dev, models, {256: 32}, 10, clock, compile_=True)
    payload = {"name": "gpu", "tiny": tiny, "budget_s": budget_s, "wall_s": time.perf_counter() - clock.t0,
               "steps": steps, "data": data, "epochs": epochs, **environment(dev)}
    write_result(results_dir, "gpu", payload)
    return payload


def gpu_section(p: dict) -> str:
    """RESULTS.md's section of ``gpu.json``: the ratios side by side, then data paths and epochs."""
    lines = ["## One GPU at training size (`bash benchmarks/cuda/gpu.sh`)\n",
             f"{p['device']}, {p['date']}, torch {p['versions']['torch']}; wall {p['wall_s']:.0f} s of a "
             f"{p['budget_s']:.0f} s budget" + (" (`--tiny` CPU rehearsal: sizes too small to mean anything)"
                                                if p.get("tiny") else "") + ".\n",
             "| model | px | batch | compile | plain img/s | S3R-CR img/s (ratio) | S3R-BR img/s (ratio) | MFU plain / CR |",
             "|---|---|---|---|---|---|---|---|"]
    for r in p["steps"]:
        head = f"| {r['model']} | {r['size']} | {r['batch']} | {'on' if r['compile'] else 'off'} "
        if "skipped" in r:
            lines.append(head + f"| {r['skipped']} | | | |")
            continue
        ips, ratio, mfu = r["images_per_s"], r["ratio_to_plain"], r.get("mfu")
        lines.append(head + f"| {ips['timm plain']:.0f} | {ips['S3R-CR']:.0f} ({ratio['S3R-CR']:.3f}) "
                     f"| {ips['S3R-BR']:.0f} ({ratio['S3R-BR']:.3f}) | "
                     + (f"{mfu['timm plain']:.1%} / {mfu['S3R-CR']:.1%} |" if mfu else "n/a |"))
    d = p["data"]
    if "skipped" not in d:
        lines += ["", f"S3R-CR ResNet-18 at {d['crop']} px, batch {d['batch']}, {d['scenes']} scenes: images/s by "
                      f"data path (rate over the step alone): " + "; ".join(
                          f"{k} {v:.0f} ({d['rate_over_fixed'][k]:.2f})" for k, v in d["images_per_s"].items()) + "."]
    e = p["epochs"]
    if "skipped" not in e:
        lines += ["", f"S3R-CR ResNet-18 epochs ({e['crop']} px, batch {e['batch']}, data on the device, "
                      f"{e['step_s'] * 1e3:.1f} ms per step): " + "; ".join(
                          f"{k} ({v['scenes']} scenes) {v['epoch_s']:.2f} s, 200 epochs {v['epochs_200_min']:.1f} min"
                          for k, v in e.items() if isinstance(v, dict))
                  + f" (the paper: ~{e['paper_200_epochs_min']} min on one RTX 3090)."]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="benchmarks/results", help="folder for gpu.json")
    p.add_argument("--tiny", action="store_true", help="CPU rehearsal at a tiny size")
    p.add_argument("--budget-s", type=float, default=420.0, help="rows that would start later are skipped")
    a = p.parse_args(argv)
    out = run(Path(a.results), tiny=a.tiny, budget_s=a.budget_s)
    print(f"gpu.json written ({out['wall_s']:.0f} s, {out['device']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
