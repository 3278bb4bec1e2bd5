"""The ``s3r-zoo`` command line: thin argument parsing over library functions.

``pretrain`` and ``finetune`` options are generated from their spec dataclasses
(:mod:`s3r_zoo.options`); a ``--config`` YAML and the command line go through the same
checks. The modules that only one command needs (benchmarks, hub, plots) are imported
when that command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from .data.io import NAN_POLICIES
from .data.synthetic import PRESETS
from .finetune import FinetuneSpec
from .models.names import MODEL_NAMES
from .options import add_arguments, build_spec, load_yaml
from .pretrain.spec import PretrainSpec
from .train.engine import AMP_MODES, NonFiniteError
from .version import __version__

__all__ = ["main", "build_parser"]


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="create a band-adapted S3R model, run it, print band info and timings",
                       description="Create a B-band S3R encoder from a 41-band (380-780 nm) checkpoint, "
                                   "resampled by wavelength to the target bands, and time a forward pass.")
    p.add_argument("--model", default="s3r_resnet50", choices=MODEL_NAMES)
    p.add_argument("--bands", type=int, default=40, help="target band count (default 40)")
    p.add_argument("--range-nm", type=float, nargs=2, default=(450.0, 750.0), metavar=("FIRST", "LAST"),
                   help="centres of the first and last target band in nm (default 450 750)")
    p.add_argument("--size", type=int, default=224, help="input height and width in pixels")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5, help="timed forward passes (median reported)")
    p.add_argument("--out", default="runs/demo", help="folder for demo.json and the demo checkpoint")
    p.add_argument("--pretrain-epochs", type=int, default=3, help="epochs of the S3R-CR step (0 skips it)")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(model_name=args.model, bands=args.bands, range_nm=tuple(args.range_nm), size=args.size,
             batch_size=args.batch_size, repeats=args.repeats, out_dir=args.out,
             pretrain_epochs=args.pretrain_epochs)
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="inspect, simulate and summarise hyperspectral data")
    dsub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    dsub.required = True

    info = dsub.add_parser("info", help="shape, wavelengths, NaN/Inf, per-band stats, low-rank R2, PNG preview")
    info.add_argument("path", help="cube file or HIMS folder")
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
                       help="lengths in pixels relative to the default magnification (0.75: whole glands in small "
                            "tiles, as bench labels uses)")
    synth.add_argument("--stain-balance", type=float, default=1.0,
                       help="0..1: how much of the classes' difference in total stain is removed (1: the class "
                            "lives in morphology, not in the mean spectrum)")
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
    from .data.split import format_summary, make_splits, read_labels, write_splits
    from .files import check_writable_dir

    check_writable_dir(args.out)
    scans, has_patient = read_labels(args.source)
    splits, classes = make_splits(scans, args.ratios, args.folds, args.seed)  # every refusal before any write
    summary = write_splits(args.out, splits, classes, has_patient, args.seed, args.ratios, args.folds)
    print(format_summary(summary))
    print(f"-> {args.out}: {', '.join(f'{n}.txt' for n in splits)}, split_summary.json")
    return 0


def _add_data_convert(dsub) -> None:
    conv = dsub.add_parser("convert", help="decode cubes of any format once into memory-mappable .npy files "
                                           "(+ wavelength sidecars), for training at npy speed")
    conv.add_argument("source", help="a cube file, a HIMS folder, or a folder of cubes (its layout is kept)")
    conv.add_argument("--out", required=True, help="output folder")
    _add_read_options(conv)
    conv.set_defaults(func=_run_data_convert)


def _run_data_convert(args: argparse.Namespace) -> int:
    from .data.cache import convert_cube
    from .data.datasets import cube_sources
    from .files import check_writable_dir
    from .progress import progress

    src, out = Path(args.source), Path(args.out)
    check_writable_dir(out)
    files, single = cube_sources(src)
    opts = _read_options(args)
    for f in progress(files, desc="convert", unit="cube", disable=single):
        rel = Path(f.name) if single else f.relative_to(src)
        convert_cube(f, out / rel.with_suffix(".npy"), **opts)
    print(f"{len(files)} cube(s) -> {out} (.npy, float32, bands last; wavelengths in <name>.wavelengths_nm.txt)")
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
    from .data.datasets import cube_sources
    from .data.io import read_cube
    from .data.qc import cube_qc, save_qc_png
    from .files import check_writable_dir, write_csv, write_json
    from .progress import progress

    src, out = Path(args.path.rstrip("/")), Path(args.out)
    if not 0 <= args.r2_min <= 1 or args.z <= 0:
        raise ValueError(f"--r2-min: expected 0..1, found {args.r2_min}; --z: expected > 0, found {args.z}")
    check_writable_dir(out)
    files, single = cube_sources(src)
    rows = []
    for f in progress(files, desc="qc", unit="cube", disable=len(files) < 2):
        cube = read_cube(f, nan="keep", **_read_options(args))
        record, score = cube_qc(cube, args.r2_min, args.z)
        rel = f.name if single else f.relative_to(src).as_posix()
        record["path"] = rel  # relative to what was given: no machine path in the outputs
        stem = rel.replace("/", "__").rsplit(".", 1)[0] if not Path(rel).is_dir() else rel.replace("/", "__")
        write_json(out / f"{stem}_qc.json", record)
        save_qc_png(cube, record, score, out / f"{stem}_qc.png", title=f"{rel}: QC score {record['qc_score']:g}")
        rows.append(record)
        noise = ", ".join(f"{n['nm']:g} nm" if n["nm"] is not None else f"band {n['band']}"
                          for n in record["noise_bands"]) or "none"
        weak = record["weakest_kept_band"]
        print(f"{rel}: QC score {record['qc_score']:g} ({100 * record['artefact_fraction']:.2f} % artefact pixels, "
              f"{record['nonfinite_pixels']} NaN/Inf pixels); noise bands: {noise}; weakest of the rest: "
              f"{weak['nm'] if weak['nm'] is not None else 'band ' + str(weak['band'])}"
              f"{' nm' if weak['nm'] is not None else ''} (R2 {weak['r2']:.3f})")
    if not single:
        write_csv(out / "qc_ranking.csv",
                  ["path", "qc_score", "artefact_fraction", "nonfinite_pixels", "saturated_values", "noise_bands",
                   "weakest_kept_band_r2"],
                  [[r["path"], r["qc_score"], f"{r['artefact_fraction']:.6f}", r["nonfinite_pixels"],
                    sum(r["saturated_per_band"].values()), " ".join(str(n["band"]) for n in r["noise_bands"]),
                    r["weakest_kept_band"]["r2"]] for r in sorted(rows, key=lambda r: -r["qc_score"])])
        print(f"ranking (worst first) -> {out / 'qc_ranking.csv'}")
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
    from .data.io import read_cube
    from .data.report import cube_report, format_report, save_preview
    from .files import write_json

    cube = read_cube(args.path, nan=args.nan, **_read_options(args))
    rep = cube_report(cube)
    print(format_report(rep))
    if args.out:
        stem = Path(args.path.rstrip("/")).stem
        preview = save_preview(cube, Path(args.out) / f"{stem}_preview.png")
        report = write_json(Path(args.out) / f"{stem}_report.json", rep)
        print(f"preview: {preview}\nreport:  {report}")
    return 0


def _run_data_synth(args: argparse.Namespace) -> int:
    from .data.synthetic import DEFAULT_DIFFICULTY, write_dataset

    meta = write_dataset(args.out, preset=args.preset, n=args.n, size=args.size, seed=args.seed,
                         difficulty=DEFAULT_DIFFICULTY if args.difficulty is None else args.difficulty,
                         dtype=args.dtype, magnification=args.magnification, stain_balance=args.stain_balance)
    print(f"wrote {meta['n']} {args.preset} cubes to {args.out}: split {meta['split_sizes']}, "
          f"classes {meta['class_counts']}")
    return 0


def _run_data_stats(args: argparse.Namespace) -> int:
    from .data.datasets import CubeDataset, SplitFileDataset, UnlabelledCubes
    from .data.stats import compute_band_stats

    p = Path(args.path)
    if p.is_file() and p.suffix == ".txt":
        ds: CubeDataset = SplitFileDataset(p, nan=args.nan, crop_mode="none")
    else:
        ds = UnlabelledCubes(p, nan=args.nan, crop_mode="none")
    first = ds.cube(0)
    stats = compute_band_stats(ds, num_bands=first.num_bands, wavelengths=first.wavelengths, total=len(ds))
    stats.save(args.out)
    print(f"{len(ds)} cubes, {stats.count} values per band -> {args.out}")
    return 0


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file whose keys are the long option names (with underscores); "
                                    "options given on the command line win")


def _add_pretrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="S3R pre-training (CR / BR / ablation / baselines); exports the encoder",
                       description="Pre-train an encoder with S3R and export it in the zoo's safetensors format. "
                                   "Options not given fall back to --config (YAML), then to the defaults.")
    _add_config(p)
    add_arguments(p, PretrainSpec)
    p.set_defaults(func=_run_pretrain, spec_cls=PretrainSpec)


def _spec(args: argparse.Namespace):
    """The command's spec from --config (YAML) with the options given on the command line on top."""
    from_file = load_yaml(args.config)
    if from_file:  # checked on its own first, so an error names the file when the file is wrong
        build_spec(args.spec_cls, from_file, where=f"--config {args.config}")
    skip = {"func", "command", "verbose", "config", "spec_cls"}
    given = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    return build_spec(args.spec_cls, {**from_file, **given}, where="options")


def _run_pretrain(args: argparse.Namespace) -> int:
    from .pretrain.run import run_pretrain

    summary = run_pretrain(_spec(args))
    if "checkpoint" in summary:
        print(f"{summary['epochs']} epochs ({summary['stop']}), final loss {summary['final_loss']:.4f}, "
              f"{summary['wall_time_s']:.0f} s -> {summary['checkpoint']}")
    return 0


def _add_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune / linear-probe a checkpoint; test metrics over seeds",
                       description="Published protocol: AdamW lr 1e-4 with linear decay, augmentation, validation "
                                   "every epoch, best-on-validation weights, test once; mean +- std over seeds.")
    _add_config(p)
    add_arguments(p, FinetuneSpec)
    p.set_defaults(func=_run_finetune, spec_cls=FinetuneSpec)


def _run_finetune(args: argparse.Namespace) -> int:
    from .finetune import run_finetune

    spec = _spec(args)
    agg = run_finetune(spec)
    print(f"\n{'metric':<20}{'mean':>8}{'std':>8}   ({spec.seeds} seed(s), init={spec.init})")
    for k, v in agg["aggregate"].items():
        print(f"{k:<20}{100 * v['mean']:>7.2f}%{100 * v['std']:>7.2f}")
    print(f"-> {spec.out}/aggregate.json")
    return 0


def _add_embed(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="encoder features of a folder, split file or cube -> features.npy + index.csv",
                       description="Whole-cube or tiled features from a tag, a checkpoint or an hf-hub: id, the "
                                   "stem adapted to the data's bands by wavelength. Resumable: run the same command "
                                   "again after an interruption.")
    p.add_argument("source", help="folder of cubes, split file (<path> <label> lines) or one cube")
    p.add_argument("--init", required=True, help="a tag (s3r_resnet50.cr_hims41_v2), a checkpoint file, or "
                                                 "hf-hub:ORG/NAME")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", choices=MODEL_NAMES, help="architecture (default: the checkpoint's or tag's)")
    p.add_argument("--tile", type=int, help="window side in pixels (default: one feature per whole cube)")
    p.add_argument("--stride", type=int, help="step between windows (default: --tile)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per forward pass (default 16)")
    p.add_argument("--amp", default="auto", choices=AMP_MODES, help="auto: bf16 where the CPU or GPU runs it natively")
    p.add_argument("--nan", default="error", choices=[x for x in NAN_POLICIES if x != "keep"],
                   help="NaN/Inf in the cubes: refuse (error) or repair them")
    p.add_argument("--wavelengths", type=float, nargs="+", metavar="NM",
                   help="band centres of the data in nm (if its files have none)")
    p.set_defaults(func=_run_embed)


def _run_embed(args: argparse.Namespace) -> int:
    from .embed import EmbedSpec, run_embed

    s = run_embed(EmbedSpec(source=args.source, out=args.out, init=args.init, model=args.model, tile=args.tile,
                            stride=args.stride, batch_size=args.batch_size, amp=args.amp, nan=args.nan,
                            wavelengths=args.wavelengths))
    print(f"{s['cubes']} cube(s) -> {s['features'][0]} feature vectors of {s['features'][1]} ({s['model']}, "
          f"normalised by {s['normalisation']}) -> {args.out}/features.npy, index.csv")
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="class probabilities of new cubes from a fine-tuned checkpoint -> CSV "
                                       "(+ heatmaps of tiled scenes)")
    p.add_argument("source", help="folder of cubes, split file (<path> <label>: accuracy is reported) or one cube")
    p.add_argument("--checkpoint", required=True, help="what finetune saved: <out>/seed_<k>/best.safetensors")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tile", type=int, help="window side; default: whole cube if it fits the training crop, else "
                                            "windows of the training crop; 0: always whole cubes (as finetune's test)")
    p.add_argument("--stride", type=int, help="step between windows (default: half a window)")
    p.add_argument("--batch-size", type=int, default=16, help="windows per forward pass (default 16)")
    p.add_argument("--amp", default="none", choices=AMP_MODES,
                   help="mixed precision (default none: fp32, as finetune evaluates)")
    p.add_argument("--nan", default="error", choices=[x for x in NAN_POLICIES if x != "keep"],
                   help="NaN/Inf in the cubes: refuse (error) or repair them")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from .predict import PredictSpec, run_predict

    s = run_predict(PredictSpec(source=args.source, checkpoint=args.checkpoint, out=args.out, tile=args.tile,
                                stride=args.stride, batch_size=args.batch_size, amp=args.amp, nan=args.nan))
    counts = ", ".join(f"{c}: {n}" for c, n in s["predicted_counts"].items())
    acc = f"; accuracy {100 * s['accuracy']:.2f} %" if "accuracy" in s else ""
    print(f"{s['cubes']} cube(s) ({s['tiled_cubes']} tiled): {counts}{acc} -> {args.out}/predictions.csv")
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a Hugging Face model folder (plain-timm loadable) for a checkpoint")
    p.add_argument("checkpoint", help="zoo .safetensors checkpoint (e.g. runs/cr/encoder.safetensors)")
    p.add_argument("--out", required=True, help="folder to write model.safetensors, config.json, README.md")
    p.add_argument("--name", help="model name for the card (default: checkpoint file stem)")
    p.add_argument("--repo", help="hub repository ORG/NAME, for the card's loading snippet")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from .hub import export_hub_folder

    out = export_hub_folder(args.checkpoint, args.out, name=args.name, repo_id=args.repo)
    print(f"wrote {out}/model.safetensors, config.json, README.md; plain timm loads it with "
          f"timm.create_model('local-dir:{out}', pretrained=True)")
    return 0


def _add_push(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="upload an exported folder to a Hugging Face hub repository",
                       description="Create ORG/NAME on the hub if needed and upload model.safetensors, config.json "
                                   "and README.md in one commit. Token: --token, else $HF_TOKEN, else the one saved "
                                   "by `hf auth login`. Hub: $HF_ENDPOINT, else huggingface.co.")
    p.add_argument("folder", help="folder written by `s3r-zoo export` or `s3r-zoo release --hub-dir`")
    p.add_argument("--repo", required=True, help="hub repository ORG/NAME")
    p.add_argument("--token", help="hub token with write access (default: $HF_TOKEN or the saved login)")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--message", help="commit message")
    p.set_defaults(func=_run_push)


def _run_push(args: argparse.Namespace) -> int:
    from .hub import push_hub_folder

    url = push_hub_folder(args.folder, args.repo, token=args.token, private=args.private, message=args.message)
    print(f"pushed {args.folder} -> {url}\nload it with timm.create_model('hf-hub:{args.repo}', pretrained=True)")
    return 0


def _add_release(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("release", help="release a pretrain run as weights/<model>.<tag>.safetensors (fp16) and record it",
                       description="Check a run against its tag's record (s3r_zoo/models/releases.json), write its "
                                   "encoder as float16 weights/<model>.<tag>.safetensors, record sha256, size, "
                                   "losses, hardware and wall time, and optionally write the hub folder for "
                                   "`s3r-zoo push`.")
    p.add_argument("run", help="pretrain output folder (with encoder.safetensors) or a checkpoint file")
    p.add_argument("--tag", required=True, help="pretrained tag with a release record, e.g. cr_hims41_v2")
    p.add_argument("--weights-dir", help="destination folder (default: the repository's weights/)")
    p.add_argument("--records", help="releases file to update (default: the package's releases.json)")
    p.add_argument("--hub-dir", help="also write the hub repository folder here")
    p.add_argument("--hardware", help="what the run ran on, if the checkpoint does not record it")
    p.set_defaults(func=_run_release)

    r = sub.add_parser("releases", help="list the released weights (the model card's table)",
                       description="Print every release record as a markdown table: name, bands, objective, "
                                   "training, size, sha256.")
    r.add_argument("--records", help="releases file (default: the package's releases.json)")
    r.add_argument("--verify", metavar="DIR", help="instead: check DIR/manifest.json against the records and the files "
                                                   "(e.g. weights); exit 1 on any difference")
    r.add_argument("--write-manifest", metavar="DIR", help="instead: rewrite DIR/manifest.json from the records and the "
                                                           "files in DIR (after removing retired files)")
    r.set_defaults(func=_run_releases)


def _run_release(args: argparse.Namespace) -> int:
    from .release import release_checkpoint

    kw = {"records": args.records} if args.records else {}
    e = release_checkpoint(args.run, args.tag, weights_dir=args.weights_dir, hub_dir=args.hub_dir,
                           hardware=args.hardware, **kw)
    print(f"released {e['path']} ({e['file']['size'] / 1e6:.1f} MB, sha256 {e['file']['sha256'][:12]}...)"
          + (f"; hub folder {e['hub_dir']}" if "hub_dir" in e else ""))
    return 0


def _run_releases(args: argparse.Namespace) -> int:
    from .release import model_card_table, verify_manifest

    kw = {"records": args.records} if args.records else {}
    if args.write_manifest:
        from .release import write_manifest

        print(f"-> {write_manifest(args.write_manifest, **kw)}")
        return 0
    if args.verify:
        problems = verify_manifest(args.verify, **kw)
        for p in problems:
            print(f"{args.verify}/{p}", file=sys.stderr)
        print(f"{args.verify}: {'verifies' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    print(model_card_table(**kw))
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks: speed, convergence, accuracy (Tables 1-2), coefficients (Fig. 3), "
                                     "released weights fine-tuned",
                       description="Run benchmark parts; each writes results/<part>.json and PNGs, then "
                                   "RESULTS.md is regenerated. Parts: speed, convergence, accuracy, labels (the powered "
                                   "label-efficiency benchmark), transfer (cross-sensor), coefficients, weights, all, or report (only "
                                   "regenerate RESULTS.md).")
    p.add_argument("parts", nargs="*", default=["all"], help="parts to run (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke run of every part in minutes; writes to runs/bench_quick/results")
    p.add_argument("--budget", choices=["quick", "cpu", "gpu"],
                   help="convergence/accuracy budget (default: cpu, or quick with --quick)")
    p.add_argument("--results", help="results folder (default: benchmarks/results of this checkout)")
    p.add_argument("--work", help="folder for data and runs (default: runs/bench_<budget>)")
    p.add_argument("--amp", default="auto", choices=AMP_MODES,
                   help="AMP for the training runs (auto: bf16 where the device computes it natively, as pretrain)")
    p.add_argument("--cr-run", help="coefficients: S3R-CR pretrain folder (default: runs/weights/...cr_hims41_v2)")
    p.add_argument("--br-run", help="coefficients: S3R-BR pretrain folder (default: runs/weights/...br_hims41_v2)")
    p.add_argument("--methods", type=lambda v: [m.strip() for m in v.split(",") if m.strip()],
                   help="accuracy: comma-separated rows to run (e.g. scratch,regress,s3r_br,s3r_cr = Table 1; "
                        "default: every row)")
    p.add_argument("--cached-only", action="store_true",
                   help="accuracy: train nothing; report the finished (cached) runs, the rest as not run")
    p.set_defaults(func=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench
    from .bench.report import SECTIONS, section

    out = run_bench(args.parts, quick=args.quick, budget=args.budget, results=args.results, work=args.work,
                    amp=args.amp, cr_run=args.cr_run, br_run=args.br_run, cached_only=args.cached_only,
                    methods=args.methods)
    for part in SECTIONS:  # the tables of what just ran, so the ratios are on screen, not only in files
        if part in out:
            print(section(out["results"], part))
    print(f"-> {out['report']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3r-zoo", description="S3R hyperspectral model zoo")
    parser.add_argument("--version", action="version", version=f"s3r-zoo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_demo(sub)
    _add_data(sub)
    _add_pretrain(sub)
    _add_finetune(sub)
    _add_embed(sub)
    _add_predict(sub)
    _add_export(sub)
    _add_release(sub)
    _add_push(sub)
    _add_bench(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:  # user errors: one clear line, no traceback
        print(f"s3r-zoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteError as e:  # a run that diverged: nothing was exported; one line, exit 1
        print(f"s3r-zoo {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
