"""torch Datasets over hyperspectral cubes, and a DataLoader that keeps a GPU fed.

All datasets share :class:`CubeDataset`: a list of ``(path, label)`` items (label -1
when unlabelled) read with :func:`~s3r_zoo.data.cache.open_cube` (formats that are not
memory-mapped are decoded once into a cache), cut into crops (random, centre, or a regular
grid of tiles), optionally reduced to selected bands or resampled to target wavelengths,
normalised, and augmented. Items are ``(x, label)`` with ``x`` a
float32 ``(B, h, w)`` tensor.

Randomness (crop positions, augmentation) comes from a generator seeded by
``(seed, epoch, index)``: the same item in the same epoch is the same tensor whatever
the number of workers. Call :meth:`CubeDataset.set_epoch` each epoch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..bands import normalize
from ..progress import progress
from ..spectral import interpolation_matrix, validate_wavelengths
from .io import (HIMS_PATTERN, Cube, CubeReadError, apply_nan_policy, band_name, detect_format,
                 nonfinite_scan, nonfinite_summary)
from .cache import open_cube
from .sources import _is_split_file, cube_sources, find_cubes, read_split_file, source_files  # noqa: F401
from .stats import BandStats

__all__ = ["CubeDataset", "HSIFolder", "SplitFileDataset", "UnlabelledCubes", "find_cubes", "CACHE_BYTES",
           "cube_sources", "read_split_file", "open_source", "source_files", "check_same_bands"]

PathLike = Union[str, Path]
CROP_MODES = ("random", "center", "grid", "none")
CACHE_BYTES = 512 * 2**20  # per dataset: the cubes kept in memory after their first read


_SCANS: dict[tuple, tuple[dict[int, int], np.ndarray]] = {}


def _scan(cube) -> tuple[dict[int, int], np.ndarray]:
    """:func:`~s3r_zoo.data.io.nonfinite_scan` of a cube, cached by file, size and modification time."""
    p = Path(cube.path)
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns, cube.shape)
    except OSError:
        key = None
    if key is None or key not in _SCANS:
        result = nonfinite_scan(cube.data)
        if key is None:
            return result
        _SCANS[key] = result
    return _SCANS[key]


class CubeDataset(Dataset):
    """Crops of hyperspectral cubes with labels.

    Args:
        items: ``(path, label)`` pairs; label -1 for unlabelled.
        classes: Class names (index = label).
        crop: Crop size (int or (h, w)); None = whole cube.
        crop_mode: ``'random'``, ``'center'``, ``'grid'`` (every non-overlapping tile) or
            ``'none'``.
        crops_per_cube: Random crops per cube per epoch (``'random'`` mode).
        bands: Indices of the bands to keep (after reading).
        wavelengths: Target band centres (nm): linear resampling from each cube's own
            wavelengths (cubes must know theirs).
        stats: Per-band mean/std applied after band selection (lengths must match).
        nan: NaN/Inf policy (:func:`~s3r_zoo.data.io.apply_nan_policy`), applied to each crop after
            reading, so a large memory-mapped cube is never repaired as a whole; ``band_mean``
            then uses the crop's band mean. No NaN/Inf ever leaves the dataset unless ``'keep'``.
        transform: ``f(x, generator) -> x`` applied last (e.g. :class:`HSIAugment`).
        seed: Base seed of crop positions and augmentation.
        read_options: Extra :func:`read_cube` options (``key``, ``band_axis``, ``wavelengths``).
        cache_bytes: Keep cubes in memory (as arrays, in the file's dtype) after their first read until
            they fill this many bytes; later cubes are read from their files each time. A set of a few
            hundred small cubes then never re-opens a file (each re-open costs ~0.5 ms: a 200-cube epoch
            spent ~15 % of a small fine-tuning run on it); scenes of 512 x 612 x 40 fill the default after
            ~10 cubes and stay memory-mapped. 0 turns it off. Each DataLoader worker keeps its own.
        rows: ``(start, stop)``: crops come only from these rows of every cube (Python slice
            semantics, negative values count from the bottom): a spatially held-out region.
    """

    def __init__(self, items: Sequence[tuple[PathLike, int]], classes: Optional[Sequence[str]] = None,
                 crop: Optional[Union[int, tuple[int, int]]] = None, crop_mode: str = "random",
                 crops_per_cube: int = 1, bands: Optional[Sequence[int]] = None,
                 wavelengths: Optional[Sequence[float]] = None, stats: Optional[BandStats] = None,
                 nan: str = "error", transform: Optional[Callable] = None, seed: int = 0,
                 read_options: Optional[dict] = None, cache_bytes: int = CACHE_BYTES,
                 rows: Optional[tuple[Optional[int], Optional[int]]] = None):
        if not items:
            raise ValueError("dataset: no cubes (empty item list)")
        if crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode: expected one of {CROP_MODES}, found {crop_mode!r}")
        if bands is not None and wavelengths is not None:
            raise ValueError("pass either bands= (indices) or wavelengths= (resampling), not both")
        self.items = [(Path(p), int(lbl)) for p, lbl in items]
        self.classes = list(classes) if classes is not None else []
        self.crop = (crop, crop) if isinstance(crop, int) else (tuple(crop) if crop is not None else None)
        if self.crop is not None and min(self.crop) < 1:
            raise ValueError(f"crop: expected a positive size, found {crop}")
        self.crop_mode = crop_mode if self.crop is not None else "none"
        self.crops_per_cube = int(crops_per_cube)
        self.bands = list(bands) if bands is not None else None
        self.target_wavelengths = (validate_wavelengths(wavelengths, "wavelengths")
                                   if wavelengths is not None else None)
        self.stats = stats
        self.nan = nan
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.read_options = dict(read_options or {})
        self.cache_bytes = int(cache_bytes)
        self._cache: dict[int, Cube] = {}
        self._cached_bytes = 0
        self.rows = rows
        self._fill: dict[int, np.ndarray] = {}  # per-file band means, for crops wholly inside a NaN region
        self._index = self._build_index()

    # -- indexing -----------------------------------------------------------------------------
    def _build_index(self) -> list[tuple[int, Optional[tuple[int, int]]]]:
        if self.crop_mode != "grid":
            n = self.crops_per_cube if self.crop_mode == "random" else 1
            return [(i, None) for i in range(len(self.items)) for _ in range(n)]
        index = []
        ch, cw = self.crop
        for i in range(len(self.items)):
            r0, r1 = self._row_range(i)
            w = self.cube(i).shape[1]
            self._check_crop(i, r1 - r0, w)
            index += [(i, (t, l)) for t in range(r0, r1 - ch + 1, ch) for l in range(0, w - cw + 1, cw)]
        return index

    def _row_range(self, i: int) -> tuple[int, int]:
        """The rows of cube ``i`` that crops may come from."""
        h = self.cube(i).shape[0]
        if self.rows is None:
            return 0, h
        r0, r1, _ = slice(*self.rows).indices(h)
        if r1 <= r0:
            raise ValueError(f"{self.items[i][0]}: rows {self.rows} select no row of a cube of {h} rows")
        return r0, r1

    def set_epoch(self, epoch: int) -> None:
        """New random crops / augmentations for a new epoch (deterministic per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def labels(self) -> list[int]:
        return [self.items[i][1] for i, _ in self._index]

    # -- reading ------------------------------------------------------------------------------
    def cube(self, i: int):
        """The ``i``-th cube of ``items`` (a :class:`~s3r_zoo.data.io.Cube`), from memory once read while the
        cached cubes stay within ``cache_bytes``."""
        if i in self._cache:
            return self._cache[i]
        # NaN/Inf are handled per crop in __getitem__: repairing a whole memory-mapped cube on every
        # item read would cost a full read of the file per crop
        cube = open_cube(self.items[i][0], **self.read_options)  # formats decoded whole: once, then mapped
        if self._cached_bytes + cube.data.nbytes <= self.cache_bytes:
            data = np.array(cube.data)  # an in-memory copy: no file handle kept open
            data.setflags(write=False)  # read-only, as the memory map is: no crop can alter the cached cube
            cube = replace(cube, data=data)
            self._cache[i] = cube
            self._cached_bytes += cube.data.nbytes
        return cube

    def check_files(self, show_progress: bool = True) -> None:
        """Hold every file to the NaN/Inf policy and to one band set, once, before training (scans are cached).

        ``nan='error'`` refuses files with any NaN/Inf, naming each, its bands and counts, and the
        repairs ``--nan`` offers; ``band_mean`` / ``inpaint`` refuse a band that has no finite value
        at all. Files must share one band set (count and wavelengths, or all without wavelengths),
        unless the dataset resamples them to target wavelengths (then each must know its own): a
        file without wavelengths among files with them is refused, never silently assumed equal.
        Without this, a random crop would meet the problem mid-epoch, or a band would be lost.
        """
        bad_files, band_sets = [], {}
        for i in progress(range(len(self.items)), desc="checking files", unit="cube",
                          disable=not show_progress or len(self.items) < 20):
            cube = self.cube(i)
            wl = None if cube.wavelengths is None else tuple(round(float(v), 1) for v in cube.wavelengths)
            band_sets.setdefault((cube.num_bands, wl), []).append(str(cube.path))
            if self.nan == "keep":
                continue
            bad, means = _scan(cube)
            self._fill[i] = means
            if not bad:
                continue
            if self.nan == "error":
                bad_files.append(f"{cube.path}: {nonfinite_summary(bad, cube.wavelengths)}")
                continue
            empty = [b for b in bad if not np.isfinite(means[b])]
            if empty and self.nan != "zero":
                raise CubeReadError(f"{cube.path}: {band_name(empty[0], cube.wavelengths)} holds no finite value, so "
                                    f"nan={self.nan!r} has nothing to repair it from; use nan='zero' to accept an "
                                    f"all-zero band, or leave the band out")
        _refuse_mixed_bands(band_sets, resampled=self.target_wavelengths is not None)
        if bad_files:
            raise CubeReadError(f"{len(bad_files)} file(s) hold NaN/Inf: {'; '.join(bad_files[:5])}"
                                f"{'; ...' if len(bad_files) > 5 else ''}; choose a repair with --nan (nan=): 'zero', "
                                f"'band_mean' or 'inpaint'")

    def _check_crop(self, i: int, h: int, w: int) -> None:
        if self.crop is not None and (self.crop[0] > h or self.crop[1] > w):
            where = f" (rows {self.rows})" if self.rows is not None else ""
            raise ValueError(f"{self.items[i][0]}: crop {self.crop} is larger than the cube{where} ({h} x {w})")

    def _band_op(self, cube) -> Callable[[np.ndarray], np.ndarray]:
        if self.bands is not None:
            nb = cube.num_bands
            bad = [b for b in self.bands if not -nb <= b < nb]
            if bad:
                raise ValueError(f"{cube.path}: band indices {bad} out of range for {nb} bands")
            return lambda a: a[..., self.bands]
        if self.target_wavelengths is not None:
            if cube.wavelengths is None:
                raise ValueError(f"{cube.path}: wavelengths= resampling needs the cube's own wavelengths; "
                                 f"the file has none (pass read_options={{'wavelengths': [...]}})")
            m, _ = interpolation_matrix(cube.wavelengths, self.target_wavelengths)
            m = m.astype(np.float32)
            return lambda a: a @ m.T
        return lambda a: a

    def crop_box(self, idx: int) -> tuple[int, int, int, int, int, torch.Generator]:
        """Item ``idx`` of this epoch: ``(cube index, top, left, height, width, generator)``; the generator,
        seeded by (seed, epoch, idx), drew the position and goes on to the item's transform. One home for
        where crops come from: :meth:`__getitem__` and :class:`~s3r_zoo.data.device.DeviceCubes` use it."""
        i, origin = self._index[idx]
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, self.epoch, idx]).generate_state(1)[0]))
        r0, r1 = self._row_range(i)
        h, w = r1 - r0, self.cube(i).shape[1]
        if self.crop_mode == "none":
            return i, r0, 0, h, w, g
        self._check_crop(i, h, w)
        ch, cw = self.crop
        if origin is not None:
            top, left = origin
        elif self.crop_mode == "center":
            top, left = r0 + (h - ch) // 2, (w - cw) // 2
        else:
            top = r0 + int(torch.randint(0, h - ch + 1, (), generator=g))
            left = int(torch.randint(0, w - cw + 1, (), generator=g))
        return i, top, left, ch, cw, g

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int]:
        i, top, left, ch, cw, g = self.crop_box(idx)
        cube = self.cube(i)
        patch = np.asarray(cube.data[top:top + ch, left:left + cw], dtype=np.float32)
        patch = apply_nan_policy(patch, self.nan, f"{cube.path} (crop at row {top}, col {left})", cube.wavelengths,
                                 band_fill=self._fill.get(i))
        patch = self._band_op(cube)(patch)
        x = torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1)))
        if self.stats is not None:
            if len(self.stats.mean) != x.shape[0]:
                raise ValueError(f"{cube.path}: stats have {len(self.stats.mean)} bands, data has {x.shape[0]}")
            x = normalize(x, self.stats.mean, self.stats.std)
        if self.transform is not None:
            x = self.transform(x, generator=g)
        return x, self.items[i][1]


class HSIFolder(CubeDataset):
    """Labelled folder: one sub-folder per class (like torchvision's ImageFolder)."""

    def __init__(self, root: PathLike, **kwargs):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: not a folder")
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not classes:
            raise ValueError(f"{root}: no class sub-folders (expected ROOT/<class>/<cube files>)")
        items, empty = [], []
        for c, name in enumerate(classes):
            cubes = find_cubes(root / name)
            if not cubes:
                empty.append(name)
            items += [(p, c) for p in cubes]
        if empty:
            raise ValueError(f"{root}: class folders without cube files: {empty}")
        super().__init__(items, classes=classes, **kwargs)


class SplitFileDataset(CubeDataset):
    """Items from a split file of ``<path> <label>`` lines (common in HSI repositories)."""

    def __init__(self, split_file: PathLike, root: Optional[PathLike] = None,
                 classes: Optional[Sequence[str]] = None, **kwargs):
        items, names = read_split_file(split_file, root, classes)
        super().__init__(items, classes=names, **kwargs)


class UnlabelledCubes(CubeDataset):
    """Every cube under one or more folders (or an explicit list of files); labels are -1."""

    def __init__(self, paths: Union[PathLike, Sequence[PathLike]], **kwargs):
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        files: list[Path] = []
        for p in map(Path, paths):
            if p.is_dir() and not any(HIMS_PATTERN.match(f.name) for f in p.iterdir()):
                files += find_cubes(p)
            else:
                detect_format(p)  # clear error for unknown or missing files
                files.append(p)
        if not files:
            raise ValueError(f"{', '.join(map(str, paths))}: no cube files found")
        super().__init__([(f, -1) for f in files], **kwargs)


def open_source(source: PathLike, **kwargs) -> CubeDataset:
    """The one answer to "what is this path?": a split file (``.txt`` of ``<path> <label>`` lines) gives a
    :class:`SplitFileDataset`, a cube file, a HIMS folder or a folder of cubes an :class:`UnlabelledCubes`."""
    p = Path(source)
    return SplitFileDataset(p, **kwargs) if _is_split_file(p) else UnlabelledCubes(p, **kwargs)


def check_same_bands(parts: dict) -> None:
    """One band set across data sets checked one by one (``{split file: dataset}``: train, val, test): each
    holds one band set already (``check_files``), so their first cubes are compared; the error names the files."""
    sets: dict = {}
    for name, ds in parts.items():
        cube = ds.cube(0)
        wl = None if cube.wavelengths is None else tuple(round(float(v), 1) for v in cube.wavelengths)
        sets.setdefault((cube.num_bands, wl), []).append(str(name))
    _refuse_mixed_bands(sets, resampled=False)


def _refuse_mixed_bands(band_sets: dict, resampled: bool) -> None:
    """One line listing the files of each band set when a data set mixes them (see ``check_files``)."""
    unknown = any(wl is None for _, wl in band_sets)
    # resampled: every cube must know its wavelengths (each goes to the targets); else: one band set
    if (not unknown) if resampled else len(band_sets) < 2:
        return

    def describe(key, paths):
        n, wl = key
        bands = f"{n} bands {wl[0]:g}-{wl[-1]:g} nm" if wl else f"{n} bands without wavelengths"
        return f"{len(paths)} with {bands} ({', '.join(Path(p).name for p in paths[:3])}{', ...' if len(paths) > 3 else ''})"

    raise CubeReadError("the cubes do not share one band set: " + "; ".join(describe(k, v) for k, v in band_sets.items())
                        + "; give a file without wavelengths a <name>.wavelengths_nm.txt beside it (or --wavelengths when "
                          "all share the same bands), or convert the cubes to one band set")
