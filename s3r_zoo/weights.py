"""Where pretrained weight files come from.

For a registered tag such as ``s3r_resnet50.cr_hims41_v2`` the file is looked for, in order:

1. an explicit file: ``pretrained_cfg_overlay=dict(file=...)``;
2. a local weights directory: ``$S3R_ZOO_WEIGHTS`` (if set), then the repository's
   ``weights/`` folder, as ``<model>.<tag>.safetensors``;
3. the Hugging Face hub (``hf_hub_id`` of the tag) through :mod:`huggingface_hub`, which
   uses its cache and honours ``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and ``HF_HOME``.

If nothing is found, one :class:`WeightsNotFoundError` lists every place tried and why.

A released tag's record (:mod:`s3r_zoo.models.releases`) gives the sha256 and size its
file must have (the caller passes them as ``expected``). A local or downloaded file that
does not match is never loaded: a local one raises :class:`WeightsIntegrityError`; a hub
download is fetched once more (``force_download``) and raises if it still does not match.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from .files import file_digest, first_line
from .version import __version__

__all__ = ["WeightsNotFoundError", "WeightsIntegrityError", "WEIGHTS_ENV", "REPO_WEIGHTS_DIR", "local_weight_dirs",
           "find_local_weights", "resolve_weights", "verify_file", "hub_checkpoint", "init_file"]

WEIGHTS_ENV = "S3R_ZOO_WEIGHTS"
REPO_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
HUB_FILENAME = "model.safetensors"


class WeightsNotFoundError(FileNotFoundError):
    """No weight file was found for a pretrained tag."""


class WeightsIntegrityError(ValueError):
    """A weight file does not match its release record (corrupt or partial)."""


def verify_file(path: Path, expected: Optional[dict], model_tag: str) -> None:
    """Raise :class:`WeightsIntegrityError` if ``path`` does not match ``expected`` (``{"sha256", "size"}``)."""
    if not expected:
        return
    entry = expected
    digest, size = file_digest(path)
    if size != entry.get("size", size) or digest != entry.get("sha256", digest):
        raise WeightsIntegrityError(
            f"{path}: does not match the release record of '{model_tag}' (expected {entry.get('size')} bytes, "
            f"sha256 {str(entry.get('sha256'))[:12]}...; found {size} bytes, sha256 {digest[:12]}...). The file "
            f"is corrupt or partial: delete it and download it again.")


def local_weight_dirs() -> list[Path]:
    """Local weight directories in search order."""
    dirs = []
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(REPO_WEIGHTS_DIR)
    return dirs


def find_local_weights(model_tag: str) -> Optional[Path]:
    """``<model_tag>.safetensors`` in the first local weights directory that holds it, else None."""
    for d in local_weight_dirs():
        if (d / f"{model_tag}.safetensors").is_file():
            return d / f"{model_tag}.safetensors"
    return None


def _hub_download(repo_id: str, filename: str, cache_dir: Optional[Union[str, Path]], force: bool = False) -> str:
    from huggingface_hub import hf_hub_download  # imported on use: `import s3r_zoo` stays light

    return hf_hub_download(repo_id=repo_id, filename=filename, cache_dir=cache_dir, force_download=force,
                           library_name="s3r_zoo", library_version=__version__)


def hub_checkpoint(hub_id: str, filename: str = "model.safetensors") -> Path:
    """The checkpoint of an ``hf-hub:ORG/NAME`` id (a folder written by ``s3r-zoo export``), downloaded or cached."""
    repo = hub_id[len("hf-hub:"):] if hub_id.startswith("hf-hub:") else hub_id
    try:
        return Path(_hub_download(repo, filename, cache_dir=None))
    except Exception as e:  # offline, unknown repository, no such file: one line that names the id
        raise WeightsNotFoundError(f"{hub_id}: cannot get {filename} from the hub ({type(e).__name__}: "
                                   f"{str(e).strip().splitlines()[0] if str(e).strip() else ''})") from None


def init_file(init: str) -> str:
    """An init as a local path where it names a file: ``hf-hub:ORG/NAME`` -> its downloaded (or cached)
    ``model.safetensors``, ``local-dir:FOLDER`` -> ``FOLDER/model.safetensors`` (a folder written by
    ``s3r-zoo export``); anything else (a tag, a path, ``random``) unchanged."""
    if init.startswith("hf-hub:"):
        return str(hub_checkpoint(init))
    if init.startswith("local-dir:"):
        path = Path(init[len("local-dir:"):]) / "model.safetensors"
        if not path.is_file():
            raise WeightsNotFoundError(f"{init}: expected a folder written by `s3r-zoo export` (no {path})")
        return str(path)
    return init


def resolve_weights(
        model_tag: str,
        file: Optional[Union[str, Path]] = None,
        hf_hub_id: Optional[str] = None,
        hf_hub_filename: Optional[str] = None,
        cache_dir: Optional[Union[str, Path]] = None,
        expected: Optional[dict] = None,
) -> Path:
    """Find the weight file for ``model_tag`` (``'<model>.<tag>'``).

    Args:
        model_tag: Full pretrained name, e.g. ``s3r_resnet50.cr_hims41_v2``.
        file: Explicit file; when given, it must exist and nothing else is tried.
        hf_hub_id: Hub repository of the tag, if it has one.
        hf_hub_filename: File inside the hub repository (default ``model.safetensors``).
        cache_dir: Hub cache override (``create_model(cache_dir=...)``).
        expected: ``{"sha256", "size"}`` of the tag's release record; a found file must match.

    Returns:
        Path of a local ``.safetensors`` file.
    """
    if file is not None:
        path = Path(file).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"pretrained_cfg_overlay file={str(file)!r}: no such file. Pass the path of a "
                f"'.safetensors' checkpoint written by s3r_zoo.save_checkpoint().")
        if path.suffix != ".safetensors":
            raise WeightsNotFoundError(
                f"pretrained_cfg_overlay file={str(file)!r}: expected a '.safetensors' file, found suffix "
                f"'{path.suffix}'. The zoo never unpickles weights; convert with safetensors.torch.save_file.")
        return path

    tried = []
    entry = expected
    name = f"{model_tag}.safetensors"
    for d in local_weight_dirs():
        candidate = d / name
        if candidate.is_file():
            verify_file(candidate, entry, model_tag)
            return candidate
        origin = f"${WEIGHTS_ENV}" if d != REPO_WEIGHTS_DIR else "repository weights/"
        tried.append(f"{candidate} ({origin}): not found")

    if hf_hub_id:
        filename = hf_hub_filename or HUB_FILENAME
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        try:
            path = Path(_hub_download(hf_hub_id, filename, cache_dir))
        except Exception as e:  # huggingface_hub raises many types; all mean "not here"
            offline = " (HF_HUB_OFFLINE is set: cache only)" if os.environ.get("HF_HUB_OFFLINE") else ""
            tried.append(f"hub {hf_hub_id}/{filename} at {endpoint}{offline}: {type(e).__name__}: {first_line(e)}")
        else:
            try:
                verify_file(path, entry, model_tag)
            except WeightsIntegrityError as first:
                try:  # a corrupt or partial cached file: fetch it once more
                    path = Path(_hub_download(hf_hub_id, filename, cache_dir, force=True))
                except Exception as e:
                    raise WeightsIntegrityError(f"{first}\nA fresh download failed too: {type(e).__name__}: "
                                                f"{first_line(e)}") from None
                try:
                    verify_file(path, entry, model_tag)
                except WeightsIntegrityError as second:
                    raise WeightsIntegrityError(
                        f"{second}\nA fresh download of {hf_hub_id}/{filename} from {endpoint} gave the same "
                        f"mismatch: the file on the hub does not match the release record (a corrupt upload, "
                        f"or a record from another release). Nothing was loaded.") from None
            return path
    else:
        tried.append("hub: this tag has no hf_hub_id")

    raise WeightsNotFoundError(
        f"No weights found for '{model_tag}'. Looked in:\n  - " + "\n  - ".join(tried) +
        f"\nPut the file in one of these places, set ${WEIGHTS_ENV}, pass "
        f"pretrained_cfg_overlay=dict(file='path/to/ckpt.safetensors'), or use pretrained=False.")
