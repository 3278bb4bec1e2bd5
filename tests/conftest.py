"""Shared test set-up.

The decoded-cube cache goes to a per-session temporary folder too.
The hub must never be reached from the default test run (no network here, and
huggingface_hub retries for ~20 s before failing): HF_HUB_OFFLINE is set before
huggingface_hub is imported, and its cache goes to a per-session temporary folder.
Tests that exercise downloading start their own hub server on 127.0.0.1.
"""

import dataclasses
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="s3r_zoo_hf_home_")
os.environ.pop("S3R_ZOO_WEIGHTS", None)
os.environ["S3R_ZOO_CACHE"] = tempfile.mkdtemp(prefix="s3r_zoo_cube_cache_")  # never the user's ~/.cache

import pytest  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402

import s3r_zoo  # noqa: E402
from s3r_zoo.models import BAND_SETS, RELEASES  # noqa: E402
from s3r_zoo.models import releases as releases_module  # noqa: E402
from s3r_zoo.models.releases import load_releases  # noqa: E402

HIMS = BAND_SETS["hims41"]


@pytest.fixture(autouse=True)
def _isolated_weights(tmp_path, tmp_path_factory, monkeypatch):
    """No test sees the repository's weights/ or a user's $S3R_ZOO_WEIGHTS unless it asks.

    The files tests write under a released tag's name are not the released ones: the
    records forget their sha256 (set_records puts records back), and `s3r-zoo release`
    updates a copy of releases.json, never the package's own.
    """
    monkeypatch.setattr("s3r_zoo.weights.REPO_WEIGHTS_DIR", tmp_path / "repo_weights")
    monkeypatch.delenv("S3R_ZOO_WEIGHTS", raising=False)
    copy = tmp_path_factory.mktemp("records") / "releases.json"
    shutil.copy(releases_module.RELEASES_FILE, copy)
    monkeypatch.setattr(releases_module, "RELEASES_FILE", copy)
    for name, r in list(RELEASES.items()):
        monkeypatch.setitem(RELEASES, name, dataclasses.replace(r, sha256=None, size=None))


def set_records(monkeypatch, path=None, **files):
    """Make the live release records those of ``path`` (default: the test's releases.json copy);
    ``files`` maps a tag to a file whose sha256 and size its record then requires."""
    from s3r_zoo.files import file_digest

    for name, r in load_releases(path or releases_module.RELEASES_FILE)[0].items():
        if name in files:
            sha, size = file_digest(files[name])
            r = dataclasses.replace(r, sha256=sha, size=size)
        monkeypatch.setitem(RELEASES, name, r)


VALIDATION = {"held_out": "the bottom 12 of 64 rows", "exported": "best validation epoch 2", "best_epoch": 2,
              "metrics": {"loss": 0.6, "crops": 8, "cr_l1": 0.45, "cr_l1_zeros": 1.2, "cr_l1_band_mean": 0.65,
                          "locality": 0.38, "locality_closed_form": 0.35, "br_error": 0.04,
                          "br_error_closed_form": 0.03, "br_error_band_mean": 0.033}}


def make_checkpoint(path, arch="resnet18", in_chans=41, wavelengths="hims", mean="hims", std="hims", seed=0,
                    **kwargs):
    """Write a zoo checkpoint of a randomly initialised encoder and return its state dict (``extra`` may
    carry ``validation=VALIDATION``: the held-out record a pretrain run with --val-fraction > 0 writes)."""
    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, in_chans=in_chans, num_classes=0)
    sd = model.state_dict()
    if wavelengths == "hims":
        wavelengths = HIMS.wavelengths_nm if in_chans == 41 else None
    if mean == "hims":
        mean = HIMS.mean if in_chans == 41 else None
    if std == "hims":
        std = HIMS.std if in_chans == 41 else None
    s3r_zoo.save_checkpoint(path, sd, architecture=arch, objective=kwargs.pop("objective", "cr"),
                            data=kwargs.pop("data", "test"), recipe=kwargs.pop("recipe", {"test": True}),
                            wavelengths_nm=wavelengths, mean=mean, std=std, **kwargs)
    return sd


@pytest.fixture
def ckpt18(tmp_path):
    """A 41-band (380-780 nm) resnet18 checkpoint: (path, state_dict)."""
    path = tmp_path / "r18_hims41.safetensors"
    return path, make_checkpoint(path)


SHARED_DATA_ENV = "S3R_ZOO_TEST_DATA"


@pytest.fixture(scope="session")
def hims_dir():
    """../shared/data/hims_bladder (or $S3R_ZOO_TEST_DATA/hims_bladder); skips when absent."""
    from pathlib import Path

    root = Path(os.environ.get(SHARED_DATA_ENV, Path(__file__).resolve().parents[1].parent / "shared" / "data"))
    d = root / "hims_bladder"
    if not (d / "cube_hwc_f16.npy").is_file():
        pytest.skip(f"real HIMS data not found at {d} (set ${SHARED_DATA_ENV} to the shared data folder)")
    return d
