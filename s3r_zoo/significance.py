"""Statistics that say whether one method beats another (NumPy only).

Benchmarks compare methods on the SAME test cubes with the SAME seeds, so the tests here
are paired: each compares per-item differences, not two independent means.

* :func:`bootstrap_ci`: percentile bootstrap confidence interval of a mean (resampling the
  items, e.g. test cubes or seeds).
* :func:`paired_permutation_test`: two-sided p-value of "the mean paired difference is 0"
  by flipping the sign of each difference (exact enumeration up to 20 pairs, Monte Carlo
  above); for per-cube accuracies averaged over seeds, or per-seed accuracies.
* :func:`mcnemar_exact`: two-sided exact McNemar test on the discordant items of two
  classifiers' correct/incorrect answers on the same cubes.
"""

from __future__ import annotations

from itertools import product
from math import comb
from typing import Sequence

import numpy as np

__all__ = ["bootstrap_ci", "paired_permutation_test", "mcnemar_exact"]

EXACT_MAX = 20  # pairs up to which every sign pattern is enumerated (2**20 patterns)


def bootstrap_ci(values: Sequence[float], level: float = 0.95, n_boot: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """``(low, high)`` percentile-bootstrap interval of the mean of ``values`` (at least 2)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2 or not 0 < level < 1:
        raise ValueError(f"bootstrap: expected at least 2 values and 0 < level < 1, found {x.size} and {level}")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired_permutation_test(a: Sequence[float], b: Sequence[float], n_perm: int = 100_000, seed: int = 0) -> float:
    """Two-sided p-value for mean(a - b) = 0 under random sign flips of the paired differences."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or d.size == 0 or len(a) != len(b):
        raise ValueError(f"paired test: expected two equally long, non-empty sequences, found {len(a)} and {len(b)}")
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, observed)
    if d.size <= EXACT_MAX:
        signs = np.array(list(product((1.0, -1.0), repeat=d.size)))
        return float((np.abs(signs @ d / d.size) >= observed - tol).mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(n_perm, d.size))
    hits = (np.abs(signs @ d / d.size) >= observed - tol).sum()
    return float((hits + 1) / (n_perm + 1))  # the observed pattern counts once: never p = 0


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value: among the items exactly one classifier gets right, is the split
    binomial(n, 1/2)? 1.0 when no item is discordant."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"McNemar: expected answers on the same items, found {a.shape} and {b.shape}")
    n01, n10 = int((a & ~b).sum()), int((~a & b).sum())
    n = n01 + n10
    if n == 0:
        return 1.0
    k = min(n01, n10)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2 ** n
    return float(min(1.0, 2 * tail))
