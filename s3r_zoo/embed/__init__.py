"""``s3r-zoo embed``: encoder features of your cubes, for your own downstream models.

Input: a folder of cubes, a split file (``<path> <label>`` lines) or one cube, in any format
the readers know. Each cube gives one feature vector (whole cube, global average pool) or,
with ``tile``, one per window of ``tile x tile`` pixels every ``stride`` pixels (the last
row and column of windows end at the border, so every pixel is covered; a cube smaller than
a tile is one window). Bands are adapted by wavelength exactly as ``timm.create_model`` does
(:func:`~s3r_zoo.models.build_encoder`).

Normalisation: the checkpoint's per-band mean/std when it records them for the same bands
(a fine-tuned checkpoint, or a pre-trained one on the same band set); otherwise the data's
own, measured on the cubes being embedded (at most ``STATS_CUBES`` of them). The summary says
which.

Outputs in ``out``: ``features.npy`` (``(N, D)`` float32), ``index.csv`` (row, path, top,
left, height, width; paths relative to the source folder or split file), ``embed.json`` (the
settings, model, normalisation, counts). Resumable: each finished cube is saved under
``.embed_parts/`` at once, and running the same command again skips them; a run with other
settings (``--nan zero`` after a NaN refusal, say) discards those parts and starts over. Only
files embed wrote there are ever removed: a folder holding anything else is refused.
"""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".spec": ("EmbedSpec", "STATS_CUBES"),
    ".run": ("run_embed", "windows", "relative_name", "same_bands", "load_model", "embed_cube", "checkpoint_stats"),
})
