"""Statistics that say whether one method beats another (NumPy only).

Evaluations compare methods on the SAME test cubes with the SAME seeds, so the tests here
are paired: each compares per-item differences, not two independent means.

* :func:`bootstrap_ci`: percentile bootstrap confidence interval of a mean (resampling the
  items, e.g. test cubes or seeds).
* :func:`paired_permutation_test`: two-sided p-value of "the mean paired difference is 0"
  by flipping the sign of each difference (exact enumeration up to 20 pairs, Monte Carlo
  above); for per-cube accuracies averaged over seeds, or per-seed accuracies.
* :func:`summarise_correct`: a method's per-seed accuracies, mean +- std and bootstrap CI from
  its per-seed, per-test-cube correctness;
* :func:`compare_rows`: per row of a table, the paired test against a reference row and
  against the best other row.

``s3r-zoo evaluate`` and the benchmarks both use these: one implementation of the numbers.
"""

from __future__ import annotations

from itertools import product
from typing import Sequence

import numpy as np

__all__ = ["bootstrap_ci", "paired_permutation_test", "summarise_correct", "compare_rows"]

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


def summarise_correct(correct: Sequence[Sequence[bool]]) -> dict:
    """One method's numbers from its ``(seeds, test cubes)`` correctness: per-seed accuracies (%), their
    mean +- std, the 95 % bootstrap CI over test cubes (each cube scored by its share of correct seeds) and
    ``per_cube`` (those shares, for the paired tests)."""
    c = np.asarray(correct, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 2:
        raise ValueError(f"correctness: expected (seeds, cubes) with at least 2 test cubes, found shape {c.shape}")
    acc = 100 * c.mean(1)
    per_cube = c.mean(0)
    lo, hi = bootstrap_ci(per_cube)
    return {"runs": acc.round(2).tolist(), "mean": float(acc.mean()),
            "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, "ci95": [100 * lo, 100 * hi],
            "per_cube": per_cube.round(4).tolist()}


def compare_rows(rows: dict, reference: str) -> None:
    """Add to each row of ``rows`` ({name: :func:`summarise_correct` output}) its paired test against
    ``reference`` (``p_vs_<reference>``) and against the best other row by mean (``best_other``,
    ``p_vs_best_other``), over the same test cubes."""
    for m, r in rows.items():
        if m != reference and reference in rows:
            r["p_vs_" + reference] = paired_permutation_test(r["per_cube"], rows[reference]["per_cube"])
        others = {o: v for o, v in rows.items() if o != m}
        if others:
            best = max(others, key=lambda o: others[o]["mean"])
            r["best_other"] = best
            r["p_vs_best_other"] = paired_permutation_test(r["per_cube"], others[best]["per_cube"])
