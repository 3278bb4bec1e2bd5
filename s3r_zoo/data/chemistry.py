"""Local chemistry for the simulator's worlds C and M+C: named absorbers inside a few structures.

World **M** (:func:`~.synthetic.simulate_cube`'s default) puts every class difference in
morphology. Worlds **C** and **M+C** add a class difference in the *chemistry of red cells*:
their haemoglobin's oxygen saturation (SO2), which changes its spectral shape (oxy-haemoglobin's
two Q bands at 542 / 576 nm against deoxy-haemoglobin's single band at 555 nm, and
deoxy-haemoglobin's stronger absorption above 600 nm). The red cells are small, round and
dense: a network that finds them can read their SO2. A nuisance hides the cue from the cube's
mean spectrum: diffuse haemoglobin spread through the stroma (extravasated blood, plasma) whose
amount and SO2 are drawn per cube, independent of the class, so the mean spectrum sees a
mixture of the two SO2s weighted by amounts it cannot separate.

This is an idealised world (a class defined by the oxygenation of its red cells), chosen
because its absorbers have tabulated spectra; it does not claim that fixed H&E sections keep
haemoglobin's oxygenation. Parameters: benchmarks/NOTES.md, "Worlds M, C and M+C".

Spectra: molar extinction coefficients of oxy- and deoxy-haemoglobin from S. Prahl, "Optical
absorption of hemoglobin" (Oregon Medical Laser Center, 1999; compiled from W. B. Gratzer and
N. Kollias), at 10-nm steps from 400 to 750 nm (cm^-1 / M), interpolated log-linearly and scaled
so that oxy-haemoglobin's Q band (the table's 580-nm value) equals the simulator's earlier
haemoglobin Q-band peak (0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["CUES", "Chemistry", "CHEMISTRY", "haemoglobin_spectra", "RBC_DENSITY", "DIFFUSE_HB_MAX",
           "DIFFUSE_SO2"]

CUES = ("M", "C", "M+C")  # morphology only, local chemistry only, both

_NM = np.arange(400, 751, 10, dtype=np.float64)
_HBO2 = np.array([266232, 466840, 480360, 246072, 102580, 62816, 44480, 33209.2, 26629.2, 23684.4, 20932.8,
                  20035.2, 24202.4, 39956.8, 53236, 43016, 32613.2, 44496, 50104, 14400.8, 3200, 1506, 942, 610,
                  442, 368, 319.6, 294, 277.6, 276, 290, 314, 348, 390, 446, 518])
_HB = np.array([223296, 303956, 407560, 528600, 413280, 103292, 23388.8, 16156.4, 14550, 16684, 20035.2,
                25773.6, 31589.6, 39036.4, 46592, 53412, 53788, 45072, 37020, 28324.4, 14677.2, 9443.6, 6509.6,
                5148.8, 4345.2, 3750.12, 3226.56, 2795.12, 2407.92, 2051.96, 1794.28, 1540.48, 1325.88, 1102.2,
                1115.88, 1405.24])
_SCALE = 0.5 / 50104.0  # oxy-haemoglobin at 580 nm (its Q band near 576 nm) -> 0.5, the simulator's scale

RBC_DENSITY = 3.0      # capillary red cells per 1000 px^2 of tissue (at magnification 1), worlds C and M+C
DIFFUSE_HB_MAX = 0.24  # diffuse haemoglobin per pixel, drawn per cube in U(0, max) (red cells: ~0.04 per pixel)
DIFFUSE_SO2 = (0.3, 1.0)  # the diffuse haemoglobin's SO2, drawn per cube: a nuisance


@dataclass(frozen=True)
class Chemistry:
    """Class-dependent chemistry: the oxygen saturation of the red cells' haemoglobin."""

    rbc_so2: float = 0.97


CHEMISTRY: dict[str, dict[str, Chemistry]] = {
    "pdac_like": {"normal": Chemistry(0.97), "carcinoma": Chemistry(0.60)},
    "plgc_like": {"normal": Chemistry(0.97), "intestinal_metaplasia": Chemistry(0.78),
                  "dysplasia": Chemistry(0.60)},
}


def haemoglobin_spectra(wavelengths: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(oxy, deoxy) haemoglobin absorbance per unit concentration at ``wavelengths`` (nm); held at the table's
    end values outside 400-750 nm."""
    lam = np.asarray(wavelengths, dtype=np.float64)
    return tuple(np.exp(np.interp(lam, _NM, np.log(t))) * _SCALE for t in (_HBO2, _HB))
