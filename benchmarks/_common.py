"""Helpers shared by the benchmark scripts: interleaved timing and result files."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
from tqdm.auto import tqdm

RESULTS = Path(__file__).resolve().parent / "results"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(fns: Dict[str, Callable[[], object]], repeats: int, warmup: int,
                        device: torch.device) -> Dict[str, List[float]]:
    """Time each callable ``repeats`` times, alternating between them (A B A B ...).

    Alternating spreads machine noise (other jobs, frequency changes) evenly over the
    candidates, so their ratio is fair even when absolute times drift.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in tqdm(range(repeats), desc="timing", unit="round"):
        for name, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t)
    return times


def environment(device: torch.device) -> dict:
    import timm

    import s3r_zoo

    env = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "machine": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
                     "s3r_zoo": s3r_zoo.__version__},
    }
    return env


def write_result(name: str, payload: dict) -> Path:
    """Write ``results/<name>.json`` atomically."""
    from s3r_zoo.checkpoint import atomic_write

    path = RESULTS / f"{name}.json"
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=2) + "\n"))
    return path


def median(xs: List[float]) -> float:
    return statistics.median(xs)
