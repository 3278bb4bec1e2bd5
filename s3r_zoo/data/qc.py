"""``s3r-zoo data qc``: find noise bands and artefacts in a scan before training on it.

Built on the prior S3R itself rests on: in tissue, every band is (almost) a linear
combination of the others. Where that fails, something other than tissue is in the light
path. No network and no labels are needed.

Per cube (``cube_qc``):

* **Band quality**: each band's leave-one-band-out R^2 (how well the other bands predict
  it, with an intercept, on up to 200,000 pixels). A band below ``r2_min`` (default 0.1: the
  other bands share almost none of it) is *flagged as noise*; on the FDA HIMS bladder cube
  that is 780 nm alone (R^2 0.002). Bands from ``r2_min`` to ``WEAK_R2`` (0.5, the threshold
  of S3R's default target-band rule) are listed as *weak* (380, 760 and 770 nm there), and
  ``weakest_kept_band`` names the lowest R^2 among the unflagged bands (380 nm, R^2 0.16).
* **NaN/Inf** per band and the first pixel coordinates (row, col) of non-finite values.
* **Saturation** per band: values at the integer type's maximum, or, for float data, at the
  band's own maximum when at least ``SATURATION_REPEATS`` pixels share it (a flat top is
  clipping; a single brightest pixel is not).
* **Residual map**: for every pixel, how far its spectrum is from the low-rank model of the
  rest of the image (cross-fitted over a 4 x 4 grid of blocks, see :func:`residual_map`). Each
  band with R^2 >= ``WEAK_R2`` is rebuilt from the other such bands with closed-form
  coefficients (one inverse, the identity of :mod:`s3r_zoo.lowrank`); each band's residual
  is divided by its robust spread (1.4826 x the median absolute deviation over the cube),
  and the pixel's score is the root mean square over bands: about 1 for ordinary tissue,
  large where dust, bubbles, folds, edges of the coverslip or defocus break the model.
  ``artefact_fraction``: the share of pixels above ``z`` (default 5).
* ``qc_score`` = percent of pixels that are artefacts or non-finite (0 = clean); a folder's
  ``qc_ranking.csv`` lists the worst cubes first. ``regions``: up to three windows (1/8 of the
  smaller side) with the highest mean score among those that hold an artefact or a NaN pixel,
  where to look first (none on a clean cube); ties in the ranking go to the cube with more NaN.

The PNG shows the false-colour image, the residual map (log scale, a 5-px local mean so that
regions stand out from single noisy pixels) with NaN pixels circled in red and the regions
boxed, and the per-band R^2 with the noise bands in red and the weak ones in orange.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from ..files import check_writable_dir, write_csv, write_json
from ..lowrank import ridge_lambda
from ..plots import pyplot, save_figure
from .io import Cube, read_cube
from .report import cube_report, false_colour

__all__ = ["cube_qc", "residual_map", "save_qc_png", "SATURATION_REPEATS", "WEAK_R2"]

SATURATION_REPEATS = 10
WEAK_R2 = 0.5  # below: a weak band (S3R's default target rule leaves it out); not in the residual map
MAX_LISTED = 100  # non-finite pixel coordinates listed in the JSON


def residual_map(data: np.ndarray, bands: list[int], tiles: int = 4, ridge: float = 1e-6) -> np.ndarray:
    """``(H, W)`` RMS over ``bands`` of each band's robust z-scored leave-one-band-out residual; NaN where a
    pixel has a non-finite value in any of ``bands``.

    Cross-fitted: the image is cut into ``tiles x tiles`` blocks and each block's pixels are
    scored with coefficients fitted on every other block (Gram matrices add, so this costs one
    pass). With enough bands the regression could otherwise fit a strong local artefact as one
    more component and hide it; no pixel is scored by a model that has seen it.
    """
    h, w, _ = data.shape
    x = torch.from_numpy(np.asarray(data[..., bands], dtype=np.float32).reshape(h * w, len(bands)))
    ok = torch.from_numpy(np.isfinite(x.numpy()).all(axis=1))
    rows = torch.arange(h).repeat_interleave(w) * tiles // h
    cols = torch.arange(w).repeat(h) * tiles // w
    block = torch.where(ok, rows * tiles + cols, -1)
    shift = x[ok].double().mean(0)  # Gram matrices around one shift: float64 sums stay exact enough
    stats = []
    for k in range(tiles * tiles):
        p = x[block == k].double() - shift
        stats.append((len(p), p.sum(0), p.T @ p))
    n_all = sum(n for n, _, _ in stats)
    s_all = sum(s for _, s, _ in stats)
    g_all = sum(g for _, _, g in stats)
    eye = torch.eye(len(bands), dtype=torch.float64)
    res = torch.zeros(h * w, len(bands), dtype=torch.float64)
    for k, (n_k, s_k, g_k) in enumerate(stats):
        if n_k == 0:
            continue
        n = n_all - n_k
        if n <= len(bands):
            raise ValueError(f"residual map: {n} finite pixels outside block {k}; too few for {len(bands)} bands")
        mean = (s_all - s_k) / n
        g = (g_all - g_k) - n * torch.outer(mean, mean)
        inv = torch.linalg.inv(g + ridge_lambda(g, ridge) * eye)
        # residual of band b given the others: ((x - mean) @ inv)_b / inv_bb (the one-inverse identity)
        idx = block == k
        res[idx] = (x[idx].double() - shift - mean) @ (inv / torch.diagonal(inv)[None, :])
    r = res[ok]
    med = r.median(0).values
    mad = (r - med).abs().median(0).values * 1.4826
    out = np.full(h * w, np.nan, np.float32)
    out[ok.numpy()] = ((r - med) / mad.clamp_min(1e-300)).pow(2).mean(1).sqrt().float().numpy()
    return out.reshape(h, w)


def _saturation(data: np.ndarray) -> list[int]:
    out = []
    for b in range(data.shape[-1]):
        band = np.asarray(data[..., b])
        if band.dtype.kind in "iu":
            out.append(int((band == np.iinfo(band.dtype).max).sum()))
            continue
        finite = band[np.isfinite(band)]
        top = (finite == finite.max()).sum() if finite.size else 0
        out.append(int(top) if top >= SATURATION_REPEATS else 0)
    return out


def _regions(score: np.ndarray, z: float, n: int = 3) -> list[dict]:
    """Up to ``n`` non-overlapping windows with the highest mean score (NaN counts as the worst), among the
    windows that hold an artefact (score > ``z``) or a NaN pixel: a clean cube has none."""
    h, w = score.shape
    side = max(4, min(h, w) // 8)
    s = np.where(np.isfinite(score), score, np.nanmax(score) if np.isfinite(score).any() else 0.0)
    flagged = (~np.isfinite(score)) | (np.nan_to_num(score, nan=0.0) > z)
    # sums over windows of `side` via integral images, on a grid of half-window steps
    ii = np.pad(s, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    fi = np.pad(flagged.astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)

    def window(a, top, left):
        return a[top + side, left + side] - a[top, left + side] - a[top + side, left] + a[top, left]

    step = max(1, side // 2)
    cands = []
    for top in range(0, h - side + 1, step):
        for left in range(0, w - side + 1, step):
            if window(fi, top, left) > 0:
                cands.append((window(ii, top, left) / side ** 2, top, left))
    out: list[dict] = []
    for value, top, left in sorted(cands, reverse=True):
        if all(abs(top - r["row"]) >= side or abs(left - r["col"]) >= side for r in out):
            out.append({"row": int(top), "col": int(left), "size": int(side), "mean_score": float(value)})
        if len(out) == n:
            break
    return out


def cube_qc(cube: Cube, r2_min: float = 0.1, z: float = 5.0) -> tuple[dict, np.ndarray]:
    """(the QC record of the module docstring, the residual score map ``(H, W)``)."""
    rep = cube_report(cube)
    r2 = np.asarray(rep["loo_r2"])
    b = cube.num_bands
    wl = cube.wavelengths

    def name(i: int) -> dict:
        return {"band": i + 1, "nm": None if wl is None else float(wl[i]), "r2": round(float(r2[i]), 5)}

    noise = [i for i in range(b) if not r2[i] >= r2_min]
    kept = [i for i in range(b) if i not in noise]
    weak = [i for i in kept if r2[i] < WEAK_R2]
    strong = [i for i in kept if i not in weak]
    if len(strong) < 3:
        raise ValueError(f"{cube.path}: only {len(strong)} bands reach R2 >= {WEAK_R2}; the residual map needs 3 "
                         f"bands that the others predict")
    score = residual_map(cube.data, strong)
    finite = np.isfinite(score)
    bad_px = np.argwhere((~np.isfinite(np.asarray(cube.data, dtype=np.float32))).any(axis=2))
    artefacts = int((score[finite] > z).sum())
    record = {
        "path": cube.path, "shape": rep["shape"], "wavelengths_nm": rep["wavelengths_nm"],
        "r2_min": r2_min, "z": z, "loo_r2": rep["loo_r2"],
        "noise_bands": [name(i) for i in noise], "weak_bands": [name(i) for i in weak],
        "residual_bands": len(strong),
        "weakest_kept_band": name(min(kept, key=lambda i: r2[i])),
        "nonfinite_per_band": rep["nonfinite_per_band"], "nonfinite_pixels": int(len(bad_px)),
        "nonfinite_pixel_rc": bad_px[:MAX_LISTED].tolist(),
        "saturated_per_band": {str(i + 1): c for i, c in enumerate(_saturation(cube.data)) if c},
        "residual_median": float(np.median(score[finite])), "residual_p99": float(np.percentile(score[finite], 99)),
        "artefact_pixels": artefacts, "artefact_fraction": artefacts / score.size,
        "qc_score": round(100.0 * (artefacts + len(bad_px)) / score.size, 4),
        "regions": _regions(score, z),
    }
    return record, score


def save_qc_png(cube: Cube, record: dict, score: np.ndarray, path: Union[str, Path],
                title: Optional[str] = None) -> Path:
    """The three panels of the module docstring, written atomically."""
    plt = pyplot()
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    h, w = score.shape
    fig = plt.figure(figsize=(13, 5.2), dpi=110)
    grid = fig.add_gridspec(1, 3, width_ratios=[w / h, w / h, 1.3])
    ax_img, ax_res, ax_r2 = (fig.add_subplot(grid[0, i]) for i in range(3))
    ax_img.imshow(false_colour(cube), interpolation="nearest")
    ax_img.set_title("false colour", fontsize=9)
    from scipy.ndimage import uniform_filter

    ok = np.isfinite(score)  # a 5-px local mean: single noisy pixels fade, regions stand out
    shown = uniform_filter(np.where(ok, score, 0.0), 5) / np.maximum(uniform_filter(ok.astype(float), 5), 1e-9)
    shown = np.where(ok, shown, np.nan)
    finite = shown[ok]
    lo, hi = max(float(np.percentile(finite, 1)), 1e-3), max(float(finite.max()), 1e-2)
    im = ax_res.imshow(np.clip(shown, lo, None), norm=LogNorm(lo, hi), cmap="magma", interpolation="nearest")
    fig.colorbar(im, ax=ax_res, fraction=0.046, pad=0.02, label="residual (robust z, RMS over bands; 5-px mean)")
    ax_res.set_title(f"low-rank residual: {100 * record['artefact_fraction']:.2f} % of pixels > {record['z']:g}",
                     fontsize=9)
    for ax in (ax_img, ax_res):
        rc = np.asarray(record["nonfinite_pixel_rc"])
        if len(rc):
            ax.scatter(rc[:, 1], rc[:, 0], s=120, facecolors="none", edgecolors="red", linewidths=1.5,
                       label=f"NaN/Inf ({record['nonfinite_pixels']} px)")
            ax.legend(loc="lower right", fontsize=7)
        for k, r in enumerate(record["regions"], 1):
            ax.add_patch(Rectangle((r["col"], r["row"]), r["size"], r["size"], fill=False, edgecolor="cyan", lw=1.2))
            ax.text(r["col"], r["row"] - 3, str(k), color="cyan", fontsize=8)
        ax.set_axis_off()
    r2 = np.asarray(record["loo_r2"])
    x = np.asarray(record["wavelengths_nm"]) if record["wavelengths_nm"] else np.arange(1, len(r2) + 1)
    flagged = {n["band"] - 1 for n in record["noise_bands"]}
    weak = {n["band"] - 1 for n in record["weak_bands"]}
    ax_r2.bar(x, np.clip(r2, 0.01, 1), width=(x[1] - x[0]) * 0.8 if len(x) > 1 else 0.8,
              color=["tab:red" if i in flagged else "tab:orange" if i in weak else "tab:blue" for i in range(len(r2))])
    for n in record["noise_bands"]:
        ax_r2.annotate(f"{n['nm']:g} nm: R2 {n['r2']:.3f}" if n["nm"] is not None else f"band {n['band']}: "
                       f"R2 {n['r2']:.3f}", (x[n["band"] - 1], 0.02), xytext=(-20, 70), textcoords="offset points",
                       ha="right", fontsize=7, color="tab:red", bbox=dict(fc="white", ec="none", alpha=0.9),
                       arrowprops=dict(arrowstyle="->", color="tab:red"))
    ax_r2.axhline(record["r2_min"], color="k", ls="--", lw=0.8, label=f"noise below R2 = {record['r2_min']:g}")
    ax_r2.set_xlabel("wavelength (nm)" if record["wavelengths_nm"] else "band")
    ax_r2.set_ylabel("leave-one-band-out R2")
    ax_r2.set_ylim(0, 1.02)
    ax_r2.legend(fontsize=7, loc="lower center")
    ax_r2.set_title(f"band quality (red: noise; orange: weak, R2 < {WEAK_R2:g})", fontsize=9)
    fig.suptitle(title or Path(cube.path).name, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi="figure")


def rank(records: list[dict]) -> list[dict]:
    """Worst first: by QC score, a tie by NaN/Inf pixels, then by artefact share (a NaN cube never ranks below a
    clean one whose rounded score equals its own)."""
    return sorted(records, key=lambda r: (-r["qc_score"], -r["nonfinite_pixels"], -r["artefact_fraction"]))


def qc_source(source: Union[str, Path], out: Union[str, Path], r2_min: float = 0.1, z: float = 5.0,
              report: Callable[[str], Any] = print, **read_options: Any) -> list[dict]:
    """QC of a cube, a HIMS folder or a folder of cubes: per cube ``<name>_qc.json`` and ``<name>_qc.png`` in
    ``out`` (names relative to ``source``: no machine path in the outputs), for a folder ``qc_ranking.csv``
    (worst first); ``report`` gets one line per cube. Returns the records."""
    from ..progress import progress
    from .sources import cube_sources, output_names

    src, out = Path(str(source).rstrip("/")), Path(out)
    if not 0 <= r2_min <= 1 or z <= 0:
        raise ValueError(f"--r2-min: expected 0..1, found {r2_min}; --z: expected > 0, found {z}")
    check_writable_dir(out)
    files, single = cube_sources(src)
    rows = []
    for f in progress(files, desc="qc", unit="cube", disable=len(files) < 2):
        cube = read_cube(f, nan="keep", **read_options)
        record, score = cube_qc(cube, r2_min, z)
        rel, stem = output_names(f, src, single)
        record["path"] = rel
        write_json(out / f"{stem}_qc.json", record)
        save_qc_png(cube, record, score, out / f"{stem}_qc.png", title=f"{rel}: QC score {record['qc_score']:g}")
        rows.append(record)
        noise = ", ".join(f"{n['nm']:g} nm" if n["nm"] is not None else f"band {n['band']}"
                          for n in record["noise_bands"]) or "none"
        weak = record["weakest_kept_band"]
        report(f"{rel}: QC score {record['qc_score']:g} ({100 * record['artefact_fraction']:.2f} % artefact pixels, "
               f"{record['nonfinite_pixels']} NaN/Inf pixels); noise bands: {noise}; weakest of the rest: "
               f"{weak['nm'] if weak['nm'] is not None else 'band ' + str(weak['band'])}"
               f"{' nm' if weak['nm'] is not None else ''} (R2 {weak['r2']:.3f})")
    if not single:
        write_csv(out / "qc_ranking.csv",
                  ["path", "qc_score", "artefact_fraction", "nonfinite_pixels", "saturated_values", "noise_bands",
                   "weakest_kept_band_r2"],
                  [[r["path"], r["qc_score"], f"{r['artefact_fraction']:.6f}", r["nonfinite_pixels"],
                    sum(r["saturated_per_band"].values()), " ".join(str(n["band"]) for n in r["noise_bands"]),
                    r["weakest_kept_band"]["r2"]] for r in rank(rows)])
        report(f"ranking (worst first) -> {out / 'qc_ranking.csv'}")
    return rows
