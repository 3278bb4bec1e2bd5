"""Helpers shared by the benchmarks: interleaved timing, environment record, result files."""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

import numpy as np
import timm
import torch

from s3r_zoo import __version__
from s3r_zoo.data import read_cube
from s3r_zoo.data.synthetic import simulate_cube
from s3r_zoo.files import write_json
from s3r_zoo.progress import progress

REPO_BENCHMARKS = Path(__file__).resolve().parent  # this folder: benchmarks/ of the checkout
HIMS_ENV = "S3R_ZOO_TEST_DATA"
# the real cube, named by what it is (results never carry a machine's path to it)
HIMS_NAME = "FDA HIMS bladder core BL2082-M13, cube_hwc_f16.npy"


def default_results_dir() -> Path:
    """``benchmarks/results`` of this checkout."""
    return REPO_BENCHMARKS / "results"


def hims_cube_path() -> Optional[Path]:
    """The shared real HIMS cube ($S3R_ZOO_TEST_DATA or ../shared/data beside the checkout), if present."""
    root = Path(os.environ.get(HIMS_ENV, REPO_BENCHMARKS.parent.parent / "shared" / "data"))
    path = root / "hims_bladder" / "cube_hwc_f16.npy"
    return path if path.is_file() else None


def hims_tiles(crop: int, n: int, seed: int = 0) -> tuple[torch.Tensor, str]:
    """``n`` random ``crop``-px tiles (N, B, H, W) of the real HIMS cube (NaNs inpainted), else simulated."""
    path = hims_cube_path()
    if path is not None:
        cube = read_cube(path, nan="inpaint").data
        h, w, _ = cube.shape
        g = np.random.default_rng(seed)
        out = [cube[t:t + crop, l:l + crop] for t, l in zip(g.integers(0, h - crop, n), g.integers(0, w - crop, n))]
        return _nchw(out), f"real HIMS tiles ({HIMS_NAME})"
    out = [simulate_cube("pdac_like", i % 2, crop, seed=seed + i).data for i in range(n)]
    return _nchw(out), f"simulated pdac_like (no HIMS data at ${HIMS_ENV} or ../shared/data)"


def _nchw(tiles: list) -> torch.Tensor:
    """(N, B, H, W) float32 in contiguous (NCHW) memory from H x W x B tiles.

    ``astype`` keeps a transposed array's strides, so without the copy the tensor would be
    channels_last-strided: a contiguous model then pays for a layout conversion that the
    other side of a comparison does not (127 vs 108 ms for a ResNet-18 step on 2 CPU cores).
    """
    return torch.from_numpy(np.ascontiguousarray(np.stack(tiles).transpose(0, 3, 1, 2), dtype=np.float32))


def display_path(path: Path) -> str:
    """A path for results: relative to the checkout when inside it, else its last two parts (never absolute)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(REPO_BENCHMARKS.parent.resolve()))
    except ValueError:
        return str(Path(*p.parts[-2:]))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(fns: Dict[str, Callable[[], object]], repeats: int, warmup: int,
                        device: torch.device, desc: str = "timing", min_block_s: float = 0.05) -> Dict[str, List[float]]:
    """Seconds per call of each callable, ``repeats`` samples each, alternating between them (A B A B ...).

    Alternating spreads machine noise (other jobs, frequency changes) evenly over the
    candidates, so their ratio is fair even when absolute times drift. A callable faster
    than ``min_block_s`` is timed in blocks of back-to-back calls lasting about that long
    (like ``timeit``'s autorange), each sample being the block's time / its calls: one
    millisecond call is otherwise dominated by timer, scheduler and cold-cache noise.
    """
    number = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        number[name] = max(1, math.ceil(min_block_s / max(time.perf_counter() - t, 1e-9)))
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in progress(range(repeats), desc=desc, unit="round", leave=False):
        for name, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            for _ in range(number[name]):
                fn()
            sync(device)
            times[name].append((time.perf_counter() - t) / number[name])
    return times


PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 tensor-core FLOP/s, for MFU


def train_step(module: torch.nn.Module, loss_fn: Callable[[torch.Tensor], torch.Tensor],
               batch: Union[torch.Tensor, Callable[[], torch.Tensor]], amp: bool) -> Callable[[], None]:
    """One forward-backward-AdamW step of ``module`` (bf16 autocast when ``amp``) on ``batch``, or on a new
    batch from ``batch()`` at every call (to time a data path with the step)."""
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4, fused=True)  # as the trainer's

    def step() -> None:
        x = batch() if callable(batch) else batch
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def median(xs: List[float]) -> float:
    return statistics.median(xs)


def budget_record(b) -> dict:
    """A budget dataclass as the JSON of a result records it (tuples as lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in b.__dict__.items()}


def round_ratio_spread(num: List[float], den: List[float]) -> List[float]:
    """Quartiles [q1, q3] of the per-round ratios ``num[i] / den[i]`` of two interleaved timings: how far
    one round's ratio strays, so a ratio of medians near a target can be read against the machine's noise."""
    q = statistics.quantiles([a / b for a, b in zip(num, den)], n=4)
    return [q[0], q[2]]


def run_device() -> torch.device:
    """Where a benchmark computes: the first CUDA GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _program() -> str:
    """How the benchmark was started: ``python -m benchmarks`` (or the script's name)."""
    name = Path(sys.argv[0]).name
    return "python -m benchmarks" if name == "__main__.py" else name


def environment(device: torch.device) -> dict:
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([_program()] + [a if not os.path.isabs(a) else display_path(Path(a))
                                             for a in sys.argv[1:]]),
        "machine": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "device": device_name(device),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
                     "s3r_zoo": __version__},
    }


def write_result(results_dir: Path, name: str, payload: dict) -> Path:
    """Write ``<results_dir>/<name>.json`` atomically."""
    return write_json(Path(results_dir) / f"{name}.json", payload)
