"""Per-band mean/std in one streaming pass, saved as JSON.

Uses Chan et al.'s pairwise merge of (count, mean, M2) in float64, so millions of
pixels per band accumulate without the cancellation of a naive sum of squares.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch

from ..bands import BandInfo
from ..files import write_json
from ..progress import progress

__all__ = ["BandStats", "RunningBandStats", "compute_band_stats"]


@dataclass(frozen=True)
class BandStats:
    """Per-band normalisation statistics (what goes into checkpoint metadata)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    count: int
    wavelengths_nm: Optional[tuple[float, ...]] = None

    @property
    def band_info(self) -> BandInfo:
        """These statistics as the zoo's one band-metadata type."""
        return BandInfo(self.wavelengths_nm, tuple(self.mean), tuple(self.std), source=f"band stats of {self.count} values")

    def save(self, path: Union[str, Path]) -> Path:
        return write_json(path, asdict(self))

    @classmethod
    def load(cls, path: Union[str, Path]) -> "BandStats":
        try:
            raw = json.loads(Path(path).read_text())
            stats = cls(mean=tuple(raw["mean"]), std=tuple(raw["std"]), count=int(raw["count"]),
                        wavelengths_nm=tuple(raw["wavelengths_nm"]) if raw.get("wavelengths_nm") else None)
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a band-stats JSON with mean/std/count ({type(e).__name__}: {e})") from None
        if len(stats.mean) != len(stats.std):
            raise ValueError(f"{path}: mean has {len(stats.mean)} bands but std has {len(stats.std)}")
        bad = [i for i, (m, s) in enumerate(zip(stats.mean, stats.std)) if not (math.isfinite(m) and math.isfinite(s)
                                                                                   and s > 0)]
        if bad:
            raise ValueError(f"{path}: expected finite per-band mean and std > 0, found mean {stats.mean[bad[0]]}, "
                             f"std {stats.std[bad[0]]} at band {bad[0]}" + (f" (and {len(bad) - 1} more)"
                                                                             if len(bad) > 1 else ""))
        return stats


class RunningBandStats:
    """Accumulate per-band statistics from batches of pixels."""

    def __init__(self, num_bands: int):
        self.n = 0
        self.mean = np.zeros(num_bands, dtype=np.float64)
        self.m2 = np.zeros(num_bands, dtype=np.float64)

    def update(self, x: Union[np.ndarray, torch.Tensor], band_axis: int) -> None:
        """Add all values of ``x``; ``band_axis`` says where the bands are."""
        a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        a = np.moveaxis(a, band_axis, -1).reshape(-1, self.mean.size).astype(np.float64)
        if a.shape[0] == 0:
            return
        if not np.isfinite(a).all():
            raise ValueError("band stats: non-finite values in the data; read cubes with a nan= policy first")
        n_b = a.shape[0]
        mean_b = a.mean(axis=0)
        m2_b = ((a - mean_b) ** 2).sum(axis=0)
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * n_b / n
        self.m2 = self.m2 + m2_b + delta ** 2 * self.n * n_b / n
        self.n = n

    def result(self, wavelengths: Optional[Sequence[float]] = None) -> BandStats:
        if self.n < 2:
            raise ValueError(f"band stats: need at least 2 values per band, have {self.n}")
        std = np.sqrt(self.m2 / (self.n - 1))
        std = np.where(std > 0, std, 1.0)  # a constant band must not divide by zero later
        return BandStats(mean=tuple(map(float, self.mean)), std=tuple(map(float, std)), count=int(self.n),
                         wavelengths_nm=tuple(map(float, wavelengths)) if wavelengths is not None else None)


def compute_band_stats(samples: Iterable, num_bands: int, wavelengths: Optional[Sequence[float]] = None,
                       total: Optional[int] = None, desc: str = "band stats") -> BandStats:
    """One pass over ``samples``: each a ``(B, H, W)`` tensor/array or an ``(x, label)`` pair."""
    acc = RunningBandStats(num_bands)
    for item in progress(samples, total=total, desc=desc, unit="cube"):
        x = item[0] if isinstance(item, (tuple, list)) else item
        acc.update(x, band_axis=-3 if np.ndim(x) >= 3 else 0)
    return acc.result(wavelengths)
