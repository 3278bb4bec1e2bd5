"""Hyperspectral data: readers, datasets, band statistics, augmentations, simulator."""

from .datasets import CubeDataset, HSIFolder, SplitFileDataset, UnlabelledCubes, find_cubes, read_split_file
from .io import Cube, CubeReadError, detect_format, read_cube
from .stats import BandStats, RunningBandStats, compute_band_stats
from .transforms import HSIAugment

__all__ = ["Cube", "CubeReadError", "detect_format", "read_cube", "CubeDataset", "HSIFolder", "SplitFileDataset",
           "UnlabelledCubes", "find_cubes", "read_split_file", "BandStats", "RunningBandStats",
           "compute_band_stats", "HSIAugment"]
