"""A training run's resumable state in one safetensors file, no pickle.

``state.safetensors`` holds the model (``model.*``), the optimiser's tensors
(``optim.<param>.<name>``) and the torch / CUDA RNG states as tensors; the rest
(configuration fingerprint, data position, optimiser param groups, scheduler, scaler,
numpy and Python RNG states) is JSON in the header's metadata. It is written atomically,
so a kill mid-write leaves the previous state.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..files import atomic_write

__all__ = ["ResumeError", "save_state", "load_state"]


class ResumeError(ValueError):
    """A resume directory does not belong to this configuration."""


def save_state(path: Path, fingerprint: str, model: nn.Module, opt: torch.optim.Optimizer, sched, scaler,
               pos: dict, device: torch.device) -> None:
    """Write everything needed to continue a run exactly where it stands."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    osd = opt.state_dict()
    for pid, st in osd["state"].items():
        for name, v in st.items():
            tensors[f"optim.{pid}.{name}"] = (v if torch.is_tensor(v) else torch.tensor(v)).cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    np_state = np.random.get_state()
    meta = {
        "fingerprint": fingerprint,
        "position": json.dumps(pos),
        "param_groups": json.dumps(osd["param_groups"]),
        "scheduler": json.dumps(sched.state_dict()),
        "scaler": json.dumps(scaler.state_dict() if scaler is not None else {}),
        "rng.numpy": json.dumps([np_state[0], np_state[1].tolist(), *np_state[2:]]),
        "rng.python": json.dumps(random.getstate(), default=list),
    }
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_state(path: Path, fingerprint: str, model: nn.Module, opt: torch.optim.Optimizer, sched,
               scaler: Optional[torch.amp.GradScaler], device: torch.device) -> dict:
    """Restore model, optimiser, scheduler, scaler and RNGs; return the saved data position."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        if meta.get("fingerprint") != fingerprint:
            raise ResumeError(
                f"{path}: written by another configuration; refusing to resume.\n  saved:   "
                f"{meta.get('fingerprint')}\n  current: {fingerprint}\n"
                f"Use a new --out folder, or the same settings (only --epochs may change).")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    sched.load_state_dict(json.loads(meta["scheduler"]))
    if scaler is not None and json.loads(meta["scaler"]):
        scaler.load_state_dict(json.loads(meta["scaler"]))
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    npst = json.loads(meta["rng.numpy"])
    np.random.set_state((npst[0], np.array(npst[1], dtype=np.uint32), *npst[2:]))
    pyst = json.loads(meta["rng.python"])
    random.setstate((pyst[0], tuple(pyst[1]), pyst[2]))
    return json.loads(meta["position"])
