"""The benchmarks' own plots (the package's plots are in :mod:`s3r_zoo.plots`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np

from s3r_zoo.plots import pyplot, save_figure


def loss_curves(histories: dict, path: Union[str, Path], title: str = "training loss") -> Path:
    """Several runs' loss, each divided by its first epoch (objectives differ in units),
    against wall-clock time and epochs. ``histories``: {label: trainer history}."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, history in histories.items():
        loss = np.array([h["loss"] for h in history])
        norm = loss / loss[0] if loss[0] else loss
        axes[0].plot([h["time_s"] for h in history], norm, marker="o", ms=3, label=label)
        axes[1].plot([h["epoch"] for h in history], norm, marker="o", ms=3, label=label)
    axes[0].set_xlabel("wall-clock (s)")
    axes[1].set_xlabel("epoch")
    for ax in axes:
        ax.set_ylabel("loss / first-epoch loss")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def probe_convergence(curves: dict, labels: dict, path: Union[str, Path], title: str = "convergence",
                      chance: Optional[float] = None) -> Path:
    """Linear-probe accuracy of each method's encoder after every pre-training epoch, against the
    cumulative pre-training wall time (left) and the epoch (right); ``curves``: {method: {"points": [...]}}."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for i, (m, c) in enumerate(curves.items()):
        pts = c["points"]
        for ax, key in zip(axes, ("time_s", "epoch")):
            ax.plot([p[key] for p in pts], [p["accuracy"] for p in pts], marker="o", ms=3, color=f"C{i % 10}",
                    label=labels.get(m, m))
    if chance is not None:
        for ax in axes:
            ax.axhline(chance, color="0.5", lw=1)
            ax.annotate("chance", (0, chance), fontsize=7, color="0.4", va="bottom")
    axes[0].set_xlabel("pre-training wall time (s)")
    axes[1].set_xlabel("pre-training epoch (0 = random init)")
    axes[0].set_ylabel("linear-probe test accuracy (%), all labels")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
