"""Hyperspectral data: readers, datasets, band statistics, augmentations, simulator."""

from ..lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".io": ("Cube", "CubeReadError", "detect_format", "read_cube"),
    ".datasets": ("CubeDataset", "HSIFolder", "SplitFileDataset", "UnlabelledCubes", "find_cubes", "read_split_file"),
    ".stats": ("BandStats", "RunningBandStats", "compute_band_stats"),
    ".transforms": ("HSIAugment",),
})
