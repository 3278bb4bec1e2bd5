"""Does pre-training help on your data? The label-efficiency protocol, one implementation.

* :mod:`.spec`: :class:`EvaluateSpec`, every option of ``s3r-zoo evaluate``;
* :mod:`.labelled`: the split, the training statistics, pooled features and mean spectra;
* :mod:`.probe`: the linear probe (deterministic multinomial logistic regression);
* :mod:`.stats`: bootstrap CIs, paired sign-flip tests, per-row summaries;
* :mod:`.run`: :func:`run_evaluate` (probes + fine-tuning with a step floor, cached and resumable).

The benchmarks under ``benchmarks/`` use the same probe and statistics.
"""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".spec": ("EvaluateSpec", "BASELINES"),
    ".run": ("run_evaluate", "cached_finetune", "finetune_correct", "probe_runs", "format_table"),
    ".probe": ("fit_probe", "LogisticProbe", "L2_GRID"),
    ".stats": ("bootstrap_ci", "paired_permutation_test", "summarise_correct", "compare_rows"),
})
