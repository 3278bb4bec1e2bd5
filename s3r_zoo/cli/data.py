"""``s3r-zoo data ...``: inspect, simulate, split, convert, QC and summarise hyperspectral data."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.nan import NAN_POLICIES
from ..data.chemistry import CUES
from ..data.synthetic import PRESETS

__all__ = ["add_data"]


def add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect, simulate and summarise hyperspectral data")
    dsub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    dsub.required = True

    info = dsub.add_parser("info", help="shape, wavelengths, NaN/Inf, per-band stats, low-rank R2, PNG preview")
    info.add_argument("path", help="cube file, HIMS folder, or a folder of cubes (each reported)")
    info.add_argument("--nan", default="keep", choices=NAN_POLICIES,
                      help="NaN/Inf policy while reading (default keep: report them)")
    _add_read_options(info)
    info.add_argument("--out", help="folder for <name>_preview.png and <name>_report.json (default: print only)")
    info.set_defaults(func=_run_data_info)

    synth = dsub.add_parser("synth", help="simulate a labelled H&E hyperspectral data set with split files")
    synth.add_argument("--preset", default="plgc_like", choices=sorted(PRESETS))
    synth.add_argument("--n", type=int, default=300, help="number of cubes")
    synth.add_argument("--size", type=int, default=256, help="height and width in pixels")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--difficulty", type=float, default=None, help="0 (easy) .. 1 (hard); default 0.5")
    synth.add_argument("--magnification", type=float, default=1.0,
                       help="lengths in pixels relative to the default magnification (below 1: whole glands in small "
                            "tiles)")
    synth.add_argument("--stain-balance", type=float, default=1.0,
                       help="0..1: how much of the classes' difference in total stain is removed (1: the class "
                            "lives in morphology, not in the mean spectrum)")
    synth.add_argument("--cues", default="M", choices=CUES,
                       help="where the classes differ: M morphology (default), C local chemistry (the oxygen "
                            "saturation of red cells, hidden from the mean spectrum), M+C both")
    synth.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    synth.add_argument("--out", required=True, help="output folder")
    synth.set_defaults(func=_run_data_synth)

    stats = dsub.add_parser("stats", help="per-band mean/std over a data set in one pass, saved as JSON")
    stats.add_argument("path", help="folder of cubes, a split file, or a cube")
    stats.add_argument("--out", required=True, help="JSON file to write")
    stats.add_argument("--nan", default="error", choices=[p for p in NAN_POLICIES if p != "keep"])
    stats.set_defaults(func=_run_data_stats)
    _add_data_split(dsub)
    _add_data_convert(dsub)
    _add_data_qc(dsub)


def _add_data_split(dsub) -> None:
    split = dsub.add_parser("split", help="train/val/test split files (or k folds), stratified by class and "
                                          "grouped by patient")
    split.add_argument("source", help="folder with one sub-folder per class, or a CSV with the header "
                                      "path,label[,patient]")
    split.add_argument("--out", required=True, help="folder for the split files and split_summary.json")
    split.add_argument("--ratios", type=float, nargs=3, default=(0.7, 0.15, 0.15), metavar=("TRAIN", "VAL", "TEST"),
                       help="shares of the scans per split (default 0.7 0.15 0.15; 0 drops a split)")
    split.add_argument("--folds", type=int, default=0,
                       help="k >= 2: hold out the test share once (the val share is then unused), then k "
                            "patient-grouped folds fold_<i>/train.txt|val.txt")
    split.add_argument("--seed", type=int, default=0)
    split.set_defaults(func=_run_data_split)


def _run_data_split(args: argparse.Namespace) -> int:
    from ..data.split import format_summary, split_labels

    summary = split_labels(args.source, args.out, args.ratios, args.folds, args.seed)
    print(format_summary(summary))
    print(f"-> {args.out}: {', '.join(f'{n}.txt' for n in summary['splits'])}, split_summary.json")
    return 0


def _add_data_convert(dsub) -> None:
    conv = dsub.add_parser("convert", help="decode cubes of any format once into memory-mappable .npy files "
                                           "(+ wavelength sidecars), for training at npy speed")
    conv.add_argument("source", help="a cube file, a HIMS folder, or a folder of cubes (its layout is kept)")
    conv.add_argument("--out", required=True, help="output folder")
    _add_read_options(conv)
    conv.set_defaults(func=_run_data_convert)


def _run_data_convert(args: argparse.Namespace) -> int:
    from ..data.convert import convert_cubes

    files = convert_cubes(args.source, args.out, **_read_options(args))
    print(f"{len(files)} cube(s) -> {args.out} (.npy, float32, bands last; wavelengths in <name>.wavelengths_nm.txt)")
    return 0


def _add_data_qc(dsub) -> None:
    qc = dsub.add_parser("qc", help="per cube: noise bands (leave-one-band-out R2), NaN/Inf, saturation and a "
                                    "low-rank residual map of artefacts; JSON + PNG, and a ranking CSV for a folder")
    qc.add_argument("path", help="a cube file, a HIMS folder, or a folder of cubes")
    qc.add_argument("--out", required=True, help="folder for <name>_qc.json, <name>_qc.png (and qc_ranking.csv)")
    qc.add_argument("--r2-min", type=float, default=0.1,
                    help="bands whose leave-one-band-out R2 is below this are flagged as noise (default 0.1; "
                         "below 0.5 they are listed as weak)")
    qc.add_argument("--z", type=float, default=5.0,
                    help="residual score above which a pixel counts as an artefact (default 5)")
    _add_read_options(qc)
    qc.set_defaults(func=_run_data_qc)


def _run_data_qc(args: argparse.Namespace) -> int:
    from ..data.qc import qc_source

    qc_source(args.path, args.out, args.r2_min, args.z, **_read_options(args))
    return 0


def _add_read_options(p: argparse.ArgumentParser) -> None:
    """How to read a cube whose file does not say it all (``_read_options`` turns them into read_cube options)."""
    p.add_argument("--key", help="variable name inside .npz/.mat/.h5 files")
    p.add_argument("--band-axis", type=int, help="axis of the bands in the stored array")
    p.add_argument("--wavelengths-file", help="text file with one band centre (nm) per line")


def _read_options(args: argparse.Namespace) -> dict:
    opts = {k: v for k, v in (("key", args.key), ("band_axis", args.band_axis)) if v is not None}
    if args.wavelengths_file:
        import numpy as np

        opts["wavelengths"] = np.loadtxt(args.wavelengths_file, ndmin=1)
    return opts


def _run_data_info(args: argparse.Namespace) -> int:
    from ..data.report import report_source

    report_source(args.path, args.out, nan=args.nan, **_read_options(args))
    return 0


def _run_data_synth(args: argparse.Namespace) -> int:
    from ..data.synthetic import DEFAULT_DIFFICULTY
    from ..data.simulated_sets import write_dataset

    meta = write_dataset(args.out, preset=args.preset, n=args.n, size=args.size, seed=args.seed,
                         difficulty=DEFAULT_DIFFICULTY if args.difficulty is None else args.difficulty,
                         dtype=args.dtype, magnification=args.magnification, stain_balance=args.stain_balance,
                         cues=args.cues)
    print(f"wrote {meta['n']} {args.preset} cubes to {args.out}: split {meta['split_sizes']}, "
          f"classes {meta['class_counts']}")
    return 0


def _run_data_stats(args: argparse.Namespace) -> int:
    from ..data.datasets import open_source
    from ..data.stats import compute_band_stats

    if Path(args.out).is_dir():
        raise ValueError(f"--out {args.out}: expected a JSON file to write, found a folder")
    ds = open_source(args.path, nan=args.nan, crop_mode="none")
    first = ds.cube(0)
    stats = compute_band_stats(ds, num_bands=first.num_bands, wavelengths=first.wavelengths, total=len(ds))
    stats.save(args.out)
    print(f"{len(ds)} cubes, {stats.count} values per band -> {args.out}")
    return 0
