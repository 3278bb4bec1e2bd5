"""PNG plots people would rather look at than read (written atomically, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .files import atomic_write

__all__ = ["pyplot", "save_figure", "loss_curve", "validation_curves", "beta_profiles", "confusion_matrix",
           "accuracy_vs_labels"]


def pyplot():
    """matplotlib's pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Union[str, Path], dpi: Union[int, str] = 110) -> Path:
    """Write ``fig`` as a PNG atomically (temporary file, then rename) and close it (``dpi="figure"``: the
    figure's own)."""
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    pyplot().close(fig)
    return out


def loss_curve(history: Sequence[dict], path: Union[str, Path], title: str = "training loss") -> Path:
    """Loss per epoch against epochs and wall-clock time."""
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    loss = [h["loss"] for h in history]
    times = [h["time_s"] for h in history]
    val = [(h["epoch"], h["time_s"], h["val"]["loss"]) for h in history if isinstance(h.get("val"), dict)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].plot(epochs, loss, marker="o", ms=3, label="training")
    axes[0].set_xlabel("epoch")
    axes[1].plot(times, loss, marker="o", ms=3, label="training")
    axes[1].set_xlabel("wall-clock (s)")
    if val:
        best = min(range(len(val)), key=lambda i: val[i][2])
        for ax, col in ((axes[0], 0), (axes[1], 1)):
            ax.plot([v[col] for v in val], [v[2] for v in val], marker="s", ms=3, label="held-out validation")
            ax.axvline(val[best][col], color="grey", ls=":", lw=1)
        axes[0].legend(fontsize=8)
    for ax in axes:
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def validation_curves(history: Sequence[dict], path: Union[str, Path], title: str = "held-out validation") -> Path:
    """S3R's held-out metrics per epoch next to their baselines: CR L1 (zeros, per-band mean), locality
    (closed form) and BR unexplained variance (least-squares floor, per-band mean; log scale)."""
    plt = pyplot()
    val = [(h["epoch"], h["val"]) for h in history if isinstance(h.get("val"), dict) and "cr_l1" in h["val"]]
    if not val:
        raise ValueError("validation curves: the history holds no held-out S3R metrics")
    ep = [e for e, _ in val]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = [("CR L1(beta^, beta~)", "cr_l1", [("cr_l1_zeros", "predicting zeros"),
                                                 ("cr_l1_band_mean", "per-band mean beta~")], False),
              ("locality: share of |beta^| within +-2 bands", "locality", [("locality_closed_form", "beta~")], False),
              ("BR: unexplained variance of band b (median)", "br_error",
               [("br_error_closed_form", "least-squares floor"), ("br_error_band_mean", "per-band mean beta~")], True)]
    for ax, (name, key, refs, log) in zip(axes, panels):
        ax.plot(ep, [v[key] for _, v in val], marker="o", ms=3, label="this run")
        for ref, label in refs:
            if ref in val[-1][1]:
                ax.axhline(val[-1][1][ref], ls="--", lw=1, color="grey" if "zeros" in ref or "floor" in ref else "k",
                           label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def beta_profiles(bands: Sequence[int], beta_hat: Union[np.ndarray, dict], path: Union[str, Path],
                  beta_true: Optional[np.ndarray] = None, wavelengths: Optional[Sequence[float]] = None,
                  title: str = "coefficients") -> Path:
    """beta^_b against band index for a few target bands b (the paper's Fig. 3).

    Args:
        bands: Target band of each row.
        beta_hat: ``(len(bands), B)`` predicted coefficients (mean over samples), or a dict
            ``{label: array}`` to draw several models side by side (CR vs BR).
        beta_true: Same shape, the closed-form beta~, drawn dashed.
        wavelengths: x-axis in nm instead of band index.
    """
    plt = pyplot()
    series = beta_hat if isinstance(beta_hat, dict) else {"predicted": beta_hat}
    x = np.asarray(wavelengths) if wavelengths is not None else np.arange(next(iter(series.values())).shape[1])
    fig, axes = plt.subplots(1, len(bands), figsize=(3.2 * len(bands), 3.0), squeeze=False, sharey=False)
    for ax, b, row in zip(axes[0], bands, range(len(bands))):
        for label, values in series.items():
            ax.plot(x, values[row], marker=".", label=label)
        if beta_true is not None:
            ax.plot(x, beta_true[row], ls="--", color="k", alpha=0.6, label="closed form")
        ax.axvline(x[b], color="r", alpha=0.4)
        ax.set_title(f"target band {b}" + (f" ({x[b]:.0f} nm)" if wavelengths is not None else ""), fontsize=9)
        ax.set_xlabel("wavelength (nm)" if wavelengths is not None else "band index")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("coefficient")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def confusion_matrix(cm: Sequence[Sequence[int]], classes: Sequence[str], path: Union[str, Path],
                     title: str = "confusion matrix (test)") -> Path:
    """Counts with row-normalised colour (recall per true class)."""
    plt = pyplot()
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2.5, 1.0 * len(classes) + 2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def accuracy_vs_labels(panels: dict, labels: dict, path: Union[str, Path], title: str = "label efficiency",
                       dashed: Sequence[str] = (), chance: Optional[float] = None) -> Path:
    """Test accuracy against the fraction of training labels (log axis), one line per method with its
    95 % bootstrap band, one panel per non-empty entry of ``panels`` ({panel title: {fraction: {method:
    {"mean", "ci95"}}}}, as ``s3r-zoo evaluate`` and the label benchmarks write them). ``dashed``: reference rows
    (spectral baselines, random init, scratch); rows pre-trained on the unlabelled pool are dotted;
    ``chance``: a grey line at that accuracy (%)."""
    plt = pyplot()
    panels = {k: v for k, v in panels.items() if v}
    methods = list(dict.fromkeys(m for rows in panels.values() for f in rows for m in rows[f]))
    colours = {m: plt.get_cmap("tab20")(i % 20) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)) + 3, 5.5), sharey=True,
                             squeeze=False)
    for ax, (panel, rows) in zip(axes[0], panels.items()):
        fracs = sorted(rows, key=float)
        for m in methods:
            fs = [f for f in fracs if m in rows[f]]
            if not fs:
                continue
            xs = [float(f) * 100 for f in fs]
            style = "--" if m in dashed else (":" if m.endswith("@pool") else "-")
            ax.plot(xs, [rows[f][m]["mean"] for f in fs], style, marker="o", ms=3, color=colours[m], lw=1.4)
            ax.fill_between(xs, [rows[f][m]["ci95"][0] for f in fs], [rows[f][m]["ci95"][1] for f in fs],
                            color=colours[m], alpha=0.07)
        if chance is not None:
            ax.axhline(chance, color="0.5", lw=1, label="_chance")
            ax.annotate("chance", (xs[0] if fracs else 1, chance), fontsize=7, color="0.4", va="bottom")
        ax.set_xscale("log")
        ax.set_xticks([float(f) * 100 for f in fracs], [f"{float(f) * 100:g}" for f in fracs])
        ax.minorticks_off()
        ax.set_xlabel("training labels used (%)")
        ax.set_title(panel, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%), 95 % bootstrap band over test cubes")
    handles = [plt.Line2D([], [], color=colours[m], marker="o", ms=3,
                          ls="--" if m in dashed else (":" if m.endswith("@pool") else "-"),
                          label=labels.get(m.split("@")[0], m.split("@")[0]) + (" (pool)" if m.endswith("@pool")
                                                                               else "")) for m in methods]
    fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 2.6 / fig.get_figwidth(), 1))
    return save_figure(fig, path)
