"""The one training loop. Objectives (S3R-CR/BR, ablation, baselines) plug into it.

* AdamW, exponential lr decay per epoch, gradient clipping, early stop on the training
  loss (patience, min-delta), at most ``epochs`` epochs (METHOD.md: lr 1e-4, gamma 0.99, 200);
* AMP: ``fp16`` (autocast + GradScaler, CUDA), ``bf16`` (CUDA or CPU autocast) or ``none``;
  ``channels_last``; optional ``torch.compile``;
* ``torchrun``: PyTorch DDP with a DistributedSampler (nccl on GPU, gloo on CPU);
  rank 0 logs and writes checkpoints;
* never lose work: ``state.safetensors`` after every epoch and every ``ckpt_every``
  steps, written atomically, holding model, optimiser, scheduler, scaler, RNG states and
  the data position (epoch, step); ``resume=True`` continues to the same result as an
  uninterrupted run (bit-exact on CPU). No pickle: tensors in safetensors, the rest as
  JSON in its metadata.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler
from tqdm.auto import tqdm

from ..checkpoint import atomic_write

__all__ = ["TrainConfig", "Trainer", "ResumeError", "NonFiniteLossError", "seed_everything"]

_logger = logging.getLogger(__name__)
STATE_FILE = "state.safetensors"
METRICS_FILE = "metrics.jsonl"


class ResumeError(ValueError):
    """A resume directory does not belong to this configuration."""


class NonFiniteLossError(RuntimeError):
    """The loss stayed NaN/Inf for too many consecutive steps."""


@dataclass
class TrainConfig:
    """Optimisation settings; everything except ``epochs`` must match on resume."""

    epochs: int = 200
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.05
    gamma: float = 0.99
    schedule: str = "exponential"  # or "linear" (decay to 0 over `epochs`, fine-tuning)
    grad_clip: Optional[float] = 1.0
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    patience: int = 10
    min_delta: float = 1e-4
    seed: int = 0
    num_workers: int = 0
    ckpt_every: int = 0
    log_every: int = 10
    max_bad_steps: int = 20
    tensorboard: bool = False  # also write TensorBoard scalars to <out>/tensorboard (needs `tensorboard`)
    extra: dict = field(default_factory=dict)  # objective / data description, part of the fingerprint

    def fingerprint(self) -> str:
        d = asdict(self)
        for k in ("epochs", "num_workers", "log_every", "ckpt_every", "tensorboard"):
            d.pop(k)
        return json.dumps(d, sort_keys=True, default=str)


class _SkipSampler(Sampler):
    """Yields a base sampler's indices after the first ``skip`` (mid-epoch resume)."""

    def __init__(self, base: Sampler, skip: int):
        self.base, self.skip = base, skip

    def __iter__(self) -> Iterator[int]:
        it = iter(self.base)
        for _ in range(self.skip):
            next(it, None)
        return it

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and random: call it before building models, so that the seed fixes their init."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


class Trainer:
    """Fit an objective on a dataset of raw cubes ``(x, label)``; labels are passed as the
    second argument of ``forward`` when the objective sets ``uses_labels = True``."""

    def __init__(self, config: TrainConfig, out_dir: str | Path, device: Optional[str] = None):
        self.cfg = config
        if config.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"amp: expected 'none', 'bf16' or 'fp16', found {config.amp!r}")
        self.world, self.rank, local = _dist_info()
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend=backend)
        if device is None:
            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if config.amp == "fp16" and self.device.type != "cuda":
            raise ValueError("amp='fp16' needs CUDA (GradScaler); use amp='bf16' or 'none' on CPU")
        self.out = Path(out_dir)
        self._tb = None
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if config.tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    raise ValueError("tensorboard=True (--tensorboard) needs the 'tensorboard' package: "
                                     "pip install tensorboard") from None
                self._tb = SummaryWriter(str(self.out / "tensorboard"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------------------------
    def _autocast(self):
        if self.cfg.amp == "none":
            return torch.autocast(device_type=self.device.type, enabled=False)
        dtype = torch.float16 if self.cfg.amp == "fp16" else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _sampler(self, dataset: Dataset, epoch: int) -> Sampler:
        if self.world > 1:
            from torch.utils.data.distributed import DistributedSampler

            s = DistributedSampler(dataset, num_replicas=self.world, rank=self.rank, shuffle=True,
                                   seed=self.cfg.seed, drop_last=True)
            s.set_epoch(epoch)
            return s
        return RandomSampler(dataset, generator=torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch))

    def _loader(self, dataset: Dataset, epoch: int, skip_batches: int) -> DataLoader:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        sampler = _SkipSampler(self._sampler(dataset, epoch), skip_batches * self.cfg.batch_size)
        w = self.cfg.num_workers
        # its own generator: creating the iterator must not draw from the global RNG that the
        # objective uses (masks, target bands), or a resumed run would drift from an uninterrupted one
        g = torch.Generator().manual_seed(self.cfg.seed * 100_019 + epoch)
        return DataLoader(dataset, batch_size=self.cfg.batch_size, sampler=sampler, num_workers=w,
                          pin_memory=self.device.type == "cuda", drop_last=True, persistent_workers=False,
                          prefetch_factor=4 if w > 0 else None, generator=g)

    # -- state --------------------------------------------------------------------------
    def _save_state(self, model: nn.Module, opt, sched, scaler, pos: dict) -> None:
        if not self.is_main:
            return
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        osd = opt.state_dict()
        for pid, st in osd["state"].items():
            for name, v in st.items():
                tensors[f"optim.{pid}.{name}"] = (v if torch.is_tensor(v) else torch.tensor(v)).cpu().contiguous()
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        np_state = np.random.get_state()
        meta = {
            "fingerprint": self.cfg.fingerprint(),
            "position": json.dumps(pos),
            "param_groups": json.dumps(osd["param_groups"]),
            "scheduler": json.dumps(sched.state_dict()),
            "scaler": json.dumps(scaler.state_dict() if scaler is not None else {}),
            "rng.numpy": json.dumps([np_state[0], np_state[1].tolist(), *np_state[2:]]),
            "rng.python": json.dumps(random.getstate(), default=list),
        }
        atomic_write(self.out / STATE_FILE, lambda tmp: save_file(tensors, tmp, metadata=meta))

    def _load_state(self, model: nn.Module, opt, sched, scaler) -> dict:
        path = self.out / STATE_FILE
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata()
            if meta.get("fingerprint") != self.cfg.fingerprint():
                raise ResumeError(
                    f"{path}: written by another configuration; refusing to resume.\n  saved:   "
                    f"{meta.get('fingerprint')}\n  current: {self.cfg.fingerprint()}\n"
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
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        npst = json.loads(meta["rng.numpy"])
        np.random.set_state((npst[0], np.array(npst[1], dtype=np.uint32), *npst[2:]))
        pyst = json.loads(meta["rng.python"])
        random.setstate((pyst[0], tuple(pyst[1]), pyst[2]))
        return json.loads(meta["position"])

    def _log(self, record: dict) -> None:
        if not self.is_main:
            return
        with open(self.out / METRICS_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            step = record.get("step", record.get("epoch", 0))
            for k, v in record.items():
                if k not in ("kind", "step", "epoch") and isinstance(v, (int, float)):
                    self._tb.add_scalar(f"{record['kind']}/{k}", v, step)
            self._tb.flush()

    # -- loop ---------------------------------------------------------------------------
    def fit(self, objective: nn.Module, dataset: Dataset, resume: bool = False,
            on_epoch_end: Optional[Callable[[int, float], None]] = None) -> dict:
        """Train; returns a summary (epochs run, final/best loss, stop reason, wall time)."""
        cfg = self.cfg
        seed_everything(cfg.seed)
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        model = objective.to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                weight_decay=cfg.weight_decay)
        if cfg.schedule == "exponential":
            sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.gamma)
        elif cfg.schedule == "linear":
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: max(0.0, 1.0 - e / cfg.epochs))
        else:
            raise ValueError(f"schedule: expected 'exponential' or 'linear', found {cfg.schedule!r}")
        scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
        pos = {"epoch": 0, "step": 0, "global_step": 0, "best": math.inf, "bad_epochs": 0, "history": []}
        state_path = self.out / STATE_FILE
        if resume and state_path.exists():
            pos = self._load_state(model, opt, sched, scaler)
            if self.is_main:
                _logger.warning("resuming from %s at epoch %d, step %d", state_path, pos["epoch"], pos["step"])
        elif resume:
            _logger.warning("--resume: no %s yet, starting fresh", state_path)
        elif state_path.exists() and self.is_main:
            raise ResumeError(f"{state_path} exists: pass resume=True (--resume) to continue it, or use a new folder")
        if not resume and self.is_main:
            (self.out / METRICS_FILE).unlink(missing_ok=True)

        run = model
        if self.world > 1:
            run = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.compile:
            run = torch.compile(run)

        t0 = time.perf_counter()
        stop = "max_epochs"
        steps_per_epoch = len(dataset) // (cfg.batch_size * self.world)
        if steps_per_epoch < 1:
            raise ValueError(f"dataset of {len(dataset)} items is smaller than one batch "
                             f"({cfg.batch_size} x {self.world} processes)")
        bad_steps = 0
        uses_labels = getattr(objective, "uses_labels", False)
        after_step = getattr(objective, "after_step", None)
        while pos["epoch"] < cfg.epochs:
            epoch = pos["epoch"]
            model.train()
            loader = self._loader(dataset, epoch, pos["step"])
            sums = pos.get("epoch_sums", [0.0, 0])
            bar = tqdm(loader, total=steps_per_epoch, initial=pos["step"], desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       unit="step", disable=not self.is_main, dynamic_ncols=True)
            t_epoch = time.perf_counter()
            for x, labels in bar:
                x = x.to(self.device, non_blocking=True)
                if cfg.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                if not torch.isfinite(x).all():
                    raise ValueError(f"epoch {epoch + 1}, step {pos['step'] + 1}: the batch holds NaN/Inf values; "
                                     f"read the cubes with nan='zero'|'band_mean'|'inpaint'")
                with self._autocast():
                    out = run(x, labels.to(self.device)) if uses_labels else run(x)
                loss = out["loss"]
                if not torch.isfinite(loss):
                    bad_steps += 1
                    opt.zero_grad(set_to_none=True)
                    if bad_steps >= cfg.max_bad_steps:
                        raise NonFiniteLossError(
                            f"loss was NaN/Inf for {bad_steps} consecutive steps (epoch {epoch + 1}); lower --lr, "
                            f"use --amp bf16 instead of fp16, or check the data")
                    continue
                bad_steps = 0
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                else:
                    loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                if after_step is not None:  # e.g. BYOL's EMA target update
                    after_step()
                value = float(loss.detach())
                sums = [sums[0] + value, sums[1] + 1]
                pos["step"] += 1
                pos["global_step"] += 1
                rate = pos["step"] * cfg.batch_size / max(time.perf_counter() - t_epoch, 1e-9)
                bar.set_postfix(loss=f"{value:.4f}", cubes_s=f"{rate:.1f}", lr=f"{sched.get_last_lr()[0]:.2e}")
                if pos["global_step"] % cfg.log_every == 0:
                    self._log({"kind": "step", "epoch": epoch + 1, "step": pos["global_step"], "loss": value,
                               "lr": sched.get_last_lr()[0], "time_s": time.perf_counter() - t0})
                if cfg.ckpt_every and pos["global_step"] % cfg.ckpt_every == 0:
                    self._save_state(model, opt, sched, scaler, {**pos, "epoch_sums": sums})
            bar.close()
            total = torch.tensor([sums[0], sums[1]], dtype=torch.float64, device=self.device)
            if self.world > 1:
                torch.distributed.all_reduce(total)
            epoch_loss = float(total[0] / total[1]) if total[1] > 0 else math.nan  # every step skipped
            sched.step()
            improved = epoch_loss < pos["best"] - cfg.min_delta
            pos.update(epoch=epoch + 1, step=0, best=min(pos["best"], epoch_loss),
                       bad_epochs=0 if improved else pos["bad_epochs"] + 1)
            pos["history"].append({"epoch": epoch + 1, "loss": epoch_loss, "time_s": time.perf_counter() - t0})
            pos.pop("epoch_sums", None)
            self._log({"kind": "epoch", "epoch": epoch + 1, "loss": epoch_loss, "lr": sched.get_last_lr()[0],
                       "epoch_time_s": time.perf_counter() - t_epoch, "time_s": time.perf_counter() - t0})
            if on_epoch_end is not None:  # before the state save: a resumed run never skips it
                on_epoch_end(epoch + 1, epoch_loss)
            self._save_state(model, opt, sched, scaler, pos)
            if pos["bad_epochs"] >= cfg.patience:
                stop = "early_stop"
                break
        summary = {"epochs": pos["epoch"], "final_loss": pos["history"][-1]["loss"] if pos["history"] else None,
                   "best_loss": pos["best"], "stop": stop, "wall_time_s": time.perf_counter() - t0,
                   "history": pos["history"], "world_size": self.world, "device": str(self.device)}
        return summary
