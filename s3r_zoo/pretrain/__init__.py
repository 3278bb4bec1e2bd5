"""S3R pre-training: closed-form targets, the S3R objectives, the objective table, the runner.

* :mod:`.targets`: the closed-form coefficients beta~ (docs/method.md, Eq. 1-3);
* :mod:`.objectives`: S3R-CR, S3R-BR and the Table 1 ablation, as :class:`s3r_zoo.train.Objective`;
* :mod:`.registry`: every ``--objective`` (S3R, ablation, :mod:`s3r_zoo.baselines`);
* :mod:`.spec` / :mod:`.run`: ``s3r-zoo pretrain``: data -> band stats -> objective -> trainer -> export.
"""

from .objectives import RegressObjective, S3RObjective
from .registry import OBJECTIVE_NAMES, make_objective
from .run import build_dataset, run_pretrain
from .spec import PretrainSpec
from .targets import coefficient_targets

__all__ = ["S3RObjective", "RegressObjective", "OBJECTIVE_NAMES", "make_objective", "PretrainSpec", "run_pretrain",
           "build_dataset", "coefficient_targets"]
