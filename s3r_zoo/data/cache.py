"""Decode once, then read crops at memory-map speed: the cube cache and ``s3r-zoo data convert``.

npy and ENVI files are memory-mapped, so a random crop reads only its own bytes. MATLAB
(v5 and v7.3), HDF5, TIFF, npz and HIMS folders must be decoded whole, and a training that
takes 16 random crops per cube per epoch would decode each file 16 times per epoch (28-110
crops/s against 480 for npy, measured on a 512 x 612 x 40 cube). :func:`open_cube` decodes
such a file once into a float32 ``.npy`` in the cache folder and memory-maps that from then on.

The cache entry is keyed by the source's resolved path, size and modification time (for a
HIMS folder: of every band file) and the read options (``key``, ``band_axis``), so an edited
or replaced file is decoded again. Where it lives: ``$S3R_ZOO_CACHE`` if set, else
``$XDG_CACHE_HOME/s3r_zoo/cubes`` (``~/.cache/s3r_zoo/cubes``). ``S3R_ZOO_CACHE=off`` turns it
off (every read decodes the file). A cube of 512 x 612 x 40 takes 50 MB; delete the folder
to reclaim the space. Entries are written atomically (several processes under torchrun may
fill the cache at once). ``convert`` writes the same ``.npy`` files plus their wavelength
sidecars to a folder of your choice, for data sets you want to keep converted.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..files import atomic_write, save_npy, write_json
from ..spectral import validate_wavelengths
from .io import HIMS_PATTERN, Cube, CubeReadError, detect_format, read_cube

__all__ = ["cache_dir", "open_cube", "convert_cube", "MAPPED_FORMATS", "CACHE_ENV"]

CACHE_ENV = "S3R_ZOO_CACHE"
MAPPED_FORMATS = ("npy", "envi")  # read by memory map already: never cached
_OFF = ("off", "0", "false", "no", "none")


def cache_dir() -> Optional[Path]:
    """The cache folder, or None when ``S3R_ZOO_CACHE`` turns the cache off."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in _OFF or not value.strip() else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "s3r_zoo" / "cubes"


def _key(path: Path, fmt: str, options: dict) -> str:
    p = path.resolve()
    files = sorted(f for f in p.iterdir() if HIMS_PATTERN.match(f.name)) if p.is_dir() else [p]
    if p.is_file():  # a wavelength sidecar added later must not be hidden by the cached decode
        files += [f for f in (p.with_name(f"{p.stem}.wavelengths_nm.txt"), p.with_name("wavelengths_nm.txt"))
                  if f.is_file()]
    parts = [str(p), fmt, json.dumps({k: options[k] for k in sorted(options)}, default=str)]
    for f in files:
        st = f.stat()
        parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def open_cube(path: Union[str, Path], **read_options: Any) -> Cube:
    """:func:`~s3r_zoo.data.io.read_cube` with ``nan='keep'``, through the cache for formats that
    must be decoded whole (see the module docstring). The Cube keeps the source's path and format."""
    path = Path(path)
    fmt = detect_format(path)
    root = cache_dir()
    if fmt in MAPPED_FORMATS or root is None:
        return read_cube(path, nan="keep", **read_options)
    options = dict(read_options)
    override = options.pop("wavelengths", None)
    options.pop("mmap", None)
    key = _key(path, fmt, options)
    npy, meta = root / f"{key}.npy", root / f"{key}.json"
    info = None
    if npy.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text())
            data = np.load(npy, mmap_mode="r", allow_pickle=False)
            if list(data.shape) != info["shape"]:
                info = None  # a damaged entry: decode again
        except (OSError, ValueError, KeyError):
            info = None
    if info is None:
        cube = read_cube(path, nan="keep", **options)
        try:
            save_npy(npy, np.ascontiguousarray(cube.data, dtype=np.float32))
            info = {"source": str(path.resolve()), "format": fmt, "shape": list(cube.shape),
                    "wavelengths_nm": None if cube.wavelengths is None else cube.wavelengths.tolist(),
                    "fwhm_nm": None if cube.fwhm is None else cube.fwhm.tolist()}
            write_json(meta, info)
        except OSError as e:  # a full or read-only cache must not stop the training: read directly
            import logging

            logging.getLogger(__name__).warning("cube cache %s: cannot write (%s); reading %s without it",
                                                root, e, path)
            return cube if override is None else read_cube(path, nan="keep", **read_options)
        data = np.load(npy, mmap_mode="r", allow_pickle=False)
    wl = info["wavelengths_nm"]
    if override is not None:
        wl = override
    if wl is not None:
        try:
            wl = validate_wavelengths(np.asarray(wl, dtype=np.float64), name=f"{path}: wavelengths",
                                      expected_len=data.shape[-1])
        except ValueError as e:
            raise CubeReadError(str(e)) from None
    fwhm = np.asarray(info["fwhm_nm"]) if info.get("fwhm_nm") is not None else None
    return Cube(data=data, wavelengths=wl, path=str(path), format=fmt, fwhm=fwhm)


def convert_cube(path: Union[str, Path], out: Union[str, Path], **read_options: Any) -> Path:
    """Write ``path`` as ``out`` (``.npy``, float32, bands last) with ``<stem>.wavelengths_nm.txt`` (and
    ``<stem>.fwhm_nm.txt``) beside it, all atomically; NaN/Inf are kept as they are."""
    out = Path(out)
    if out.suffix != ".npy":
        raise ValueError(f"{out}: expected a .npy output path")
    cube = read_cube(path, nan="keep", **read_options)
    save_npy(out, np.ascontiguousarray(cube.data, dtype=np.float32))
    for name, values in (("wavelengths_nm", cube.wavelengths), ("fwhm_nm", cube.fwhm)):
        side = out.with_name(f"{out.stem}.{name}.txt")
        if values is not None:
            text = "".join(f"{v:g}\n" for v in values)
            atomic_write(side, lambda tmp, text=text: Path(tmp).write_text(text))
    return out
