"""The ``s3r-zoo embed`` run (its options: :mod:`.spec`)."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from torch import nn

from ..bands import band_info, normalize
from ..checkpoint import read_checkpoint_info
from ..data.cache import open_cube
from ..data.sources import source_files
from ..data.io import Cube, apply_nan_policy
from ..data.stats import BandStats
from ..files import check_writable_dir, folder_lock, read_json, save_npy, write_csv, write_json
from ..models import MODEL_NAMES, build_encoder, model_of
from ..progress import progress
from ..train.engine import resolve_amp
from ..weights import init_file
from .spec import EmbedSpec, STATS_CUBES

__all__ = ["run_embed", "windows", "relative_name", "same_bands", "load_model", "embed_cube", "checkpoint_stats"]

PARTS = ".embed_parts"  # finished cubes of a run, kept until features.npy is written
_PART_FILE = re.compile(r"^(\d{6}\.(npy|json)|settings\.json)$")  # the only files embed writes there
_logger = logging.getLogger(__name__)



def relative_name(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (POSIX; ``../`` where a split file lists cubes beside its folder), what
    index and prediction files record: never a machine's absolute path, never a bare file name that drops
    the class folder."""
    return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()


def same_bands(a, b) -> bool:
    """Whether two wavelength lists name the same bands (within 0.5 nm); unknown wavelengths never differ."""
    return a is None or b is None or (len(a) == len(b) and np.allclose(a, b, atol=0.5))


def windows(h: int, w: int, tile: Optional[int], stride: Optional[int]) -> list[tuple[int, int, int, int]]:
    """``(top, left, height, width)`` of each window; the whole cube when ``tile`` is None."""
    if tile is None:
        return [(0, 0, h, w)]
    th, tw = min(tile, h), min(tile, w)
    step = stride or tile

    def starts(n, t):
        s = list(range(0, n - t + 1, step))
        return s if s[-1] == n - t else s + [n - t]

    return [(t, l, th, tw) for t in starts(h, th) for l in starts(w, tw)]


def load_model(init: str, model: Optional[str], num_bands: int, wavelengths,
               num_classes: int = 0) -> tuple[nn.Module, str]:
    """(encoder with ``num_bands`` inputs, its model name) from a tag, checkpoint file or ``hf-hub:`` id."""
    init = init_file(init)  # hf-hub: / local-dir: -> their model.safetensors
    model = model or model_of(init)
    if model is None:
        raise ValueError(f"--model: required with --init {init!r} (one of {list(MODEL_NAMES)})")
    return build_encoder(model, num_bands, init, num_classes=num_classes, wavelengths=wavelengths), model


def checkpoint_stats(init: str, model: nn.Module) -> BandStats:
    """The per-band mean/std ``model`` was built with from ``init`` (a tag's or a checkpoint's, resampled to the
    model's bands): the normalisation the weights were trained with, the same for every cube."""
    if init in ("random", "scratch", "imagenet") or (Path(init).is_file() and read_checkpoint_info(init).mean is None):
        raise ValueError(f"--init {init}: records no per-band statistics to normalise with; pass --normalize data to "
                         f"use the statistics of the cubes being embedded")
    info = band_info(model)
    return BandStats(mean=tuple(info.mean), std=tuple(info.std), count=0)


def _data_stats(paths: list[Path], spec: EmbedSpec) -> BandStats:
    n, s, ss = 0, 0.0, 0.0
    for p in paths[:STATS_CUBES]:
        c = _read(p, spec)  # the NaN policy first: a NaN would make every statistic, then every feature, NaN
        x = apply_nan_policy(np.asarray(c.data, dtype=np.float32), spec.nan, str(p), c.wavelengths)
        x = x.astype(np.float64).reshape(-1, c.num_bands)
        n, s, ss = n + len(x), s + x.sum(0), ss + (x ** 2).sum(0)
    mean = s / n
    std = np.sqrt(np.maximum(ss / n - mean ** 2, 0))
    return BandStats(mean=tuple(mean.tolist()), std=tuple(np.maximum(std, 1e-12).tolist()), count=n)


def _read(path: Path, spec: EmbedSpec) -> Cube:
    return open_cube(path, **({"wavelengths": spec.wavelengths} if spec.wavelengths else {}))


@torch.no_grad()
def embed_cube(model: nn.Module, cube: Cube, boxes: list[tuple[int, int, int, int]], stats: BandStats,
               device: torch.device, batch_size: int, amp: str, nan: str) -> Iterator[torch.Tensor]:
    """Model outputs for each window of ``cube`` (float32, on the CPU), batch by batch."""
    mean, std = torch.tensor(stats.mean), torch.tensor(stats.std)
    for start in range(0, len(boxes), batch_size):
        xs = []
        for top, left, h, w in boxes[start:start + batch_size]:
            patch = np.asarray(cube.data[top:top + h, left:left + w], dtype=np.float32)
            patch = apply_nan_policy(patch, nan, f"{cube.path} (window at row {top}, col {left})", cube.wavelengths)
            xs.append(normalize(torch.from_numpy(np.ascontiguousarray(patch.transpose(2, 0, 1))), mean, std))
        x = torch.stack(xs).to(device).contiguous(memory_format=torch.channels_last)
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=amp in ("bf16", "fp16")):
            yield model(x).float().cpu()


def _fingerprint(spec: EmbedSpec, paths: list[Path]) -> dict:
    return {"init": spec.init, "model": spec.model, "tile": spec.tile, "stride": spec.stride, "nan": spec.nan,
            "wavelengths": spec.wavelengths, "normalize": spec.normalize, "cubes": [str(p) for p in paths]}


def run_embed(spec: EmbedSpec) -> dict:
    """Embed every cube of ``spec.source``; returns the summary (also ``embed.json``)."""
    if spec.tile is not None and spec.tile < 8:
        raise ValueError(f"--tile: expected at least 8 pixels, found {spec.tile}")
    if spec.stride is not None and (spec.tile is None or spec.stride < 1):
        raise ValueError(f"--stride: expected a positive step with --tile, found {spec.stride} (tile {spec.tile})")
    if spec.batch_size < 1:
        raise ValueError(f"--batch-size: expected at least 1, found {spec.batch_size}")
    out = Path(spec.out)
    check_writable_dir(out)
    paths, base, labels = source_files(spec.source)
    first = _read(paths[0], spec)
    init = init_file(spec.init)  # hf-hub: / local-dir: resolved once
    model, name = load_model(init, spec.model, first.num_bands, first.wavelengths)
    fp = _fingerprint(spec, paths)
    parts = out / PARTS
    fp_file = parts / "settings.json"
    foreign = [f.name for f in parts.iterdir() if not _PART_FILE.match(f.name)] if parts.is_dir() else []
    if foreign:
        raise ValueError(f"--out {out}: {parts} holds files embed did not write ({', '.join(sorted(foreign)[:3])}); "
                         f"use another --out")
    stale = fp_file.is_file() and read_json(fp_file) != json.loads(json.dumps(fp))
    for path in paths[1:]:  # one band set, checked before anything is written
        cube = _read(path, spec)
        if (cube.num_bands != first.num_bands or not same_bands(cube.wavelengths, first.wavelengths)
                or (cube.wavelengths is None) != (first.wavelengths is None)):  # unknown bands never match known
            raise ValueError(f"{path}: its bands differ from those of {paths[0]} (the stem was adapted to the first "
                             f"cube's); embed one band set at a time")
    if spec.normalize == "checkpoint":
        stats, norm = checkpoint_stats(init, model), "checkpoint"
    else:
        stats, norm = _data_stats(paths, spec), f"data ({min(len(paths), STATS_CUBES)} cubes)"
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = resolve_amp(spec.amp, device)
    model = model.to(device).eval().to(memory_format=torch.channels_last)
    with folder_lock(out, "embed"):  # one run per output folder, from the first write on
        if stale:  # an unfinished embed with other settings or cubes: its parts cannot be reused
            _logger.warning("%s: an unfinished embed with other settings; its parts are discarded", out)
            _remove_parts(parts)
        write_json(fp_file, fp)
        for k, path in enumerate(progress(paths, desc="embed", unit="cube", disable=len(paths) < 2)):
            done = parts / f"{k:06d}.npy"
            if done.is_file():
                continue
            cube = _read(path, spec)
            boxes = windows(cube.shape[0], cube.shape[1], spec.tile, spec.stride)
            feats = torch.cat(list(embed_cube(model, cube, boxes, stats, device, spec.batch_size, amp, spec.nan)))
            write_json(parts / f"{k:06d}.json", boxes)
            save_npy(done, feats.numpy())
        feats, rows = [], []
        for k, path in enumerate(paths):
            f = np.load(parts / f"{k:06d}.npy")
            boxes = read_json(parts / f"{k:06d}.json")
            rows += [[len(rows) + i, relative_name(path, base), *([labels[k]] if labels else []), *box]
                     for i, box in enumerate(boxes)]
            feats.append(f)
        features = np.concatenate(feats).astype(np.float32)
        save_npy(out / "features.npy", features)
        header = ["row", "path", *(["label"] if labels else []), "top", "left", "height", "width"]
        write_csv(out / "index.csv", header, rows)
        how = ("whole cubes" if not spec.tile else "every stride pixels; the last window of a row or column is moved "
               "back to end at the cube's edge (it may overlap the one before)")
        summary = {"init": spec.init if not Path(spec.init).exists() else Path(spec.init).name, "model": name,
                   "cubes": len(paths), "features": list(features.shape), "tile": spec.tile,
                   "stride": spec.stride or spec.tile, "windows": how, "normalisation": norm, "amp": amp,
                   "device": device.type,
                   "bands": first.num_bands,
                   "wavelengths_nm": None if first.wavelengths is None else first.wavelengths.tolist()}
        write_json(out / "embed.json", summary)
        _remove_parts(parts)
        return summary


def _remove_parts(parts: Path) -> None:
    """Remove the files embed wrote under ``parts`` (and the folder once empty), nothing else."""
    for f in parts.iterdir():
        if _PART_FILE.match(f.name):
            f.unlink()
    if not any(parts.iterdir()):
        parts.rmdir()
