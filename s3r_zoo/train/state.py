"""A training run's resumable state in one safetensors file, no pickle.

``state.safetensors`` holds the model (``model.*``), the optimiser's tensors
(``optim.<param>.<name>``) and the torch / CUDA RNG states as tensors; the rest
(configuration fingerprint, data position, optimiser param groups, scheduler, scaler,
numpy and Python RNG states) is JSON in the header's metadata, with a sha256 checksum of
everything else. Saving writes a temporary file, reads it back and checks it, and only
then moves the previous state to ``state.prev.safetensors`` and the new one into place:
a kill or a full disk mid-write leaves the previous state intact. Loading verifies the
checksum and falls back to ``state.prev.safetensors`` (with a warning naming both files)
when the latest state is corrupt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

__all__ = ["ResumeError", "StateCorruptError", "save_state", "load_state", "previous_state_path", "read_fingerprint",
           "has_state", "fingerprint_diff", "check_fingerprint", "drop_states", "trim_metrics", "STATE_FILE",
           "saved_tensors"]

_logger = logging.getLogger(__name__)
STATE_FILE = "state.safetensors"  # a run's resumable state, in its output folder


class ResumeError(ValueError):
    """A resume directory does not belong to this configuration, or holds no usable state."""


class StateCorruptError(ValueError):
    """A state file is unreadable or does not match its checksum."""


def previous_state_path(path: Path) -> Path:
    """Where the state before the latest one is kept (``state.prev.safetensors``)."""
    return path.with_name(path.name.replace(".safetensors", ".prev.safetensors"))


def drop_states(folder: Union[str, Path]) -> None:
    """Remove a finished run's resumable states (``state.safetensors`` and the previous one: model + optimiser,
    ~270 MB for a ResNet-18), keeping its results and weights: for callers that keep many finished runs."""
    path = Path(folder) / STATE_FILE
    for f in (path, previous_state_path(path)):
        f.unlink(missing_ok=True)


def trim_metrics(path: Path, pos: Optional[dict]) -> None:
    """A run's JSONL log at ``path``: removed for a fresh run (``pos`` None); on a resume, the records after the
    saved position (``global_step`` for step records, ``epoch`` for the rest) and lines cut by a kill dropped."""
    if pos is None or not path.exists():
        path.unlink(missing_ok=True)
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by the kill
        if r.get("kind") in ("step", "skip"):
            if r.get("step", 0) <= pos["global_step"]:
                keep.append(line)
        elif r.get("epoch", 0) <= pos["epoch"]:
            keep.append(line)
    path.write_text("".join(line + "\n" for line in keep))


def _checksum(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest()


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a state file, checksum verified; StateCorruptError otherwise."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise StateCorruptError(f"{path}: not a readable state file ({type(e).__name__}: {e})") from None
    saved = meta.pop("checksum", None)
    if saved is None:
        raise StateCorruptError(f"{path}: no checksum in its metadata (not written by this trainer)")
    if _checksum(tensors, meta) != saved:
        raise StateCorruptError(f"{path}: checksum mismatch (the file was changed or damaged after it was written)")
    return tensors, meta


def fingerprint_diff(saved: str, current: str) -> str:
    try:
        a, b = json.loads(saved), json.loads(current)
    except (TypeError, json.JSONDecodeError):
        return "the saved configuration is unreadable"
    flat_a = {**{k: v for k, v in a.items() if k != "extra"}, **a.get("extra", {})}
    flat_b = {**{k: v for k, v in b.items() if k != "extra"}, **b.get("extra", {})}
    keys = sorted(k for k in set(flat_a) | set(flat_b) if flat_a.get(k) != flat_b.get(k))
    return ", ".join(f"{k}: saved {flat_a.get(k)!r}, now {flat_b.get(k)!r}" for k in keys) or "no key differs"


def check_fingerprint(saved: Optional[str], current: str, path: Path) -> None:
    """Refuse (ResumeError naming the keys that differ) a state saved by another configuration."""
    if saved != current:
        raise ResumeError(f"{path}: written by another configuration ({fingerprint_diff(saved, current)}); "
                          f"refusing to resume. Use a new --out folder, or the same settings (only --epochs may "
                          f"change)")


def save_state(path: Path, fingerprint: str, model: nn.Module, opt: torch.optim.Optimizer, sched, scaler,
               pos: dict, device: torch.device) -> None:
    """Write everything needed to continue a run exactly where it stands (checked, previous state kept)."""
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
    meta["checksum"] = _checksum(tensors, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        _read(Path(tmp))  # verified before it replaces anything
        if path.exists():  # keep the current state as the previous one; `path` never disappears meanwhile
            prev = previous_state_path(path)
            link = prev.with_name(prev.name + ".tmp")
            link.unlink(missing_ok=True)
            try:
                os.link(path, link)
            except OSError:  # no hard links on this file system
                shutil.copyfile(path, link)
            os.replace(link, prev)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(path: Path, fingerprint: str, model: nn.Module, opt: torch.optim.Optimizer, sched,
               scaler: Optional[torch.amp.GradScaler], device: torch.device) -> dict:
    """Restore model, optimiser, scheduler, scaler and RNGs; return the saved data position.

    A corrupt latest state falls back to ``state.prev.safetensors`` with a warning; a
    configuration that differs from the saved one is refused, naming the keys that differ.
    """
    prev = previous_state_path(path)
    try:
        if not path.exists() and prev.exists():
            raise StateCorruptError(f"{path}: missing")
        tensors, meta = _read(path)
    except StateCorruptError as e:
        if not prev.is_file():
            raise ResumeError(f"{e}; no previous state ({prev.name}) to fall back to. Start a new --out folder, "
                              f"or delete {path.name} to start this one afresh") from None
        _logger.warning("%s; resuming from the previous state %s instead", e, prev)
        try:
            tensors, meta = _read(prev)
        except StateCorruptError as e2:
            raise ResumeError(f"{e}; the previous state is unusable too: {e2}") from None
    check_fingerprint(meta.get("fingerprint"), fingerprint, path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    groups = json.loads(meta["param_groups"])
    for saved, live in zip(groups, opt.param_groups):  # the implementation is this run's (a state may predate fused)
        saved.update({k: live[k] for k in ("fused", "foreach", "capturable") if k in live})
    opt.load_state_dict({"state": state, "param_groups": groups})
    for q, st in opt.state.items():  # saved contiguous; fused AdamW assumes its parameter's layout (channels_last)
        for k, v in st.items():
            if torch.is_tensor(v) and v.shape == q.shape and v.stride() != q.stride():
                st[k] = torch.empty_like(q).copy_(v)
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


def has_state(path: Path) -> bool:
    """Whether a run folder holds a state to resume (the latest or the previous one)."""
    return path.exists() or previous_state_path(path).exists()


def read_fingerprint(path: Path) -> Optional[str]:
    """The configuration fingerprint saved in a state file (latest, else previous), without loading it."""
    for p in (path, previous_state_path(path)):
        try:
            with safe_open(str(p), framework="pt") as f:
                return (f.metadata() or {}).get("fingerprint")
        except (SafetensorError, OSError, ValueError, RuntimeError):
            continue
    return None


def saved_tensors(path: Path, names: tuple[str, ...]) -> Optional[dict[str, torch.Tensor]]:
    """Tensors of the state a resume will load (the latest, else the previous one; checksums verified), or
    None when neither is usable (the resume then refuses with its own message)."""
    for p in (path, previous_state_path(path)):
        try:
            tensors, _ = _read(p)
        except StateCorruptError:
            continue
        return {n: tensors[n] for n in names if n in tensors}
    return None
