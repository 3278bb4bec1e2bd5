"""Does pre-training help on your data? The label-efficiency protocol, one implementation.

* :mod:`.spec`: :class:`EvaluateSpec`, every option of ``s3r-zoo evaluate``;
* :mod:`.labelled`: the split, the training statistics, pooled features and mean spectra;
* :mod:`.probe`: the linear probe (deterministic multinomial logistic regression);
* :mod:`.stats`: bootstrap CIs, paired sign-flip tests, per-row summaries;
* :mod:`.run`: :func:`run_evaluate` (probes + fine-tuning with a step floor, cached and resumable).

The benchmarks under ``benchmarks/`` use the same probe and statistics.
"""

from .probe import L2_GRID, LogisticProbe, fit_probe
from .run import cached_finetune, finetune_correct, format_table, probe_runs, run_evaluate
from .spec import BASELINES, EvaluateSpec
from .stats import bootstrap_ci, compare_rows, paired_permutation_test, summarise_correct

__all__ = ["EvaluateSpec", "BASELINES", "run_evaluate", "cached_finetune", "finetune_correct", "probe_runs",
           "format_table", "fit_probe", "LogisticProbe", "L2_GRID", "bootstrap_ci", "paired_permutation_test",
           "summarise_correct", "compare_rows"]
