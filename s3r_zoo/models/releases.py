"""One record per released tag, and the band sets they were trained on.

``releases.json`` beside this module is the single source of what the zoo releases (as
torchgeo's weight enums are for its models): for every ``<model>.<tag>`` its band set
(wavelengths, per-band mean/std), objective, training data, recipe, and, once released,
the file's sha256 and size and how it was trained. From it:

* :mod:`.s3r_resnet` builds timm's ``default_cfgs`` (the first tag of a model is its default);
* :func:`s3r_zoo.weights.resolve_weights` refuses any local or downloaded file whose sha256
  or size differs from the record;
* ``s3r-zoo release`` (:mod:`s3r_zoo.release`) checks a run against the record and fills in
  ``file`` and ``training``; the model card's table is printed from it.

To add a tag, add a record with ``band_set``, ``objective``, ``data`` and ``recipe``, then
run ``s3r-zoo release``. A new recipe gets a new tag (timm's way: ``cr_hims41_v2`` after
``cr_hims41``), never new bytes under an old tag; the replaced record moves to ``retired``
with its ``successor`` and why, and asking for it raises an error that names the successor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..bands import BandInfo
from ..files import write_json
from .names import arch_of

__all__ = ["Release", "RELEASES", "BAND_SETS", "RETIRED", "RELEASES_FILE", "HUB_ORG", "load_releases", "load_retired",
           "record_release", "retired_message"]

RELEASES_FILE = Path(__file__).with_name("releases.json")
HUB_ORG = "s3r-zoo"
OBJECTIVE_NAMES = {"cr": "S3R-CR (coefficient regression)", "br": "S3R-BR (band regression)",
                   "local": "local S3R (per-patch coefficient maps)"}


@dataclass(frozen=True)
class Release:
    """A released (or about to be released) weight file of the zoo.

    Attributes:
        name: ``<model>.<tag>``, e.g. ``s3r_resnet50.cr_hims41_v2``.
        band_set: Name of the band set (``hims41``, ``hims41_left``).
        bands: Its wavelengths and per-band mean/std.
        objective: Pre-training objective (``cr``, ``br``, ``local``).
        data: What the weights were trained on, named by what it is.
        recipe: The recipe YAML, relative to the repository root.
        sha256: Hex digest of the released file (None until released).
        size: Its size in bytes.
        training: Epochs, stop reason, losses, wall time, hardware, versions.
    """

    name: str
    band_set: str
    bands: BandInfo
    objective: str
    data: str
    recipe: str
    sha256: Optional[str] = None
    size: Optional[int] = None
    dtype: Optional[str] = None
    training: dict = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def tag(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def architecture(self) -> str:
        return arch_of(self.model)

    @property
    def file_name(self) -> str:
        return f"{self.name}.safetensors"

    @property
    def hf_hub_id(self) -> str:
        return f"{HUB_ORG}/{self.name}"

    def file_facts(self) -> Optional[dict]:
        """``{"sha256", "size"}`` that a weight file must match, or None before the release."""
        return {"sha256": self.sha256, "size": self.size} if self.sha256 else None

    @property
    def description(self) -> str:
        return f"{OBJECTIVE_NAMES.get(self.objective, self.objective)} encoder pre-trained on {self.band_set} " \
               f"hyperspectral cubes"


def _band_set(name: str, raw: dict) -> BandInfo:
    wl = raw.get("wavelengths_nm")
    short = f"{wl[0]:g}-{wl[-1]:g} nm" if wl else f"{len(raw['mean'])} bands"
    return BandInfo(wavelengths_nm=tuple(wl) if wl else None, mean=tuple(raw["mean"]), std=tuple(raw["std"]),
                    source=f"band table {name} ({short})")


def load_releases(path: Path = RELEASES_FILE) -> tuple[dict[str, Release], dict[str, BandInfo]]:
    """(``{name: Release}`` in file order, ``{band set: BandInfo}``) from a releases file."""
    try:
        raw = json.loads(Path(path).read_text())
        band_sets = {k: _band_set(k, v) for k, v in raw["band_sets"].items()}
        releases = {}
        for name, r in raw["releases"].items():
            f = r.get("file") or {}
            releases[name] = Release(name=name, band_set=r["band_set"], bands=band_sets[r["band_set"]],
                                     objective=r["objective"], data=r["data"], recipe=r["recipe"],
                                     sha256=f.get("sha256"), size=f.get("size"), dtype=f.get("dtype"),
                                     training=dict(r.get("training") or {}))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a valid releases file ({type(e).__name__}: {e})") from None
    return releases, band_sets


def record_release(name: str, file: dict[str, Any], training: dict[str, Any], path: Path = RELEASES_FILE) -> None:
    """Set the ``file`` and ``training`` facts of an existing record, atomically (others kept)."""
    raw = json.loads(Path(path).read_text())
    if name not in raw["releases"]:
        raise ValueError(f"{name}: no record in {path.name}; add one (band_set, objective, data, recipe) first")
    raw["releases"][name].update(file=file, training=training)
    write_json(path, raw)


def load_retired(path: Path = RELEASES_FILE) -> dict[str, dict]:
    """``{<model>.<tag>: record}`` of the tags that were replaced (``successor``, ``why``, and their old facts)."""
    return dict(json.loads(Path(path).read_text()).get("retired") or {})


def retired_message(name: str, record: dict) -> str:
    """One line for a retired tag: why, what replaced it, where the old file is."""
    succ = record["successor"]
    return (f"{name} was retired: {record['why']}. Its successor is {succ} (the default of {succ.split('.')[0]}): "
            f"timm.create_model('{succ}', pretrained=True, ...). The old file stays in the repository's git history "
            f"(weights/{name}.safetensors, sha256 {(record.get('file') or {}).get('sha256', '?')[:16]}...)")


RELEASES, BAND_SETS = load_releases()
RETIRED = load_retired()
