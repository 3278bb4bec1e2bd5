"""The one training loop. Every :class:`~.objective.Objective` trains with it (its settings: :mod:`.setup`).

* AdamW, exponential (pre-training) or linear (fine-tuning) lr decay per epoch, gradient clipping, early
  stop (patience, min-delta), at most ``epochs`` epochs (docs/method.md: lr 1e-4, gamma 0.99, 200 epochs);
* AMP: ``fp16`` (autocast + GradScaler, CUDA), ``bf16`` (CUDA or CPU autocast) or ``none``; ``channels_last``;
  optional ``torch.compile``; ``torchrun``: PyTorch DDP, each process a block of every global batch
  (:class:`~.setup.ShardSampler`; nccl on GPU, gloo on CPU); rank 0 logs and writes checkpoints;
* never lose work: ``state.safetensors`` (:mod:`.state`, checksummed, the previous one kept) every
  ``state_every`` epochs (always after the last) and every ``ckpt_every`` steps: model, optimiser,
  scheduler, scaler, RNG states, data position; ``resume=True`` continues to the same result as an
  uninterrupted run (bit-exact on CPU);
* never silently wrong: a refused run writes nothing (:meth:`Trainer.preflight`); a non-finite loss or
  gradient skips its step (counted), too many stop the run, as do non-finite weights (:class:`NonFiniteError`);
  Ctrl-C / SIGTERM end it with one line saying where it stood (:class:`RunInterrupted`).

:meth:`Trainer.fit` reads as its steps: :meth:`~Trainer._start` (seed, optimiser, state),
then per epoch :meth:`~Trainer._train_epoch` (one :meth:`~Trainer._step` per batch) and
:meth:`~Trainer._end_epoch` (epoch loss, scheduler, log, hook, state, early stop).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import Dataset

from ..files import atomic_write, check_writable_dir, first_line
from ..progress import progress, say
from .objective import Objective
from .outcomes import Outcomes
from .setup import (AMP_MODES, SCHEDULES, NonFiniteError, NonFiniteLossError, RunInterrupted, TrainConfig,
                    epoch_loader,
                    cpu_has_fast_bf16, dist_info, first_non_finite, resolve_amp, seed_everything)
from .state import (STATE_FILE, ResumeError, check_fingerprint, has_state, load_state, read_fingerprint, save_state,
                    trim_metrics)

__all__ = ["TrainConfig", "Trainer", "ResumeError", "NonFiniteLossError", "NonFiniteError", "seed_everything",
           "AMP_MODES", "first_non_finite", "resolve_amp", "cpu_has_fast_bf16"]

_logger = logging.getLogger(__name__)
BEST_FILE = "best_val.safetensors"  # the objective's weights at the best validation epoch
METRICS_FILE = "metrics.jsonl"


@dataclass
class _Fit:
    """What one :meth:`Trainer.fit` call works on."""

    objective: Objective
    run: nn.Module  # the objective, wrapped in DDP / compiled where asked
    opt: torch.optim.Optimizer
    sched: Any
    scaler: Optional[torch.amp.GradScaler]
    pos: dict  # epoch, step, global_step, best, bad_epochs, history (saved in the state)
    steps_per_epoch: int
    t0: float = 0.0
    bad_steps: int = 0  # consecutive skipped steps
    saved: Optional[dict] = None  # epoch and step of the last saved state
    elapsed: Optional[float] = None  # run time (all processes of a resumed run) at the last saved state
    outcomes: Outcomes = field(default_factory=Outcomes)  # the steps the host has not read yet
    sums: list = field(default_factory=lambda: [0.0, 0])  # this epoch: loss sum, applied steps[, skipped steps]


class Trainer:
    """Fit an :class:`~.objective.Objective` on a dataset of raw cubes ``(x, label)``."""

    def __init__(self, config: TrainConfig, out_dir: str | Path, device: Optional[str] = None):
        self.cfg = config
        if config.amp not in AMP_MODES:
            raise ValueError(f"amp: expected one of {AMP_MODES}, found {config.amp!r}")
        if config.schedule not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {SCHEDULES}, found {config.schedule!r}")
        self.world, self.rank, local = dist_info()
        if self.world > 1:  # in the fingerprint: a resume needs the same processes (steps per epoch, shards)
            config.extra = {**config.extra, "processes": self.world}
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        if device is None:
            if torch.cuda.is_available() and local >= torch.cuda.device_count():
                raise ValueError(f"LOCAL_RANK {local}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                                 f"start at most that many processes per node (torchrun --nproc_per_node)")
            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.amp = resolve_amp(config.amp, self.device)  # what autocast really uses
        if self.amp == "fp16" and self.device.type != "cuda":
            raise ValueError("amp='fp16' needs CUDA (GradScaler); use amp='bf16' or 'none' on CPU")
        self.out = Path(out_dir)
        self._tb = None
        if config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional dependency
            except ImportError:
                raise ValueError("tensorboard=True (--tensorboard) needs the 'tensorboard' package: "
                                 "pip install tensorboard") from None
            self._summary_writer = SummaryWriter

    def preflight(self, resume: bool) -> None:
        """Refuse, before anything is written, an output folder this run cannot use: not a writable folder, a
        state without ``resume``, a state of another configuration (naming the keys), unreadable best weights."""
        check_writable_dir(self.out)
        state_path = self.out / STATE_FILE
        exists = has_state(state_path)
        saved = read_fingerprint(state_path) if exists else None
        if exists and not resume and self.is_main:
            raise ResumeError(f"{state_path} exists: pass resume=True (--resume) to continue it, or use a new folder")
        if resume and saved is not None:
            check_fingerprint(saved, self.cfg.fingerprint(), state_path)
        if resume and (self.out / BEST_FILE).exists():
            self.best_weights()  # checked now, not after hours of training

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def log(self, record: dict) -> None:
        """Append a record (``kind``: step / epoch / val / ...) to ``metrics.jsonl`` (and TensorBoard)."""
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

    # -- the loop ------------------------------------------------------------------------
    def fit(self, objective: Objective, dataset: Dataset, resume: bool = False,
            on_epoch_end: Optional[Callable[[int, float], None]] = None,
            validate: Optional[Callable[[Objective], dict]] = None) -> dict:
        """Train; returns a summary (epochs run, final/best loss, stop reason, wall time).

        ``on_epoch_end(epoch, loss)`` runs after each epoch, before its state is saved (so
        a resumed run never skips it): fine-tuning validates there. ``validate(objective)``
        returns held-out metrics with a ``"loss"``; when given, early stopping follows that
        loss instead of the training loss and the weights of its best epoch are kept in
        ``best_val.safetensors``. Early stopping is Keras-style: an epoch improves when its loss
        is below the best so far by more than ``min_delta``; only then do the best and the
        patience count reset.
        """
        self._validate = validate
        if not isinstance(objective, Objective):
            raise TypeError(f"objective: expected an s3r_zoo.train.Objective, found {type(objective).__name__}")
        fit = self._start(objective, dataset, resume)
        stop = "max_epochs"
        try:
            while fit.pos["epoch"] < self.cfg.epochs:
                epoch_loss, epoch_time = self._train_epoch(fit, dataset)
                if self._end_epoch(fit, epoch_loss, epoch_time, on_epoch_end):
                    stop = "early_stop"
                    break
        except KeyboardInterrupt as e:  # Ctrl-C / SIGTERM: one line saying where the run stood; the state is intact
            e_pos, s_pos = fit.pos, fit.saved
            saved = ("none yet" if s_pos is None else f"epoch {s_pos['epoch']}" if not s_pos["step"] else
                     f"epoch {s_pos['epoch'] + 1}, step {s_pos['step']}")
            raise RunInterrupted(f"interrupted at epoch {e_pos['epoch'] + 1}, step {e_pos['step']} (saved state: "
                                 f"{saved}); resume with --resume", getattr(e, "exit_code", 130)) from None
        pos = fit.pos
        return {"epochs": pos["epoch"], "steps": pos["global_step"],
                "final_loss": pos["history"][-1]["loss"] if pos["history"] else None,
                # the time at the last state (a run ends with one): what a resumed run counts on from, so its
                # wall time always exceeds the interrupted run's (the final state's write is not counted)
                "best_loss": pos["best"], "stop": stop,
                "wall_time_s": fit.elapsed if fit.elapsed is not None else time.perf_counter() - fit.t0,
                "best_epoch": pos.get("best_epoch"), "skipped_steps": pos.get("skipped_steps", 0),
                "history": pos["history"], "world_size": self.world, "cpu_threads": torch.get_num_threads(),
                "device": str(self.device), "amp": self.amp, "channels_last": self.cfg.channels_last}

    def _start(self, objective: Objective, dataset: Dataset, resume: bool) -> _Fit:
        """Seed, move the objective, build optimiser / scheduler / scaler, restore or refuse state."""
        cfg = self.cfg
        self.preflight(resume)
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            if cfg.tensorboard and self._tb is None:
                self._tb = self._summary_writer(str(self.out / "tensorboard"))
        seed_everything(cfg.seed)
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        model = objective.to(self.device)
        model.shard = (self.rank, self.world)  # random draws of the global batch, this process's part
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        # fused: one kernel, and a step skipped on the device (``found_inf``) without a host sync (:mod:`.outcomes`)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                weight_decay=cfg.weight_decay, fused=True)
        if cfg.schedule == "exponential":
            sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.gamma)
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: max(0.0, 1.0 - e / cfg.epochs))
        scaler = torch.amp.GradScaler("cuda") if self.amp == "fp16" else None
        pos = {"epoch": 0, "step": 0, "global_step": 0, "best": math.inf, "bad_epochs": 0, "history": []}
        state_path = self.out / STATE_FILE
        if resume and has_state(state_path):
            pos = load_state(state_path, cfg.fingerprint(), model, opt, sched, scaler, self.device)
            if self.is_main:
                _logger.warning("resuming from %s at epoch %d, step %d", state_path, pos["epoch"], pos["step"])
            if self.device.type == "cpu" and pos.get("threads", torch.get_num_threads()) != torch.get_num_threads():
                _logger.warning("state saved with %s CPU threads, this process has %d: not bit-identical to an "
                                "uninterrupted run (OMP_NUM_THREADS=%s is)", pos["threads"], torch.get_num_threads(),
                                pos["threads"])
        elif resume:
            _logger.warning("--resume: no %s yet, starting fresh", state_path)
        if self.is_main:
            self._trim_metrics(pos if resume and has_state(state_path) else None)
        pos["threads"] = torch.get_num_threads()  # CPU results are bit-exact for a given thread count

        run: nn.Module = model
        if self.world > 1:
            run = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if cfg.compile:
            run = torch.compile(run)
        steps_per_epoch = len(dataset) // (cfg.batch_size * self.world)
        if steps_per_epoch < 1:
            raise ValueError(f"dataset of {len(dataset)} items is smaller than one batch "
                             f"({cfg.batch_size} x {self.world} processes)")
        # wall time counts every process of the run, not only this one
        return _Fit(objective=model, run=run, opt=opt, sched=sched, scaler=scaler, pos=pos,
                    steps_per_epoch=steps_per_epoch, t0=time.perf_counter() - pos.get("elapsed_s", 0.0),
                    saved={"epoch": pos["epoch"], "step": pos["step"]} if pos["global_step"] else None)

    def _train_epoch(self, fit: _Fit, dataset: Dataset) -> tuple[float, float]:
        """One epoch (from the saved step on a resume); returns (mean loss, start time)."""
        cfg, pos = self.cfg, fit.pos
        epoch = pos["epoch"]
        fit.objective.train()
        loader = epoch_loader(dataset, self.cfg, epoch, pos["step"], self.world, self.rank,
                              pin_memory=self.device.type == "cuda")
        fit.sums = list(pos.get("epoch_sums", [0.0, 0]))
        bar = progress(loader, total=fit.steps_per_epoch, initial=pos["step"], desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       unit="step", disable=not self.is_main, dynamic_ncols=True)
        t_epoch = time.perf_counter()
        for x, labels in bar:
            self._step(fit, x, labels)
            pos["step"] += 1
            pos["global_step"] += 1
            save = cfg.ckpt_every and pos["global_step"] % cfg.ckpt_every == 0
            if save or pos["global_step"] % cfg.log_every == 0:
                self._read_steps(fit, bar, t_epoch)
            if save:
                self._save(fit, {**pos, "epoch_sums": fit.sums})
        self._read_steps(fit, bar, t_epoch)
        bar.close()
        total = torch.tensor(fit.sums[:2], dtype=torch.float64, device=self.device)
        if self.world > 1:
            torch.distributed.all_reduce(total)
        if total[1] == 0:
            raise NonFiniteLossError(f"epoch {epoch + 1}: the loss was NaN/Inf at every step, so nothing was learnt; "
                                     f"lower --lr, use --amp bf16 instead of fp16, or check the data")
        return float(total[0] / total[1]), t_epoch

    def _step(self, fit: _Fit, x: torch.Tensor, labels: torch.Tensor) -> None:
        """Forward, backward, optimiser step and after-step hook, without a host sync: the checks of batch,
        loss and gradient stay on the device, and a non-finite step is skipped there (:mod:`.outcomes`)."""
        cfg, pos = self.cfg, fit.pos
        x = x.to(self.device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        finite = torch.isfinite(x).all()
        with self.autocast():
            out = fit.run(x, labels.to(self.device, non_blocking=True)) if fit.objective.uses_labels else fit.run(x)
        loss = out["loss"]
        fit.opt.zero_grad(set_to_none=True)
        if fit.scaler is not None:
            fit.scaler.scale(loss).backward()
            fit.scaler.unscale_(fit.opt)
        else:
            loss.backward()
        norm = nn.utils.clip_grad_norm_(fit.objective.parameters(), cfg.grad_clip or math.inf)
        skip = fit.outcomes.record((pos["epoch"] + 1, pos["step"] + 1, pos["global_step"] + 1), loss, norm, finite)
        if fit.scaler is not None:  # GradScaler skips non-finite gradients itself (and lowers its scale)
            fit.scaler.step(fit.opt)
            fit.scaler.update()
        else:  # fused AdamW leaves weights and moments as they were when found_inf is 1
            fit.opt.found_inf = skip
            fit.opt.step()
        fit.objective.after_step()  # runs after a skipped step too (an EMA teacher then moves toward unchanged weights)

    def _read_steps(self, fit: _Fit, bar, t_epoch: float) -> None:
        """Read the steps since the last read (one host sync): epoch sums, skips, step logs, the progress bar;
        a non-finite batch, or ``max_bad_steps`` skipped steps in a row, stop the run naming the step."""
        cfg, pos = self.cfg, fit.pos
        lr, now, last = fit.sched.get_last_lr()[0], time.perf_counter() - fit.t0, None
        for s in fit.outcomes.read():
            if not s.batch_finite:
                raise ValueError(f"epoch {s.epoch}, step {s.step}: the batch holds NaN/Inf values; read the cubes "
                                 f"with nan='zero'|'band_mean'|'inpaint'")
            if not s.applied:
                fit.bad_steps += 1
                pos["skipped_steps"] = pos.get("skipped_steps", 0) + 1
                fit.sums = fit.sums[:2] + [fit.sums[2] + 1 if len(fit.sums) > 2 else 1]
                self.log({"kind": "skip", "epoch": s.epoch, "step": s.global_step, "reason": f"non-finite {s.reason}",
                          "time_s": now})
                if fit.bad_steps >= cfg.max_bad_steps:
                    raise NonFiniteLossError(
                        f"{s.reason} was NaN/Inf for {fit.bad_steps} consecutive steps (epoch {s.epoch}); lower "
                        f"--lr, use --amp bf16 instead of fp16, or check the data")
                continue
            fit.bad_steps, last = 0, s
            fit.sums = [fit.sums[0] + s.loss, fit.sums[1] + 1] + fit.sums[2:]
            if s.global_step % cfg.log_every == 0:
                self.log({"kind": "step", "epoch": s.epoch, "step": s.global_step, "loss": s.loss, "lr": lr,
                          "time_s": now})
        if last is not None:
            rate = pos["step"] * cfg.batch_size / max(time.perf_counter() - t_epoch, 1e-9)
            bar.set_postfix(loss=f"{last.loss:.4f}", cubes_s=f"{rate:.1f}", lr=f"{lr:.2e}", refresh=False)

    def _end_epoch(self, fit: _Fit, epoch_loss: float, t_epoch: float,
                   on_epoch_end: Optional[Callable[[int, float], None]]) -> bool:
        """Scheduler, bookkeeping, log, hook, state; True when early stopping ends the run."""
        cfg, pos = self.cfg, fit.pos
        epoch = pos["epoch"]
        self._check_finite(fit)
        fit.sched.step()
        due = (epoch + 1) % cfg.val_every == 0 or epoch + 1 >= cfg.epochs
        val = self._validate(fit.objective) if self._validate is not None and due else None
        improved = False
        if val is not None or self._validate is None:  # epochs between validations change nothing here
            monitored = val["loss"] if val is not None else epoch_loss
            improved = monitored < pos["best"] - cfg.min_delta
            if improved:
                pos.update(best=monitored, best_epoch=epoch + 1, bad_epochs=0)
                if val is not None and self.is_main:
                    self._save_best(fit, epoch + 1, monitored)
            else:
                pos["bad_epochs"] += 1
        pos.update(epoch=epoch + 1, step=0)
        record = {"epoch": epoch + 1, "loss": epoch_loss, "time_s": time.perf_counter() - fit.t0}
        if val is not None:
            record["val"] = val
        pos["history"].append(record)
        pos.pop("epoch_sums", None)
        self.log({"kind": "epoch", "epoch": epoch + 1, "loss": epoch_loss, "lr": fit.sched.get_last_lr()[0],
                  "epoch_time_s": time.perf_counter() - t_epoch, "time_s": time.perf_counter() - fit.t0})
        if val is not None:  # in the log, and one line on the console: how the run is going
            self.log({"kind": "val", "epoch": epoch + 1, **val, "best": improved})
            if self.is_main:
                say(f"epoch {epoch + 1}/{cfg.epochs}: training loss {epoch_loss:.4f}; held-out " + ", ".join(
                    f"{k} {v:.4g}" for k, v in val.items() if isinstance(v, float)) + (" (best)" if improved else ""))
        if on_epoch_end is not None:  # before the state save: a resumed run never skips it
            on_epoch_end(epoch + 1, epoch_loss)
        stop = pos["bad_epochs"] >= cfg.patience
        if stop or pos["epoch"] >= cfg.epochs or pos["epoch"] % cfg.state_every == 0:
            self._save(fit, pos)
        return stop

    # -- helpers -------------------------------------------------------------------------
    def _check_finite(self, fit: _Fit) -> None:
        """Stop, naming the step, when a weight or buffer (BatchNorm statistics too) is NaN/Inf."""
        bad = first_non_finite(dict(fit.objective.state_dict()))
        if bad:
            raise NonFiniteError(
                f"epoch {fit.pos['epoch'] + 1}, step {fit.pos['global_step']}: training diverged, non-finite values "
                f"in {', '.join(bad)}; nothing was saved from this point. Lower --lr, use --amp bf16 instead of "
                f"fp16, or check the data; --resume restarts from the last good state")

    def _save_best(self, fit: _Fit, epoch: int, value: float) -> None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in fit.objective.state_dict().items()}
        bad = first_non_finite(tensors)
        if bad:
            raise NonFiniteError(f"epoch {epoch}: non-finite values in {', '.join(bad)}; not kept as the best weights")
        atomic_write(self.out / BEST_FILE, lambda tmp: save_file(tensors, tmp, metadata={
            "epoch": str(epoch), "val_loss": repr(float(value))}))

    def best_weights(self) -> Optional[dict[str, torch.Tensor]]:
        """The objective's state dict at the best validation epoch (None when there is none)."""
        path = self.out / BEST_FILE
        if not path.is_file():
            return None
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, RuntimeError) as e:
            raise ResumeError(f"{path}: not a readable weights file ({first_line(e)}); it holds the best validation "
                              f"weights so far: delete it to resume without them, or use a new --out folder") from None

    def _trim_metrics(self, pos: Optional[dict]) -> None:
        """Fresh run: start metrics.jsonl (and the best weights) anew. Resume: drop the records after ``pos``."""
        if pos is None:
            (self.out / BEST_FILE).unlink(missing_ok=True)
        trim_metrics(self.out / METRICS_FILE, pos)

    def _save(self, fit: _Fit, pos: dict) -> None:
        fit.elapsed = time.perf_counter() - fit.t0
        if self.is_main:
            self._check_finite(fit)
            pos = {**pos, "elapsed_s": fit.elapsed}
            save_state(self.out / STATE_FILE, self.cfg.fingerprint(), fit.objective, fit.opt, fit.sched,
                       fit.scaler, pos, self.device)
        fit.saved = {"epoch": pos["epoch"], "step": pos["step"]}

    def autocast(self):
        """The autocast context of this run's AMP mode (also for evaluation outside the loop)."""
        if self.amp == "none":
            return torch.autocast(device_type=self.device.type, enabled=False)
        dtype = torch.float16 if self.amp == "fp16" else torch.bfloat16
        return torch.autocast(device_type=self.device.type, dtype=dtype)
