"""The paired statistics of `s3r-zoo evaluate` and the benchmarks (one implementation), against values
computed by hand."""

import numpy as np
import pytest

from s3r_zoo.evaluate import bootstrap_ci, compare_rows, paired_permutation_test, summarise_correct


def test_paired_permutation_test_by_hand():
    # differences (1, 2, 3): mean 2; of the 8 sign patterns only +++ and --- reach |mean| >= 2
    assert paired_permutation_test([2, 3, 4], [1, 1, 1]) == pytest.approx(2 / 8)
    # differences (1, -1): every pattern has |mean| >= 0 -> p = 1
    assert paired_permutation_test([1, 0], [0, 1]) == 1.0
    # five equal positive differences: only +++++ and ----- are as extreme: 2 / 32
    assert paired_permutation_test([1] * 5, [0] * 5) == pytest.approx(2 / 32)


def test_paired_permutation_test_monte_carlo_agrees_with_its_exact_value():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.3, 1, 30), rng.normal(0, 1, 30)
    p = paired_permutation_test(a, b, n_perm=200_000)
    d = a - b  # a normal approximation of the same sign-flip test, by hand: z = sum(d) / sqrt(sum(d^2))
    from math import erfc, sqrt

    z = abs(d.sum()) / sqrt((d ** 2).sum())
    assert p == pytest.approx(erfc(z / sqrt(2)), abs=0.02)
    with pytest.raises(ValueError, match="equally long"):
        paired_permutation_test([1, 2], [1])


def test_bootstrap_ci_contains_the_mean_and_narrows_with_more_items():
    lo, hi = bootstrap_ci([1.0, 1.0, 1.0])
    assert lo == hi == 1.0
    rng = np.random.default_rng(0)
    small, large = rng.normal(0, 1, 10), rng.normal(0, 1, 1000)
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    # by hand: the standard error of 1000 N(0,1) values is ~0.0316, a 95 % interval ~ +-1.96 of it
    assert hi_l - lo_l == pytest.approx(2 * 1.96 * large.std() / np.sqrt(1000), rel=0.1)
    assert hi_l - lo_l < hi_s - lo_s
    with pytest.raises(ValueError, match="at least 2 values"):
        bootstrap_ci([1.0])


def test_summarise_matches_hand_computed_values():
    # 2 seeds x 4 test cubes: seed accuracies 75 % and 50 %; per cube shares 1, .5, .5, 0
    s = summarise_correct([[1, 1, 0, 1], [1, 0, 1, 0]])
    assert s["runs"] == [75.0, 50.0] and s["mean"] == 62.5
    assert s["std"] == pytest.approx(np.std([75, 50], ddof=1))
    assert s["per_cube"] == [1.0, 0.5, 0.5, 0.5]
    lo, hi = s["ci95"]
    assert 25 <= lo <= 62.5 <= hi <= 100


def test_compare_rows_tests_each_row_against_reference_and_best_other():
    a = summarise_correct([[1] * 10 + [0] * 10] * 2)      # 50 %
    b = summarise_correct([[1] * 20] * 2)                 # 100 %: better on 10 cubes
    rows = {"random": a, "s3r_cr": b}
    compare_rows(rows, "random")
    assert rows["s3r_cr"]["p_vs_random"] == pytest.approx(2 / 2 ** 10)  # exact sign flips: 10 non-zero pairs
    assert rows["s3r_cr"]["best_other"] == "random" and rows["random"]["best_other"] == "s3r_cr"
    assert "p_vs_random" not in rows["random"]
