"""Read hyperspectral cubes from the formats HSI data sets come in.

One entry point, :func:`read_cube`, returns a :class:`Cube` whose ``data`` is
``H x W x B`` (bands last, wavelength order) and whose ``wavelengths`` are band centres
in nm, or None when the file does not know them.

Formats (decided from the path by :func:`detect_format`):

* ``.npy`` (memory-mapped; wavelengths from a ``<stem>.wavelengths_nm.txt`` or
  ``wavelengths_nm.txt`` file beside it, one per line, band widths likewise from
  ``<stem>.fwhm_nm.txt``), ``.npz``;
* MATLAB ``.mat`` v5 (scipy) and v7.3 (HDF5, h5py): the variable is chosen by
  ``key=`` or is the single 3-D array. v7.3 arrays are returned in MATLAB's axis order
  (h5py shows them reversed), so both versions of one variable read the same;
* TIFF / multi-page TIFF (tifffile): band axis from ``band_axis=``, else from the file's
  axes labels (pages/samples/channels), else the smallest axis;
* ENVI ``.hdr`` + binary (BSQ/BIL/BIP, via the ``spectral`` package); wavelengths and, when
  given, ``fwhm`` from the header, converted to nm by its ``wavelength units`` (nm, um, mm,
  ..., Angstroms; ``Index`` gives no wavelengths; absent or ``Unknown`` units are decided by
  magnitude, with a warning; a non-length unit such as wavenumbers is refused);
* HIMS folder (FDA Hyperspectral Imaging Microscope): ``trans_mean_camera_N.mat`` with
  band N at ``380 + 10 (N - 1)`` nm, in numeric order (``_10`` after ``_2``). Band images
  keep the layout of their HDF5 dataset ``vv`` (844 x 676 for the published cores), the
  orientation of the bladder core's ``cube_hwc_f16.npy`` used by the tests; MATLAB's
  ``imagesc`` displays them transposed.

Any file whose format holds no wavelengths (a TIFF from a lab export, a ``.mat`` without a
wavelength variable) takes them from a ``<stem>.wavelengths_nm.txt`` or ``wavelengths_nm.txt``
beside it, as ``.npy`` does.

NaN/Inf policy (``nan=``): ``'error'`` (default) names the file, bands and counts;
``'keep'`` returns them untouched; ``'zero'``, ``'band_mean'`` and ``'inpaint'`` (mean of
finite 3x3 neighbours, repeated until filled) replace them.
"""

from __future__ import annotations

import logging
import re
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..spectral import validate_wavelengths
from .nan import NAN_POLICIES, CubeReadError, apply_nan_policy, band_name, nonfinite_scan, nonfinite_summary

_logger = logging.getLogger(__name__)

__all__ = ["Cube", "CubeReadError", "read_cube", "detect_format", "apply_nan_policy", "NAN_POLICIES",
           "HIMS_PATTERN", "hims_wavelength", "nonfinite_scan", "nonfinite_summary", "band_name"]

HIMS_PATTERN = re.compile(r"^trans_mean_camera_(\d+)\.mat$")
ENVI_DATA_SUFFIXES = ("", ".img", ".raw", ".dat", ".bsq", ".bil", ".bip", ".bin")
WAVELENGTH_KEYS = ("wavelengths_nm", "wavelengths", "wavelength", "wl", "lambda", "bands_nm")
SUFFIX_FORMATS = {".npy": "npy", ".npz": "npz", ".mat": "mat", ".tif": "tiff", ".tiff": "tiff", ".hdr": "envi",
                  ".h5": "hdf5", ".hdf5": "hdf5"}

PathLike = Union[str, Path]


@dataclass(frozen=True)
class Cube:
    """A hyperspectral image.

    Attributes:
        data: ``(H, W, B)`` array, bands last (float32, or a read-only memory map).
        wavelengths: Band centres in nm, shape ``(B,)``, or None.
        path: Where it was read from.
        format: Reader that produced it.
        fwhm: Full width at half maximum of each band in nm (ENVI headers that give it), or None.
        meta: What its producer knows about it beyond the pixels, or None; the simulator's cubes carry
            ``{"latents": {...}}``, their per-cube draws (stain strengths, the chemistry worlds' haemoglobin).
    """

    data: np.ndarray
    wavelengths: Optional[np.ndarray]
    path: str = ""
    format: str = ""
    fwhm: Optional[np.ndarray] = None
    meta: Optional[dict] = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def num_bands(self) -> int:
        return int(self.data.shape[-1])


def hims_wavelength(n: int) -> float:
    """Band centre of HIMS file number ``n`` (1-based)."""
    return 380.0 + 10.0 * (n - 1)


def check_regular_file(path: Path) -> None:
    """Refuse what is not a regular file (a FIFO would block the reader forever, a device would never end)."""
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else
                "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file")
        raise CubeReadError(f"{path}: expected a regular file, found {kind}")


def detect_format(path: PathLike) -> str:
    """Name of the reader for ``path`` (see the module docstring)."""
    p = Path(path)
    if p.is_dir():
        if any(HIMS_PATTERN.match(f.name) for f in p.iterdir()):
            return "hims"
        raise CubeReadError(f"{p}: a folder, but not a HIMS folder (no trans_mean_camera_N.mat files); "
                            f"pass a cube file, or a folder of them to a dataset")
    if not p.exists():
        raise CubeReadError(f"{p}: no such file")
    check_regular_file(p)
    fmt = SUFFIX_FORMATS.get(p.suffix.lower())
    if fmt is None and p.suffix.lower() in ENVI_DATA_SUFFIXES[1:] and p.with_suffix(".hdr").exists():
        fmt = "envi"
    if fmt is None:
        raise CubeReadError(f"{p}: unknown cube format '{p.suffix}'; supported: "
                            f"{', '.join(sorted(SUFFIX_FORMATS))}, ENVI binary with a .hdr, or a HIMS folder")
    return fmt


def _bands_last(arr: np.ndarray, band_axis: Optional[int], where: str) -> np.ndarray:
    if arr.ndim != 3:
        raise CubeReadError(f"{where}: expected a 3-D cube (H, W, B), found a {arr.ndim}-D array of shape "
                            f"{arr.shape}" + (" (one band per file? use a HIMS-style folder)" if arr.ndim == 2 else ""))
    if band_axis is None:
        return arr
    if not -3 <= band_axis <= 2:
        raise CubeReadError(f"{where}: band_axis must be 0, 1, 2 or -1, found {band_axis}")
    return np.moveaxis(arr, band_axis, -1)


def _pick(arrays: dict[str, Any], key: Optional[str], where: str) -> tuple[str, np.ndarray]:
    """The array named ``key``, or the single 3-D array."""
    if key is not None:
        if key not in arrays:
            raise CubeReadError(f"{where}: no variable '{key}'; found {sorted(arrays)}")
        return key, arrays[key]
    cubes = [k for k, v in arrays.items() if getattr(v, "ndim", 0) == 3]
    if len(cubes) != 1:
        shapes = {k: tuple(getattr(v, "shape", ())) for k, v in arrays.items()}
        raise CubeReadError(f"{where}: expected exactly one 3-D array, found {len(cubes)} among {shapes}; "
                            f"choose one with key='NAME'")
    return cubes[0], arrays[cubes[0]]


def _wavelengths_from(arrays: dict[str, Any], skip: str) -> Optional[np.ndarray]:
    for k in WAVELENGTH_KEYS:
        if k in arrays and k != skip:
            w = np.asarray(arrays[k], dtype=np.float64).ravel()
            if w.size > 1:
                return w
    return None


def _sidecar_wavelengths(p: Path, what: str = "wavelengths_nm") -> Optional[np.ndarray]:
    """``<stem>.<what>.txt`` or ``<what>.txt`` beside a file: one value (nm) per line."""
    for side in (p.with_name(f"{p.stem}.{what}.txt"), p.with_name(f"{what}.txt")):
        if side.is_file():
            try:
                return np.loadtxt(side, dtype=np.float64, ndmin=1)
            except ValueError as e:
                raise CubeReadError(f"{side}: expected one value (nm) per line ({e})") from None
    return None


def _read_npy(p: Path, band_axis=None, mmap: bool = True, **_):
    arr = np.load(p, mmap_mode="r" if mmap else None, allow_pickle=False)
    return _bands_last(arr, band_axis, str(p)), _sidecar_wavelengths(p), _sidecar_wavelengths(p, "fwhm_nm")


def _read_npz(p: Path, key=None, band_axis=None, **_):
    with np.load(p, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    name, arr = _pick(arrays, key, str(p))
    return _bands_last(np.asarray(arr), band_axis, f"{p}:{name}"), _wavelengths_from(arrays, name)


def _is_hdf5(p: Path) -> bool:
    with open(p, "rb") as f:
        head = f.read(8)
        if head == b"\x89HDF\r\n\x1a\n":
            return True
        f.seek(512)  # MATLAB v7.3 files have a 512-byte text header before the HDF5 superblock
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def _h5_arrays(p: Path, matlab: bool) -> dict[str, np.ndarray]:
    import h5py

    out = {}
    with h5py.File(p, "r") as f:
        for k, v in f.items():
            if isinstance(v, h5py.Dataset) and v.dtype.kind in "fiu":
                arr = v[()]
                out[k] = arr.T if matlab else arr  # MATLAB writes column-major: h5py sees axes reversed
    return out


def _read_mat(p: Path, key=None, band_axis=None, **_):
    if _is_hdf5(p):
        arrays = _h5_arrays(p, matlab=True)
    else:
        from scipy.io import loadmat

        arrays = {k: v for k, v in loadmat(str(p)).items() if not k.startswith("__")}
    name, arr = _pick(arrays, key, str(p))
    return _bands_last(np.asarray(arr), band_axis, f"{p}:{name}"), _wavelengths_from(arrays, name)


def _read_hdf5(p: Path, key=None, band_axis=None, **_):
    arrays = _h5_arrays(p, matlab=False)
    name, arr = _pick(arrays, key, str(p))
    return _bands_last(np.asarray(arr), band_axis, f"{p}:{name}"), _wavelengths_from(arrays, name)


def _read_tiff(p: Path, band_axis=None, **_):
    import tifffile

    with tifffile.TiffFile(p) as tf:
        series = tf.series[0]
        arr = series.asarray()
        axes = series.axes
        meta = tf.shaped_metadata[0] if tf.shaped_metadata else {}
    wl = meta.get("wavelengths_nm", meta.get("wavelengths")) if isinstance(meta, dict) else None
    if arr.ndim == 3 and band_axis is None:
        labelled = [i for i, a in enumerate(axes) if a in "SCQIZ"]
        band_axis = labelled[0] if len(labelled) == 1 else int(np.argmin(arr.shape))
    return _bands_last(arr, band_axis, str(p)), (np.asarray(wl, dtype=np.float64) if wl is not None else None)


def _read_envi(p: Path, **_):
    from spectral.io import envi

    hdr = p if p.suffix.lower() == ".hdr" else p.with_suffix(".hdr")
    data_file = None
    if p.suffix.lower() != ".hdr":
        data_file = p
    else:
        for suffix in ENVI_DATA_SUFFIXES:
            cand = hdr.with_suffix(suffix)
            if cand.is_file() and cand != hdr:
                data_file = cand
                break
    if data_file is None:
        raise CubeReadError(f"{hdr}: ENVI header without a data file (looked for "
                            f"{', '.join(hdr.stem + s for s in ENVI_DATA_SUFFIXES)})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            img = envi.open(str(hdr), str(data_file))
        except Exception as e:  # spectral raises its own types for bad headers and short files
            raise CubeReadError(f"{hdr}: not a readable ENVI header / data pair ({type(e).__name__}: {e})") from None
        meta = img.metadata
        interleave = str(meta.get("interleave", "bsq")).strip().lower()
        if interleave not in ("bsq", "bil", "bip"):
            raise CubeReadError(f"{hdr}: interleave: expected bsq, bil or bip, found {interleave!r}")
        expected = int(img.offset) + img.nrows * img.ncols * img.nbands * np.dtype(img.dtype).itemsize
        size = data_file.stat().st_size
        if size != expected:
            raise CubeReadError(f"{data_file}: expected {expected} bytes ({img.nrows} lines x {img.ncols} samples x "
                                f"{img.nbands} bands of {np.dtype(img.dtype).name}, header offset {img.offset}) from "
                                f"{hdr.name}, found {size}")
        arr = np.asarray(img.open_memmap(interleave="bip", writable=False))
    if "wavelength" not in meta:
        return arr, None
    wl = np.asarray([float(w) for w in meta["wavelength"]], dtype=np.float64)
    factor = _envi_nm_factor(hdr, meta.get("wavelength units"), wl)
    if factor is None:
        return arr, None
    fwhm = None
    if "fwhm" in meta:
        fwhm = np.asarray([float(w) for w in meta["fwhm"]], dtype=np.float64) * factor
        if fwhm.shape != wl.shape or not np.all(np.isfinite(fwhm)) or np.any(fwhm <= 0):
            raise CubeReadError(f"{hdr}: fwhm: expected {len(wl)} positive widths (one per band), found "
                                f"{len(fwhm)} values {fwhm[:3].tolist()}...")
    return arr, wl * factor, fwhm


# ENVI's "wavelength units" values (case-insensitive) and their factor to nm
_ENVI_UNITS = {"nanometers": 1.0, "nanometer": 1.0, "nm": 1.0, "micrometers": 1e3, "micrometer": 1e3, "um": 1e3,
               "µm": 1e3, "microns": 1e3, "micron": 1e3, "millimeters": 1e6, "mm": 1e6, "centimeters": 1e7, "cm": 1e7,
               "meters": 1e9, "m": 1e9, "angstroms": 0.1, "angstrom": 0.1}


def _envi_nm_factor(hdr: Path, units: Optional[str], wl: np.ndarray) -> Optional[float]:
    """Factor from the header's ``wavelength units`` to nm; None for ``index`` (band numbers, not wavelengths).

    Absent or ``unknown`` units are read from the values' magnitude: all below 30 means
    micrometres (visible/NIR light is 0.38-2.5 um), otherwise nanometres; a warning says so.
    """
    u = (units or "unknown").strip().lower()
    if u in _ENVI_UNITS:
        return _ENVI_UNITS[u]
    if u == "index":
        _logger.warning("%s: wavelength units = Index: the 'wavelength' values are band numbers, not wavelengths; "
                        "give the band centres with --wavelengths-file (wavelengths=)", hdr)
        return None
    if u == "unknown":
        factor = 1e3 if np.nanmax(np.abs(wl)) < 30 else 1.0
        _logger.warning("%s: wavelength units %s; reading the values as %s from their magnitude", hdr,
                        "absent" if units is None else repr(units), "micrometres" if factor == 1e3 else "nanometres")
        return factor
    raise CubeReadError(f"{hdr}: wavelength units: expected a length (Nanometers, Micrometers, ...), Index or Unknown, "
                        f"found {units!r}; give the band centres in nm with --wavelengths-file (wavelengths=)")


def _read_hims(p: Path, **_):
    files = sorted(((int(m.group(1)), f) for f in p.iterdir() if (m := HIMS_PATTERN.match(f.name))),
                   key=lambda t: (t[0], t[1].name))
    for (n, a), (n2, b) in zip(files, files[1:]):
        if n == n2:
            raise CubeReadError(f"{p}: two files for band {n} ({a.name} and {b.name}); expected one "
                                f"trans_mean_camera_N.mat per band")
    bands, shape = [], None
    for n, f in files:
        try:
            if _is_hdf5(f):
                import h5py

                with h5py.File(f, "r") as h:
                    if "vv" not in h:
                        raise CubeReadError(f"{f}: no dataset 'vv' (found {sorted(h.keys())})")
                    band = h["vv"][()]
            else:  # a v5 file of the same variable: scipy gives MATLAB's view, the transpose of h5py's
                from scipy.io import loadmat

                band = loadmat(str(f))["vv"].T
        except CubeReadError:
            raise
        except Exception as e:
            raise CubeReadError(f"{f}: cannot read HIMS band {n} ({type(e).__name__}: {e})") from None
        if band.ndim != 2:
            raise CubeReadError(f"{f}: expected a 2-D band image in 'vv', found shape {band.shape}")
        if shape is not None and band.shape != shape:
            raise CubeReadError(f"{f}: band shape {band.shape} differs from {shape} of {files[0][1].name}")
        shape = band.shape
        bands.append(band.astype(np.float32))
    return np.stack(bands, axis=-1), np.array([hims_wavelength(n) for n, _ in files])


_READERS = {"npy": _read_npy, "npz": _read_npz, "mat": _read_mat, "hdf5": _read_hdf5, "tiff": _read_tiff,
            "envi": _read_envi, "hims": _read_hims}


def read_cube(path: PathLike, nan: str = "error", wavelengths: Optional[Sequence[float]] = None,
              **format_options: Any) -> Cube:
    """Read a hyperspectral cube.

    Args:
        path: File or HIMS folder.
        nan: NaN/Inf policy: ``'error'``, ``'keep'``, ``'zero'``, ``'band_mean'``, ``'inpaint'``.
        wavelengths: Band centres (nm) to use when the file has none (or to override).
        **format_options: ``key`` (variable name in npz/mat/hdf5), ``band_axis``
            (axis of the bands in the stored array), ``mmap`` (npy, default True).

    Returns:
        :class:`Cube` with ``data`` of shape (H, W, B).
    """
    if nan not in NAN_POLICIES:
        raise ValueError(f"nan: expected one of {NAN_POLICIES}, found {nan!r}")
    p = Path(path)
    fmt = detect_format(p)
    try:
        data, wl, *more = _READERS[fmt](p, **format_options)  # ENVI adds the bands' FWHM
    except (CubeReadError, FileNotFoundError):
        raise
    except Exception as e:  # corrupt / truncated / foreign files: say which file and what the reader said
        raise CubeReadError(f"{p}: cannot read as {fmt} ({type(e).__name__}: {e})") from None
    if data.dtype.kind not in "fiu":
        raise CubeReadError(f"{p}: expected numeric data, found dtype {data.dtype}")
    if min(data.shape) < 1:
        raise CubeReadError(f"{p}: empty cube of shape {data.shape}")
    if wl is None and wavelengths is None and p.is_file():  # a file that does not say: its sidecar, if any
        wl = _sidecar_wavelengths(p)
    if wavelengths is not None:
        wl = np.asarray(wavelengths, dtype=np.float64)
    if wl is not None:
        try:
            wl = validate_wavelengths(wl, name=f"{p}: wavelengths", expected_len=data.shape[-1])
        except ValueError as e:
            raise CubeReadError(str(e)) from None
    if not isinstance(data, np.memmap) and data.dtype != np.float32:
        data = data.astype(np.float32)
    data = apply_nan_policy(data, nan, str(p), wl)
    return Cube(data=data, wavelengths=wl, path=str(p), format=fmt, fwhm=more[0] if more else None)

