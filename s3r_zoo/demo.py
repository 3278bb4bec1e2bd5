"""``s3r-zoo demo``: the zoo's main job, end to end on this machine.

1. Band adaptation: take a 41-band (380-780 nm, FDA HIMS) S3R checkpoint, build a
   B-band encoder resampled by wavelength (default 40 bands, 450-750 nm) through
   ``timm.create_model(..., pretrained=True)``, run it, print its band info and timings.
   Released weights are used when ``weights/`` (or ``$S3R_ZOO_WEIGHTS``) holds them;
   otherwise the demo writes an untrained, clearly-labelled 41-band checkpoint so the
   loading path still runs for real.
2. The main job in miniature: simulate a small ``pdac_like`` set (40 bands), pre-train
   S3R-CR on its training split, export, reload through ``timm.create_model(pretrained=True)``,
   fine-tune with 25 % of the labels from that checkpoint and from scratch, print a table.

Everything lands in ``demo.json`` and the ``pretrain/`` and ``finetune/`` folders.
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import numpy as np
import timm
import torch

from .bands import band_info
from .checkpoint import save_checkpoint
from .data.simulated_sets import write_dataset
from .files import write_json
from .finetune import FinetuneSpec, run_finetune
from .models import BAND_SETS, arch_of
from .pretrain import PretrainSpec, run_pretrain
from .progress import progress
from .version import __version__
from .weights import find_local_weights

__all__ = ["run_demo", "demo_checkpoint", "pretrain_finetune_demo"]

DEMO_TAG = "cr_hims41_v2"


def demo_checkpoint(model_name: str, out_dir: Path, seed: int = 0) -> Path:
    """Write an UNTRAINED 41-band checkpoint (random init) in the zoo format."""
    hims = BAND_SETS["hims41"]
    torch.manual_seed(seed)
    model = timm.create_model(model_name, pretrained=False, in_chans=hims.in_chans, num_classes=0)
    path = out_dir / f"{model_name}.demo_untrained_hims41.safetensors"
    save_checkpoint(path, model.state_dict(), architecture=arch_of(model_name), objective="none",
                    data=f"untrained demo checkpoint (random init, seed {seed}); not pre-trained",
                    recipe={"init": "random", "seed": seed}, wavelengths_nm=hims.wavelengths_nm,
                    mean=hims.mean, std=hims.std)
    return path


def _test_input(batch: int, bands: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random spectra (sums of a few broad Gaussians), normalised per band."""
    g = torch.Generator().manual_seed(seed)
    lam = torch.linspace(0, 1, bands)
    centres = torch.rand(3, generator=g)
    basis = torch.exp(-((lam[None] - centres[:, None]) / 0.2) ** 2)  # (3, B)
    abundances = torch.rand(batch, 3, size, size, generator=g)
    x = torch.einsum("kb,nkhw->nbhw", basis, abundances)
    return (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)


def pretrain_finetune_demo(out: Path, epochs: int = 3, finetune_epochs: int = 10, label_fraction: float = 0.25) -> dict:
    """The main job in miniature, on the embedded simulator (CPU-sized).

    Simulate a small pdac_like set -> S3R-CR on its training split -> export ->
    ``timm.create_model('s3r_resnet18', in_chans=40, pretrained=True, ...)`` -> fine-tune
    with few labels from that checkpoint and from scratch -> a small table.

    pdac_like, not plgc_like: plgc_like classes differ at the gland level (goblet cells,
    gland shape), which needs >= 128-px images; pdac_like also differs in nuclei and
    stroma everywhere, so 48-px cubes carry the signal and the demo stays CPU-sized.
    """
    data = out / "pdac_sim"
    print(f"\nsimulating a small pdac_like set (normal / carcinoma, 40 bands 450-750 nm) in {data}")
    write_dataset(data, "pdac_like", n=120, size=48, seed=0)
    print(f"pre-training s3r_resnet18 with S3R-CR on its training split ({epochs} epochs)")
    summary = run_pretrain(PretrainSpec(data=str(data / "train.txt"), out=str(out / "pretrain"),
                                        model="s3r_resnet18", objective="cr", epochs=epochs, batch_size=8, crop=48,
                                        crops_per_cube=2, mask_patch=8, lr=3e-4))
    wavelengths = list(np.linspace(450, 750, 40))
    model = timm.create_model("s3r_resnet18", pretrained=True, in_chans=40, wavelengths=wavelengths, num_classes=2,
                              pretrained_cfg_overlay=dict(file=summary["checkpoint"]))
    print(f"exported     {summary['checkpoint']} -> timm.create_model(pretrained=True): "
          f"{band_info(model).source}")
    rows = {}
    for name, init in (("S3R-CR (this run)", summary["checkpoint"]), ("scratch", "scratch")):
        print(f"fine-tuning from {name} with {int(label_fraction * 100)} % of the training labels")
        agg = run_finetune(FinetuneSpec(data=str(data), out=str(out / "finetune" / name.split()[0].lower()),
                                        init=init, epochs=finetune_epochs, batch_size=8, crop=48,
                                        label_fraction=label_fraction, lr=1e-3, max_degrees=0))
        rows[name] = agg["runs"][0]
    print(f"\n{'init':<20}{'test acc':>9}{'bal. acc':>9}{'best epoch':>11}   (simulated, CPU-sized: not a benchmark)")
    for name, r in rows.items():
        print(f"{name:<20}{100 * r['accuracy']:>8.1f}%{100 * r['balanced_accuracy']:>8.1f}%{r['best_epoch']:>11}")
    print(f"outputs      {out / 'pretrain'} (loss_curve.png, beta_profile.png), {out / 'finetune'} "
          f"(metrics.json, confusion_matrix.png per seed)")
    return {"pretrain": {k: summary[k] for k in ("checkpoint", "epochs", "final_loss", "wall_time_s")},
            "finetune": {k: {m: r[m] for m in ("accuracy", "balanced_accuracy", "best_epoch", "train_size")}
                         for k, r in rows.items()}}


def run_demo(model_name: str = "s3r_resnet50", bands: int = 40, range_nm: tuple[float, float] = (450.0, 750.0),
             size: int = 224, batch_size: int = 2, repeats: int = 5, out_dir: str = "runs/demo",
             pretrain_epochs: int = 3) -> dict:
    """Run the demo and return (and write) its results."""
    if bands < 1:
        raise ValueError(f"--bands: expected >= 1, found {bands}")
    if repeats < 1:
        raise ValueError(f"--repeats: expected >= 1, found {repeats}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = find_local_weights(f"{model_name}.{DEMO_TAG}")
    released = ckpt is not None
    if ckpt is None:
        ckpt = demo_checkpoint(model_name, out)
    wavelengths = np.linspace(range_nm[0], range_nm[1], bands).tolist() if bands > 1 else [float(range_nm[0])]

    t0 = time.perf_counter()
    model = timm.create_model(model_name, pretrained=True, in_chans=bands, wavelengths=wavelengths,
                              num_classes=0, pretrained_cfg_overlay=dict(file=str(ckpt))).eval()
    create_s = time.perf_counter() - t0
    info = band_info(model)
    x = _test_input(batch_size, bands, size)
    times = []
    with torch.inference_mode():
        feats = model(x)  # warm-up
        for _ in progress(range(repeats), desc="forward", unit="pass"):
            t = time.perf_counter()
            feats = model(x)
            times.append(time.perf_counter() - t)
    fwd = statistics.median(times)

    print(f"\ns3r-zoo demo  ({model_name}, {'released' if released else 'UNTRAINED demo'} checkpoint)")
    print(f"checkpoint   {ckpt}")
    print(f"bands        {info.source}")
    print(f"{'band':>5} {'nm':>8} {'mean':>8} {'std':>8}")
    shown = sorted({0, 1, bands // 2, bands - 2, bands - 1} & set(range(bands)))
    for i in shown:
        wl = f"{info.wavelengths_nm[i]:8.1f}" if info.wavelengths_nm else f"{'?':>8}"
        print(f"{i:>5} {wl} {info.mean[i]:8.4f} {info.std[i]:8.4f}")
    print(f"input        {tuple(x.shape)} -> features {tuple(feats.shape)}")
    print(f"create_model {create_s * 1e3:.0f} ms; forward median {fwd * 1e3:.1f} ms over {repeats} "
          f"({batch_size / fwd:.1f} img/s, CPU threads {torch.get_num_threads()})")

    result = {
        "model": model_name, "checkpoint": str(ckpt), "released_weights": released,
        "in_chans": bands, "wavelengths_nm": info.wavelengths_nm, "mean": info.mean, "std": info.std,
        "band_source": info.source, "input_shape": list(x.shape), "output_shape": list(feats.shape),
        "create_model_s": create_s, "forward_median_s": fwd, "forward_all_s": times,
        "versions": {"s3r_zoo": __version__, "timm": timm.__version__, "torch": torch.__version__},
        "machine": platform.platform(), "device": "cpu",
    }
    if pretrain_epochs > 0:
        result["main_job"] = pretrain_finetune_demo(out, epochs=pretrain_epochs)
    path = out / "demo.json"
    write_json(path, result)
    print(f"results      {path}")
    return result
