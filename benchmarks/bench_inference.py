"""Forward throughput of s3r_resnet50 vs timm resnet50 on the same input, side by side.

Target (issue 2): s3r_resnet50 >= 0.98x timm resnet50. Both are timm's ResNet class, so
the ratio measures that the zoo adds nothing to the forward pass (no wrappers, hooks or
extra ops); it must come out at ~1.0 within noise.

    python benchmarks/bench_inference.py [--bands 40] [--size 224] [--batch-size 4] [--repeats 15]
"""

from __future__ import annotations

import argparse

import timm
import torch

import s3r_zoo  # noqa: F401  (registers s3r_* models)
from _common import environment, interleaved_medians, median, write_result

TARGET = 0.98


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bands", type=int, default=40)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    device = torch.device(args.device)

    torch.manual_seed(0)
    models = {
        "timm resnet50": timm.create_model("resnet50", in_chans=args.bands, num_classes=0),
        "s3r_resnet50": timm.create_model("s3r_resnet50", in_chans=args.bands, num_classes=0),
    }
    # identical weights, so both do exactly the same arithmetic
    models["s3r_resnet50"].load_state_dict(models["timm resnet50"].state_dict())
    x = torch.randn(args.batch_size, args.bands, args.size, args.size, device=device)
    fns = {}
    for name, m in models.items():
        m.to(device).eval()
        fns[name] = (lambda m=m: m(x))
    with torch.inference_mode():
        times = interleaved_medians(fns, repeats=args.repeats, warmup=args.warmup, device=device)

    med = {k: median(v) for k, v in times.items()}
    ratio = med["timm resnet50"] / med["s3r_resnet50"]  # throughput of ours / theirs
    rows = [(k, med[k] * 1e3, args.batch_size / med[k]) for k in models]
    payload = {
        "name": "inference", "input": [args.batch_size, args.bands, args.size, args.size],
        "median_s": med, "all_s": times, "throughput_ratio_s3r_over_timm": ratio, "target": TARGET,
        "meets_target": ratio >= TARGET, **environment(device),
    }
    path = write_result("inference", payload)
    print(f"\nforward, input {tuple(x.shape)}, {payload['device']}, median of {args.repeats} interleaved rounds")
    print(f"{'model':<16}{'ms/batch':>10}{'img/s':>10}")
    for name, ms, ips in rows:
        print(f"{name:<16}{ms:>10.1f}{ips:>10.1f}")
    print(f"throughput ratio s3r_resnet50 / resnet50 = {ratio:.3f} (target >= {TARGET}: "
          f"{'met' if ratio >= TARGET else 'NOT met'})  -> {path}")


if __name__ == "__main__":
    main()
