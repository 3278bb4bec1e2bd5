"""A physically based simulator of H&E transmission hyperspectral microscopy.

Each cube follows Beer-Lambert:

    T(x, y, lambda) = illum(lambda) * exp(-sum_k c_k(x, y) * eps_k(lambda)) + noise(lambda)

with smooth absorbance spectra ``eps_k`` for haematoxylin (broad, 540-600 nm), eosin
(525 nm with a 495 nm shoulder) and oxy-haemoglobin (Soret 415 nm, Q bands 542/577 nm),
plus a weak wavelength-dependent scattering term. Concentration maps ``c_k`` are drawn
from a tissue model: glass background, stroma fibres (eosin), glands (epithelial ring
around a lumen), nuclei as textured ellipses (haematoxylin, chromatin texture), goblet
cell vacuoles, red blood cells in small vessels, and empty lumen/vacuoles. Noise is
Gaussian per band and stronger at the spectral edges, as on the real HIMS microscope.

Classes differ by what a pathologist would name:

* ``pdac_like`` (2 classes): *normal* ducts are round with one layer of small, uniform,
  basal nuclei; *carcinoma* glands are irregular and angulated, nuclei are larger,
  pleomorphic, hyperchromatic, crowded and stratified, and the stroma is desmoplastic.
* ``plgc_like`` (3 classes): *normal* gastric glands; *intestinal metaplasia* adds goblet
  cells (clear mucin vacuoles) to the epithelium; *dysplasia* has crowded, enlarged,
  elongated hyperchromatic nuclei, stratification, irregular glands and few goblet cells.

``difficulty`` in [0, 1] shrinks the class differences and widens nuisance variation
(stain strength, illumination tilt, noise). Everything is deterministic under ``seed``
and works at any image size; features are sized in pixels at a fixed magnification.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence, Union

import numpy as np
from scipy.ndimage import gaussian_filter

from .chemistry import CHEMISTRY, CUES, DIFFUSE_HB_MAX, DIFFUSE_SO2, RBC_DENSITY, haemoglobin_spectra
from .io import Cube

__all__ = ["Preset", "PRESETS", "absorbance_spectra", "simulate_cube", "DEFAULT_DIFFICULTY"]

DEFAULT_DIFFICULTY = 0.5


@dataclass(frozen=True)
class Preset:
    """A simulated data set modelled on one of the paper's (docs/method.md)."""

    name: str
    classes: tuple[str, ...]
    wavelengths_nm: tuple[float, ...]
    size: tuple[int, int]
    class_weights: tuple[float, ...]  # class proportions of the published set
    split: tuple[float, float, float]  # train / val / test fractions of the published split

    @property
    def num_bands(self) -> int:
        return len(self.wavelengths_nm)


PRESETS: dict[str, Preset] = {
    "pdac_like": Preset("pdac_like", ("normal", "carcinoma"), tuple(np.linspace(450, 750, 40).tolist()),
                        (512, 612), (268 / 523, 255 / 523), (331 / 523, 101 / 523, 91 / 523)),
    "plgc_like": Preset("plgc_like", ("normal", "intestinal_metaplasia", "dysplasia"),
                        tuple(np.linspace(470, 670, 32).tolist()), (512, 512),
                        (329 / 1105, 414 / 1105, 362 / 1105), (661 / 1105, 221 / 1105, 223 / 1105)),
}


def _gauss(lam: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((lam - mu) / sigma) ** 2)


def absorbance_spectra(wavelengths: Sequence[float]) -> dict[str, np.ndarray]:
    """Unit absorbance spectra (per unit concentration) at the given wavelengths (nm)."""
    lam = np.asarray(wavelengths, dtype=np.float64)
    return {
        "haematoxylin": 0.75 * _gauss(lam, 585, 55) + 0.45 * _gauss(lam, 540, 38) + 0.08 * _gauss(lam, 420, 40),
        "eosin": _gauss(lam, 525, 17) + 0.45 * _gauss(lam, 495, 20) + 0.05 * _gauss(lam, 350, 60),
        "haemoglobin": 4.0 * _gauss(lam, 415, 11) + 0.45 * _gauss(lam, 542, 9) + 0.5 * _gauss(lam, 577, 9)
        + 0.05 * _gauss(lam, 480, 40),
        "scatter": (lam / 550.0) ** -2.0,
    }


@dataclass(frozen=True)
class _Look:
    """Class-dependent morphology parameters (before difficulty blending)."""

    gland_density: float = 1.0      # glands per 128x128 px
    gland_irregularity: float = 0.08
    lumen_radius: float = 14.0
    epi_thickness: float = 10.0
    nucleus_radius: float = 3.2
    nucleus_pleomorphism: float = 0.10
    nucleus_elongation: float = 1.2
    hyperchromasia: float = 1.0
    crowding: float = 1.0           # nuclei per unit gland perimeter
    stratification: float = 0.1     # 0 = basal row, 1 = spread across the epithelium
    goblet_fraction: float = 0.0
    stroma_eosin: float = 0.45
    stroma_nuclei: float = 0.6      # per 1000 px^2


_LOOKS: dict[str, dict[str, _Look]] = {
    # calibrated (benchmarks/NOTES.md, "Simulator calibration") so that morphology carries the class: the
    # classes' total nuclear area per tissue area stays within a factor ~1.5, so that at stain_balance 1 the
    # compensation is mostly hyperchromasia and a cube's mean spectrum says little about its class
    "pdac_like": {
        "normal": _Look(),
        "carcinoma": _Look(gland_density=1.2, gland_irregularity=0.32, lumen_radius=10.0, epi_thickness=13.0,
                           nucleus_radius=5.0, nucleus_pleomorphism=0.45, nucleus_elongation=1.6,
                           hyperchromasia=1.45, crowding=0.75, stratification=0.7, stroma_eosin=0.62,
                           stroma_nuclei=0.7),
    },
    "plgc_like": {
        "normal": _Look(gland_density=3.0, lumen_radius=9.0),
        "intestinal_metaplasia": _Look(gland_density=3.0, lumen_radius=9.0, epi_thickness=12.0,
                                       goblet_fraction=0.75, nucleus_radius=3.4, crowding=1.1),
        "dysplasia": _Look(gland_density=3.0, gland_irregularity=0.35, lumen_radius=7.0, epi_thickness=13.0,
                           nucleus_radius=5.5, nucleus_pleomorphism=0.4, nucleus_elongation=2.4,
                           hyperchromasia=1.4, crowding=1.0, stratification=0.9, goblet_fraction=0.0,
                           stroma_nuclei=0.8),
    },
}


def _blend(base: _Look, cls: _Look, strength: float) -> _Look:
    """Move from the normal look toward the class look by ``strength`` in [0, 1]."""
    return _Look(**{k: getattr(base, k) + strength * (getattr(cls, k) - getattr(base, k))
                    for k in _Look.__dataclass_fields__})


_GLAND_PACKING = 2.0  # glandular mucosa: glands fill most of the tissue, as in the paper's PDAC and gastric sets


def _haematoxylin_per_area(look: _Look) -> float:
    """Expected haematoxylin per unit area of a look (gland nuclei + stromal nuclei), in the units of
    the concentration maps: what ``stain_balance`` equalises between classes. Within 5 % of the
    simulated totals (measured on 12 cubes of 128 px per class)."""
    r = look.nucleus_radius
    nuclei_per_gland = 2 * np.pi * (look.lumen_radius + look.epi_thickness / 2) / (2.6 * r) * look.crowding
    nucleus_area = np.pi * r * r / look.nucleus_elongation * np.exp(2 * look.nucleus_pleomorphism ** 2)
    glands = _GLAND_PACKING * look.gland_density / 128 ** 2 * nuclei_per_gland * (1 - look.goblet_fraction) * nucleus_area
    stroma = look.stroma_nuclei / 1000 * 0.5 * np.pi * (2.2 ** 2 * 0.75 + (0.9 * r) ** 2 * 0.9 * 0.45)
    return float(glands * 0.55 * look.hyperchromasia + stroma)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: Union[float, tuple]) -> np.ndarray:
    """Zero-mean, unit-std smooth random field (low-resolution noise, upsampled)."""
    s = np.asarray(sigma if isinstance(sigma, tuple) else (sigma, sigma), dtype=np.float64)
    factor = max(1, int(min(s) // 2))
    small = (max(2, shape[0] // factor + 2), max(2, shape[1] // factor + 2))
    field = gaussian_filter(rng.standard_normal(small), s / factor, mode="wrap")
    if factor > 1:
        field = np.kron(field, np.ones((factor, factor)))
        field = gaussian_filter(field, factor / 2.0)
    field = field[:shape[0], :shape[1]]
    return (field - field.mean()) / (field.std() + 1e-12)


def _stamp(canvas: np.ndarray, cy: float, cx: float, ry: float, rx: float, angle: float, value: Union[float, np.ndarray],
           texture: Optional[np.ndarray] = None, mode: str = "max", edge: float = 0.8) -> None:
    """Draw a soft ellipse into ``canvas`` (in place), clipped to its bounds."""
    h, w = canvas.shape
    r = max(ry, rx) + 2
    y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 1)
    x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    u, v = (c * dx + s * dy) / rx, (-s * dx + c * dy) / ry
    d = np.sqrt(u * u + v * v)
    alpha = np.clip((1.0 - d) * max(rx, ry) / edge + 0.5, 0.0, 1.0)
    val = value * alpha
    if texture is not None:
        val = val * texture[y0:y1, x0:x1]
    region = canvas[y0:y1, x0:x1]
    if mode == "max":
        np.maximum(region, val, out=region)
    elif mode == "add":
        region += val
    else:  # "clear": multiply down (vacuoles, lumen)
        region *= 1.0 - alpha * value


def simulate_cube(preset: Union[str, Preset], label: int, size: Optional[Union[int, tuple[int, int]]] = None,
                  seed: int = 0, difficulty: float = DEFAULT_DIFFICULTY, magnification: float = 1.0,
                  stain_balance: float = 1.0, cues: str = "M", chemistry: Optional[dict] = None) -> Cube:
    """Simulate one H&E transmission cube of class ``label``.

    Args:
        preset: ``'pdac_like'``, ``'plgc_like'`` or a :class:`Preset`.
        label: Class index into ``preset.classes``.
        size: Image size (int or (H, W)); default the preset's (512 x 612 / 512 x 512).
        seed: Random seed; the same arguments give the same cube.
        difficulty: 0 = classes far apart, 1 = very close, with more nuisance variation.
        magnification: Lengths in pixels relative to the default magnification (0.5 = half
            the size, four times the tissue in the same pixels: small benchmark tiles still
            hold whole glands).
        stain_balance: How much of the classes' difference in expected stain per tissue area
            is removed, in [0, 1]. 1 (default) scales a class's nuclear haematoxylin so that its
            expected total per area equals the normal class's, and gives its stroma the normal
            eosin: the class lives in morphology (nuclear size, shape, density, arrangement,
            gland form, goblet cells), not in the cube's mean spectrum, as the paper's premise
            says; per-cube stain strength and tissue content stay nuisances. 0 keeps the
            classes' stain amounts (carcinoma's many dark nuclei: the mean spectrum alone then
            separates the classes).
        cues: Where the class differences live (benchmarks/NOTES.md, "Worlds M, C and M+C"): ``'M'``
            morphology only (the default, unchanged), ``'C'`` local chemistry only (every class has the
            normal morphology; classes differ in the oxygen saturation of their red cells,
            :mod:`.chemistry`), ``'M+C'`` both. C and M+C add capillary red cells and a diffuse
            haemoglobin nuisance (amount and saturation drawn per cube) from their own random stream,
            so an M+C cube has the M cube's geometry (glands, nuclei, vessels) exactly.
        chemistry: Worlds C and M+C: set some of the chemistry's draws instead of drawing them,
            ``{'rbc_so2': ..., 'diffuse_hb': ..., 'diffuse_so2': ...}`` (the names of ``Cube.meta["latents"]``;
            SO2s in [0, 1], the amount >= 0). Everything else -- geometry, stains, noise, the other
            draws -- stays as the same arguments would give it: a counterfactual twin of one cube, to
            measure what an encoder responds to (``python -m benchmarks twins``).

    Returns:
        :class:`~s3r_zoo.data.io.Cube` with float32 transmittance (H, W, B) and wavelengths.
    """
    p = PRESETS[preset] if isinstance(preset, str) else preset
    if not 0 <= label < len(p.classes):
        raise ValueError(f"label: expected 0..{len(p.classes) - 1} for {p.name} {p.classes}, found {label}")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty: expected a value in [0, 1], found {difficulty}")
    h, w = (size, size) if isinstance(size, int) else (tuple(size) if size is not None else p.size)
    if h < 8 or w < 8:
        raise ValueError(f"size: expected at least 8 x 8 pixels, found {h} x {w}")
    if not 0.1 <= magnification <= 10:
        raise ValueError(f"magnification: expected a value in [0.1, 10], found {magnification}")
    if not 0.0 <= stain_balance <= 1.0:
        raise ValueError(f"stain_balance: expected a value in [0, 1], found {stain_balance}")
    if cues not in CUES:
        raise ValueError(f"cues: expected one of {CUES}, found {cues!r}")
    _check_chemistry(chemistry, cues)
    mg = float(magnification)
    rng = np.random.default_rng(np.random.SeedSequence([seed, label, h, w]))
    looks = _LOOKS[p.name] if p.name in _LOOKS else _LOOKS["pdac_like"]
    names = list(looks)
    base = looks[names[0]]
    strength = 1.0 - 0.85 * difficulty
    look = _blend(base, looks[p.classes[label]] if p.classes[label] in looks else looks[names[label]],
                  strength if "M" in cues else 0.0)
    # the class's expected haematoxylin per tissue area brought to the normal class's (before magnification:
    # a ratio of per-area amounts), and desmoplastic stroma keeps its fibres but not its extra eosin
    h_factor = (_haematoxylin_per_area(base) / _haematoxylin_per_area(look)) ** stain_balance
    look = replace(look, stroma_eosin=look.stroma_eosin - stain_balance * (look.stroma_eosin - base.stroma_eosin))
    look = replace(look, lumen_radius=look.lumen_radius * mg, epi_thickness=look.epi_thickness * mg,
                   nucleus_radius=look.nucleus_radius * mg)
    jitter = 1.0 + 0.5 * difficulty  # nuisance variation grows with difficulty

    c_h = np.zeros((h, w))
    c_e = np.zeros((h, w))
    c_hb = np.zeros((h, w))
    clear = np.ones((h, w))  # multiplies everything: 0 in lumen / vacuoles / glass

    # tissue vs glass, and stroma fibres
    tissue = _smooth_noise(rng, (h, w), max(h, w) / 6) > -1.2 + 0.4 * rng.random()
    fibres = _smooth_noise(rng, (h, w), (1.5 * mg, 7.0 * mg) if rng.random() < 0.5 else (7.0 * mg, 1.5 * mg))
    c_e += look.stroma_eosin * np.clip(0.7 + 0.35 * fibres, 0.05, None)
    chromatin = np.clip(1.0 + 0.35 * rng.standard_normal((h, w)), 0.3, None)

    # glands: lumen + epithelial ring + nuclei along it (+ goblet cells)
    area_units = h * w / (128 * 128 * mg * mg)
    n_glands = rng.poisson(_GLAND_PACKING * look.gland_density * area_units)
    for _ in range(n_glands):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r0 = look.lumen_radius * rng.uniform(0.7, 1.3)
        thick = look.epi_thickness * rng.uniform(0.85, 1.15)
        k = np.arange(2, 6)
        amps = look.gland_irregularity * rng.standard_normal(k.size) / k ** 0.5
        phases = rng.uniform(0, 2 * np.pi, k.size)
        rr = r0 + thick + 3 * mg
        y0, y1 = max(0, int(cy - rr * 1.6)), min(h, int(cy + rr * 1.6) + 1)
        x0, x1 = max(0, int(cx - rr * 1.6)), min(w, int(cx + rr * 1.6) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        rho = np.hypot(yy - cy, xx - cx)
        theta = np.arctan2(yy - cy, xx - cx)
        rad = r0 * (1 + (amps[:, None, None] * np.cos(k[:, None, None] * theta + phases[:, None, None])).sum(0))
        lumen = rho < rad
        epi = (rho >= rad) & (rho < rad + thick)
        c_e[y0:y1, x0:x1][epi] = 0.3 * jitter ** 0.2 + 0.1 * rng.random()
        clear[y0:y1, x0:x1][lumen] = 0.0
        tissue[y0:y1, x0:x1] |= epi | lumen
        perimeter = 2 * np.pi * (r0 + thick / 2)
        n_nuc = int(perimeter / (2.6 * look.nucleus_radius) * look.crowding)
        for t in np.sort(rng.uniform(0, 2 * np.pi, n_nuc)):
            rad_t = r0 * (1 + (amps * np.cos(k * t + phases)).sum())
            depth = 0.75 - look.stratification * rng.uniform(0, 0.6)  # basal (outer) unless stratified
            pos = rad_t + thick * np.clip(depth + 0.08 * rng.standard_normal(), 0.15, 0.9)
            ny, nx = cy + pos * np.sin(t), cx + pos * np.cos(t)
            if rng.random() < look.goblet_fraction:
                gr = look.nucleus_radius * rng.uniform(1.1, 1.6)
                gy, gx = cy + (rad_t + thick * 0.35) * np.sin(t), cx + (rad_t + thick * 0.35) * np.cos(t)
                _stamp(clear, gy, gx, gr, gr, 0.0, 0.85, mode="clear")
                _stamp(c_h, gy, gx, gr, gr, 0.0, 0.06, mode="max")  # pale mucin
                continue
            size_f = np.exp(look.nucleus_pleomorphism * rng.standard_normal())
            ry = look.nucleus_radius * size_f
            rx = ry / (look.nucleus_elongation * np.exp(0.1 * rng.standard_normal()))
            _stamp(c_h, ny, nx, ry, rx, t, 0.55 * look.hyperchromasia * rng.uniform(0.85, 1.15), chromatin)

    # stromal nuclei (fibroblasts, lymphocytes) and red cells in small vessels
    n_str = rng.poisson(look.stroma_nuclei * h * w / (1000 * mg * mg))
    ys, xs = rng.uniform(0, h, n_str), rng.uniform(0, w, n_str)
    for y, x in zip(ys, xs):
        if rng.random() < 0.5:  # lymphocyte: small, round, dark
            r = 2.2 * mg * rng.uniform(0.85, 1.15)
            _stamp(c_h, y, x, r, r, 0.0, 0.75, chromatin)
        else:  # fibroblast: spindle
            r = look.nucleus_radius * 0.9
            _stamp(c_h, y, x, r * 1.8, r * 0.5, rng.uniform(0, np.pi), 0.45, chromatin)
    for _ in range(rng.poisson(0.6 * area_units)):
        vy, vx = rng.uniform(0, h), rng.uniform(0, w)
        ang = rng.uniform(0, np.pi)
        for j in range(rng.integers(4, 14)):
            off = (j * 5.0 - 30 + rng.normal(0, 1.5)) * mg
            ry = rng.uniform(2.5, 3.5) * mg
            _stamp(c_hb, vy + off * np.sin(ang) + rng.normal(0, 2 * mg), vx + off * np.cos(ang) + rng.normal(0, 2 * mg),
                   ry, ry, 0.0, 0.5 * rng.uniform(0.8, 1.2))

    lam = np.asarray(p.wavelengths_nm)
    latents = {}
    if "C" in cues:
        c_hb, extra, eps_extra = _local_chemistry(p, label, strength, c_hb, (seed, label, h, w), mg, lam, latents,
                                                  chemistry)
    # optics: stain strength variation, slight blur, glass background
    stain_h = rng.uniform(1 - 0.25 * jitter, 1 + 0.25 * jitter)
    stain_e = rng.uniform(1 - 0.25 * jitter, 1 + 0.25 * jitter)
    mask = tissue * clear
    c_h *= h_factor
    planes = [c_h * stain_h, c_e * stain_e, c_hb, np.full((h, w), 0.04)]
    spectra = absorbance_spectra(lam)
    eps = [spectra["haematoxylin"], spectra["eosin"], spectra["haemoglobin"], spectra["scatter"]]
    if "C" in cues:
        planes, eps = planes + extra, eps + eps_extra
    maps = np.stack(planes, axis=-1) * mask[..., None]
    maps = gaussian_filter(maps, sigma=(max(0.4, 0.7 * mg),) * 2 + (0,))
    absorb = maps.reshape(-1, len(eps)).astype(np.float32) @ np.stack(eps).astype(np.float32)
    centre, half = (lam[0] + lam[-1]) / 2, max((lam[-1] - lam[0]) / 2, 1.0)
    tilt = rng.normal(0, 0.015 * jitter)
    illum = 1.0 + tilt * (lam - centre) / half
    cube = np.exp(-absorb).reshape(h, w, -1) * illum.astype(np.float32)
    noise_sd = 0.004 * jitter * (1.0 + 4.0 * ((lam - centre) / half) ** 4)  # noisier at the spectral edges
    cube += rng.standard_normal(cube.shape, dtype=np.float32) * noise_sd.astype(np.float32)
    latents.update(stain_h=float(stain_h), stain_e=float(stain_e), illumination_tilt=float(tilt))
    return Cube(data=cube.astype(np.float32), wavelengths=lam.astype(np.float64), path=f"synthetic:{p.name}",
                format="synthetic", meta={"latents": latents})


FIXABLE = ("rbc_so2", "diffuse_hb", "diffuse_so2")  # the chemistry draws ``chemistry`` may set


def _check_chemistry(chemistry: Optional[dict], cues: str) -> None:
    """Refuse a ``chemistry`` override that names an unknown draw, an invalid value, or a world without chemistry."""
    if not chemistry:
        return
    if "C" not in cues:
        raise ValueError(f"chemistry: world {cues!r} has no local chemistry to set; expected cues 'C' or 'M+C'")
    unknown = sorted(set(chemistry) - set(FIXABLE))
    if unknown:
        raise ValueError(f"chemistry: expected some of {list(FIXABLE)}, found {unknown}")
    for k, v in chemistry.items():
        hi = 1.0 if k.endswith("so2") else np.inf
        if not (isinstance(v, (int, float)) and 0.0 <= v <= hi):
            raise ValueError(f"chemistry: expected {k} in [0, {hi:g}], found {v!r}")


def _local_chemistry(p: Preset, label: int, strength: float, c_hb: np.ndarray, key: tuple, mg: float,
                     lam: np.ndarray, latents: dict, fixed: Optional[dict] = None) -> tuple[np.ndarray, list, list]:
    """Worlds C / M+C: the red cells' haemoglobin (the vessels' of ``c_hb`` and added capillary red cells) at the
    class's oxygen saturation, and diffuse haemoglobin of a per-cube amount and saturation (a nuisance); the
    draws go into ``latents`` (``rbc_so2``, ``red_cells``, ``diffuse_hb``: the amount's maximum per pixel,
    ``diffuse_so2``); ``fixed`` replaces some of them after they are drawn (the stream stays the same).

    Returns ``(c_hb, planes, spectra)``: ``c_hb`` emptied (its red cells move to the new planes), and the
    concentration planes with their absorbance spectra (oxy- and deoxy-haemoglobin, :mod:`.chemistry`)."""
    h, w = c_hb.shape
    rng = np.random.default_rng(np.random.SeedSequence([*key, 7]))  # its own stream: the M draws are unchanged
    fixed = fixed or {}
    chem = CHEMISTRY.get(p.name, CHEMISTRY["pdac_like"])
    names = list(chem)
    base = chem[names[0]].rbc_so2
    cls = chem[p.classes[label]] if p.classes[label] in chem else chem[names[label]]
    so2 = fixed.get("rbc_so2", base + strength * (cls.rbc_so2 - base))
    rbc = c_hb.copy()
    n_cells = rng.poisson(RBC_DENSITY * h * w / (1000 * mg * mg))
    for _ in range(n_cells):
        r = rng.uniform(2.5, 3.5) * mg
        _stamp(rbc, rng.uniform(0, h), rng.uniform(0, w), r, r, 0.0, 0.5 * rng.uniform(0.8, 1.2))
    amount = DIFFUSE_HB_MAX * rng.random()  # drawn even when fixed: the stream (and every later draw) stays
    amount = fixed.get("diffuse_hb", amount)
    diffuse = amount * np.clip(0.6 + 0.4 * _smooth_noise(rng, (h, w), 8.0 * mg), 0.0, None)
    so2_diffuse = rng.uniform(*DIFFUSE_SO2)
    so2_diffuse = fixed.get("diffuse_so2", so2_diffuse)
    latents.update(rbc_so2=float(so2), red_cells=int(n_cells), diffuse_hb=float(amount),
                   diffuse_so2=float(so2_diffuse))
    oxy, deoxy = haemoglobin_spectra(lam)
    planes = [rbc * so2 + diffuse * so2_diffuse, rbc * (1 - so2) + diffuse * (1 - so2_diffuse)]
    return np.zeros_like(c_hb), planes, [oxy, deoxy]
