"""S3R pre-training: closed-form targets, the S3R objectives, the objective table, the runner.

* :mod:`.targets`: the closed-form coefficients beta~ (docs/method.md, Eq. 1-3);
* :mod:`.objectives`: S3R-CR, S3R-BR and the Table 1 ablation, as :class:`s3r_zoo.train.Objective`;
* :mod:`.registry`: every ``--objective`` (S3R, ablation, :mod:`s3r_zoo.baselines`);
* :mod:`.spec` / :mod:`.run`: ``s3r-zoo pretrain``: data -> band stats -> objective -> trainer -> export.
"""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".objectives": ("S3RObjective", "RegressObjective"),
    ".names": ("OBJECTIVE_NAMES",),
    ".registry": ("make_objective",),
    ".spec": ("PretrainSpec",),
    ".run": ("run_pretrain", "build_dataset"),
    ".targets": ("coefficient_targets",),
})
