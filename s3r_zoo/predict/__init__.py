"""``s3r-zoo predict``: apply a fine-tuned checkpoint to new cubes -> class probabilities per cube.

The checkpoint is what ``s3r-zoo finetune`` saves (``best.safetensors``): the weights with
their classifier, the class names, the training crop, the bands' wavelengths and the
per-band mean/std the model was trained with (all in its metadata). The cubes must have the
same bands (count, and wavelengths where both sides know them).

Windows (``tile``): by default (None) a cube that fits in the training crop is classified
whole, and a larger scene is cut into windows of the training crop every ``stride`` pixels
(default: half a window) whose class probabilities are averaged; a heatmap PNG per tiled
cube shows each window's probability of the predicted class over the false-colour image.
``tile=0`` classifies every cube whole, which is what ``finetune``'s test evaluation does
(so it reproduces its accuracy for any cube size); ``tile=N`` forces N-px windows.
Inference runs in fp32 by default (``amp``), as ``finetune`` evaluates.

Outputs in ``out``: ``predictions.csv`` (path, [label,] predicted, one probability column per
class, windows), ``predict.json`` (settings, counts, and the accuracy when the source is a
split file with labels), ``heatmaps/<name>.png``.
"""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".spec": ("PredictSpec",),
    ".run": ("run_predict", "load_classifier"),
})
