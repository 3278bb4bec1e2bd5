"""``s3r-zoo finetune``: turn a checkpoint into test numbers with the published protocol.

docs/method.md: first conv adapted to the data's bands (by wavelength when both sides know
them), augmentation (scale, rotation, Gaussian noise), AdamW lr 1e-4 with linear decay,
at most 70 epochs (``min_steps``: a floor on optimiser steps for small label subsets), validation
every epoch (about ``epochs`` times in all under the floor), keep the weights of the lowest validation
loss (the trainer's best-weights mechanism; ties keep the earlier epoch), test once at the end; mean
and standard deviation over seeds. Each seed is one :class:`FinetuneRun` of the run template. ``linear_probe`` freezes the encoder
(BatchNorm statistics included); ``label_fraction`` keeps a stratified fraction of the
training labels. Training runs through the same :class:`~s3r_zoo.train.Trainer` as
pre-training (AMP, torchrun, atomic resumable state, progress, JSONL), with the classifier
as its :class:`~s3r_zoo.train.Objective`.

Per seed, ``out/seed_<k>/`` holds ``best.safetensors`` (zoo format), ``best.json``,
``metrics.json`` (test), ``confusion_matrix.png``, ``training_curve.png`` (training and
validation loss, the kept epoch marked) and the trainer's files; ``out/``
holds ``aggregate.json``.
"""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".spec": ("FinetuneSpec", "MAX_DEFAULT_CROP"),
    ".run": ("ClassifierObjective", "FinetuneRun", "stratified_fraction", "run_finetune", "evaluate", "default_crop",
             "format_aggregate"),
})
