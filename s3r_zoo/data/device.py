"""A training set held on the training device: cubes loaded once, crops cut there in batches.

When the data fit in a share of the GPU's memory (523 scenes of 512 x 612 x 40 in float16 are
~13 GB; an H200 has 139 GiB), reading, cropping and copying every crop through DataLoader workers
and the host is the bottleneck of a fast GPU. :class:`DeviceCubes` loads every cube of a
:class:`~s3r_zoo.data.datasets.CubeDataset` once (NaN policy and band selection / resampling applied
per cube), keeps them as one padded tensor on the device, and cuts each batch of crops with one
gather: no worker, no host copy of pixels per step. The crops are the loader path's: the same cube,
top and left for each item of an epoch and seed (``CubeDataset.crop_box``), so a run gives the same
numbers either way, except where ``--nan band_mean`` or ``inpaint`` repairs values (the loader repairs
each crop with the crop's band means, this path each cube with the cube's).

``--data-on-device auto`` (the default) chooses this path on a GPU when the cubes take at most
:data:`DEVICE_SHARE` of its free memory, and the loader everywhere else; ``on`` forces it (also on CPU,
where it is how the equivalence is tested), ``off`` never uses it.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from .datasets import CubeDataset
from .nan import apply_nan_policy

__all__ = ["DeviceCubes", "DEVICE_SHARE", "use_device_data", "data_bytes", "upload"]

DEVICE_SHARE = 0.5  # auto: the cubes may take this share of the GPU's free memory (the rest: model, activations)


def _storage_dtype(dataset: CubeDataset) -> torch.dtype:
    """float16 when every file stores float16 and nothing changes the values; float32 otherwise."""
    same = dataset.bands is None and dataset.target_wavelengths is None
    kinds = {np.dtype(dataset.cube(i).data.dtype) for i in range(len(dataset.items))}
    return torch.float16 if same and kinds == {np.dtype(np.float16)} else torch.float32


def data_bytes(dataset: CubeDataset) -> int:
    """Bytes :class:`DeviceCubes` would hold for ``dataset`` (cubes padded to the largest height and width)."""
    shapes = [dataset.cube(i).shape for i in range(len(dataset.items))]
    bands = shapes[0][2] if dataset.bands is None else len(dataset.bands)
    if dataset.target_wavelengths is not None:
        bands = len(dataset.target_wavelengths)
    size = 2 if _storage_dtype(dataset) == torch.float16 else 4
    return len(shapes) * max(s[0] for s in shapes) * max(s[1] for s in shapes) * bands * size


def use_device_data(mode: str, dataset: Dataset, device: torch.device) -> bool:
    """Whether ``--data-on-device MODE`` (auto, on, off: declared with the option, ``RunSpec``) puts ``dataset``
    on ``device`` (see the module text)."""
    if mode not in ("auto", "on") or not isinstance(dataset, CubeDataset) or dataset.transform is not None:
        return False
    if mode == "on":
        return True
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return data_bytes(dataset) <= DEVICE_SHARE * free


def upload(host: torch.Tensor, device) -> torch.Tensor:
    """``host`` on ``device`` without the host waiting for it: to a GPU from pinned memory, non-blocking (a
    copy from pageable memory waits for the GPU's stream to finish its queued work); elsewhere a plain move."""
    if torch.device(device).type == "cuda":
        return host.pin_memory().to(device, non_blocking=True)
    return host.to(device)


class DeviceCubes(Dataset):
    """The items of ``dataset`` (a :class:`CubeDataset` without ``transform`` or ``stats``), cut on ``device``.

    ``dataset[i]`` still works (band statistics use it); training reads whole batches through
    :meth:`batches`, which the trainer's epoch loader uses in place of a DataLoader.
    """

    def __init__(self, dataset: CubeDataset, device: torch.device):
        if dataset.transform is not None or dataset.stats is not None:
            raise ValueError("DeviceCubes: the dataset's transform and stats would be skipped; give a dataset "
                             "without them (the objectives normalise and augment on the device)")
        if dataset.crop_mode == "none" and len({dataset.cube(i).shape[:2] for i in range(len(dataset.items))}) > 1:
            raise ValueError("DeviceCubes: whole cubes of different sizes cannot share a batch; give a crop")
        self.dataset, self.device = dataset, torch.device(device)
        dtype = _storage_dtype(dataset)
        shapes = [dataset.cube(i).shape for i in range(len(dataset.items))]
        h, w = max(s[0] for s in shapes), max(s[1] for s in shapes)
        self.cubes: Optional[torch.Tensor] = None
        for i in range(len(dataset.items)):
            cube = dataset.cube(i)
            data = np.asarray(cube.data, dtype=np.float32) if dtype == torch.float32 else np.asarray(cube.data)
            if dataset.nan != "keep":
                data = apply_nan_policy(data, dataset.nan, str(cube.path), cube.wavelengths)
            data = dataset._band_op(cube)(data) if dtype == torch.float32 else data
            if self.cubes is None:
                self.cubes = torch.zeros(len(shapes), h, w, data.shape[2], dtype=dtype, device=self.device)
            self.cubes[i, :data.shape[0], :data.shape[1]] = torch.tensor(data, dtype=dtype, device=self.device)
        self.labels = torch.tensor([lbl for _, lbl in dataset.items], device=self.device)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int):
        return self.dataset[idx]

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops ``(N, B, h, w)`` float32 (channels_last in memory) and labels of items ``indices``."""
        boxes = [self.dataset.crop_box(i) for i in indices]
        ch, cw = boxes[0][3], boxes[0][4]
        where = torch.tensor([b[:3] for b in boxes])  # (N, 3): cube, top, left; one upload, no host wait
        cube, top, left = upload(where, self.device).unbind(1)
        rows = top[:, None] + torch.arange(ch, device=self.device)
        cols = left[:, None] + torch.arange(cw, device=self.device)
        x = self.cubes[cube[:, None, None], rows[:, :, None], cols[:, None, :]]  # (N, h, w, B): one gather
        return x.permute(0, 3, 1, 2).float(), self.labels[cube]

    def batches(self, order: Iterable[int], batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``order`` (a sampler's indices; an incomplete last batch is dropped)."""
        chunk: list[int] = []
        for idx in order:
            chunk.append(idx)
            if len(chunk) == batch_size:
                yield self.batch(chunk)
                chunk = []
