"""``s3r-zoo data info``: what is in a cube, and does S3R's low-rank premise hold on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from ..lowrank import loo_r2
from ..plots import pyplot, save_figure
from .io import Cube

__all__ = ["cube_report", "false_colour", "save_preview", "format_report"]

RGB_NM = (640.0, 550.0, 460.0)


def cube_report(cube: Cube, r2_pixels: int = 200_000, seed: int = 0,
                r2_range_nm: tuple[float, float] = (400.0, 700.0)) -> dict:
    """Shape, dtype, wavelengths, NaN/Inf counts, per-band min/mean/max and leave-one-out R^2.

    R^2 uses pixels that are finite in every band (a random subset of ``r2_pixels``).
    """
    data = cube.data
    h, w, b = data.shape
    flat = np.asarray(data, dtype=np.float32).reshape(-1, b)
    finite = np.isfinite(flat)
    masked = np.where(finite, flat, np.nan)
    ok = finite.all(axis=1)
    pix = flat[ok]
    if pix.shape[0] > r2_pixels:
        pix = pix[np.random.default_rng(seed).choice(pix.shape[0], r2_pixels, replace=False)]
    r2 = loo_r2(torch.from_numpy(pix)).numpy() if pix.shape[0] > b else np.full(b, np.nan)
    report = {
        "path": cube.path, "format": cube.format, "shape": [h, w, b], "dtype": str(data.dtype),
        "wavelengths_nm": None if cube.wavelengths is None else cube.wavelengths.tolist(),
        "fwhm_nm": None if cube.fwhm is None else cube.fwhm.tolist(),
        "nonfinite_per_band": {str(b + 1): int(c) for b, c in enumerate((~finite).sum(axis=0)) if c},
        "nonfinite_total": int((~finite).sum()),
        "band_min": np.nanmin(masked, axis=0).tolist(), "band_mean": np.nanmean(masked, axis=0).tolist(),
        "band_max": np.nanmax(masked, axis=0).tolist(), "loo_r2": r2.tolist(), "r2_pixels": int(pix.shape[0]),
        "median_r2_all": float(np.median(r2)),
    }
    if cube.wavelengths is not None:
        sel = (cube.wavelengths >= r2_range_nm[0]) & (cube.wavelengths <= r2_range_nm[1])
        if sel.any():
            report["median_r2_range_nm"] = list(r2_range_nm)
            report["median_r2_in_range"] = float(np.median(r2[sel]))
    return report


def format_report(rep: dict) -> str:
    """The report as a terminal table."""
    wl = rep["wavelengths_nm"]
    lines = [f"{rep['path']}  ({rep['format']})",
             f"shape (H, W, B) = {tuple(rep['shape'])}, dtype {rep['dtype']}",
             f"wavelengths: {'unknown' if wl is None else f'{wl[0]:g}-{wl[-1]:g} nm ({len(wl)} bands)'}",
             *([f"FWHM: {min(rep['fwhm_nm']):g}-{max(rep['fwhm_nm']):g} nm"] if rep.get("fwhm_nm") else []),
             f"NaN/Inf: {rep['nonfinite_total']}" + (f" (by band: {rep['nonfinite_per_band']})"
                                                     if rep["nonfinite_total"] else ""),
             f"{'band':>4} {'nm':>7} {'min':>9} {'mean':>9} {'max':>9} {'LOO R2':>8}"]
    for i in range(rep["shape"][2]):
        nm = f"{wl[i]:7.1f}" if wl is not None else f"{'?':>7}"
        lines.append(f"{i + 1:>4} {nm} {rep['band_min'][i]:9.4f} {rep['band_mean'][i]:9.4f} "
                     f"{rep['band_max'][i]:9.4f} {rep['loo_r2'][i]:8.4f}")
    lines.append(f"median leave-one-band-out R2: {rep['median_r2_all']:.4f} over all bands"
                 + (f"; {rep['median_r2_in_range']:.4f} over {rep['median_r2_range_nm'][0]:g}-"
                    f"{rep['median_r2_range_nm'][1]:g} nm" if "median_r2_in_range" in rep else "")
                 + f" ({rep['r2_pixels']} pixels)")
    return "\n".join(lines)


def colour_bands(cube: Cube, rgb_nm: tuple[float, float, float] = RGB_NM) -> str:
    """What the false-colour image shows as red, green and blue: the bands nearest to ``rgb_nm``, or, without
    wavelengths, bands guessed at 3/4, 1/2 and 1/4 of the band axis (said so: the colours may mislead)."""
    b = cube.num_bands
    if cube.wavelengths is not None:
        nm = [cube.wavelengths[int(np.argmin(np.abs(cube.wavelengths - x)))] for x in rgb_nm]
        return "R/G/B = " + " / ".join(f"{v:g} nm" for v in nm)
    idx = [int(round(f * (b - 1))) + 1 for f in (0.75, 0.5, 0.25)]
    return "R/G/B = bands " + " / ".join(map(str, idx)) + " (guessed: the file has no wavelengths)"


def false_colour(cube: Cube, rgb_nm: tuple[float, float, float] = RGB_NM) -> np.ndarray:
    """(H, W, 3) float image in [0, 1] from the bands nearest to ``rgb_nm`` (1-99 % stretch)."""
    b = cube.num_bands
    if cube.wavelengths is not None:
        idx = [int(np.argmin(np.abs(cube.wavelengths - nm))) for nm in rgb_nm]
    else:
        idx = [int(round(f * (b - 1))) for f in (0.75, 0.5, 0.25)]
    img = np.stack([np.asarray(cube.data[..., i], dtype=np.float32) for i in idx], axis=-1)
    finite = np.isfinite(img)
    lo, hi = np.percentile(img[finite], [1, 99]) if finite.any() else (0.0, 1.0)
    img = np.where(finite, img, lo)
    return np.clip((img - lo) / max(hi - lo, 1e-12), 0, 1)


def save_preview(cube: Cube, path: Union[str, Path], title: Optional[str] = None) -> Path:
    """Write the false-colour preview as PNG (atomically)."""
    plt = pyplot()

    img = false_colour(cube)
    fig, ax = plt.subplots(figsize=(6, 6 * img.shape[0] / img.shape[1]), dpi=120)
    ax.imshow(img, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{title or Path(cube.path).name}\n{colour_bands(cube)}", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi="figure")


def write_cube_report(cube: Cube, report: dict, out: Union[str, Path], stem: str) -> tuple[Path, Path]:
    """``out/<stem>_preview.png`` and ``out/<stem>_report.json`` (``s3r-zoo data info --out``), atomically."""
    from ..files import write_json

    out = Path(out)
    return save_preview(cube, out / f"{stem}_preview.png"), write_json(out / f"{stem}_report.json", report)


def report_source(source: Union[str, Path], out: Optional[Union[str, Path]] = None, nan: str = "keep",
                  report: Callable[[str], Any] = print, **read_options: Any) -> list[dict]:
    """``s3r-zoo data info``: the report of a cube, a HIMS folder or every cube of a folder (``report`` gets
    the text), and with ``out`` each one's preview PNG and report JSON (named by the path relative to
    ``source``, so two cubes of one name in different folders never overwrite each other)."""
    from ..files import check_writable_dir
    from .io import read_cube
    from .sources import cube_sources, output_names

    src = Path(str(source).rstrip("/"))
    files, single = cube_sources(src)
    if out is not None:
        check_writable_dir(out)
    reports = []
    for f in files:
        cube = read_cube(f, nan=nan, **read_options)
        rep = cube_report(cube)
        rel, stem = output_names(f, src, single)
        report(("" if single else f"== {rel}\n") + format_report(rep))
        if out is not None:
            preview, written = write_cube_report(cube, rep, out, stem)
            report(f"preview: {preview}\nreport:  {written}")
        reports.append(rep)
    return reports
