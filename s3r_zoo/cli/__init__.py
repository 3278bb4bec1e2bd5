"""The ``s3r-zoo`` command line: thin argument parsing over library functions.

``pretrain``, ``finetune`` and ``evaluate`` options are generated from their spec
dataclasses (:mod:`s3r_zoo.options`); a ``--config`` YAML and the command line go through
the same checks. ``data ...`` lives in :mod:`.data`, ``export`` / ``push`` / ``release`` /
``releases`` in :mod:`.publish`. No command loops over files or writes them here: each calls
one library function. The modules that only one command needs are imported when it runs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Optional, Sequence

from ..finetune.spec import FinetuneSpec
from ..models.names import MODEL_NAMES
from ..options import add_arguments, build_spec, load_yaml
from ..pretrain.spec import PretrainSpec
from ..version import __version__
from .data import add_data
from .publish import add_publish

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
    from ..demo import run_demo

    run_demo(model_name=args.model, bands=args.bands, range_nm=tuple(args.range_nm), size=args.size,
             batch_size=args.batch_size, repeats=args.repeats, out_dir=args.out,
             pretrain_epochs=args.pretrain_epochs)
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
    from ..pretrain.run import format_summary, run_pretrain

    summary = run_pretrain(_spec(args))
    if "checkpoint" in summary:  # the main process
        print(format_summary(summary))
    return 0


def _add_finetune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune / linear-probe a checkpoint; test metrics over seeds",
                       description="Published protocol: AdamW lr 1e-4 with linear decay, augmentation, validation "
                                   "every epoch, the weights of the lowest validation loss, test once; mean +- std "
                                   "over seeds.")
    _add_config(p)
    add_arguments(p, FinetuneSpec)
    p.set_defaults(func=_run_finetune, spec_cls=FinetuneSpec)


def _run_finetune(args: argparse.Namespace) -> int:
    from ..finetune import format_aggregate, run_finetune

    spec = _spec(args)
    agg = run_finetune(spec)
    if agg.get("main_process", True):  # one report under torchrun
        print("\n" + format_aggregate(agg))
        print(f"-> {spec.out}/aggregate.json")
    return 0


def _add_embed(sub: argparse._SubParsersAction) -> None:
    from ..embed.spec import EmbedSpec

    p = sub.add_parser("embed", help="encoder features of a folder, split file or cube -> features.npy + index.csv",
                       description="Whole-cube or tiled features from a tag, a checkpoint or an hf-hub: id, the "
                                   "stem adapted to the data's bands by wavelength. Resumable: run the same command "
                                   "again after an interruption.")
    add_arguments(p, EmbedSpec)
    p.set_defaults(func=_run_embed, spec_cls=EmbedSpec, config=None)


def _run_embed(args: argparse.Namespace) -> int:
    from ..embed import run_embed

    spec = _spec(args)
    s = run_embed(spec)
    print(f"{s['cubes']} cube(s) -> {s['features'][0]} feature vectors of {s['features'][1]} ({s['model']}, "
          f"normalised by {s['normalisation']}) -> {spec.out}/features.npy, index.csv")
    return 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    from ..predict.spec import PredictSpec

    p = sub.add_parser("predict", help="class probabilities of new cubes from a fine-tuned checkpoint -> CSV "
                                       "(+ heatmaps of tiled scenes)")
    add_arguments(p, PredictSpec)
    p.set_defaults(func=_run_predict, spec_cls=PredictSpec, config=None)


def _run_predict(args: argparse.Namespace) -> int:
    from ..predict import run_predict

    spec = _spec(args)
    s = run_predict(spec)
    counts = ", ".join(f"{c}: {n}" for c, n in s["predicted_counts"].items())
    acc = f"; accuracy {100 * s['accuracy']:.2f} %" if "accuracy" in s else ""
    print(f"{s['cubes']} cube(s) ({s['tiled_cubes']} tiled): {counts}{acc} -> {spec.out}/predictions.csv")
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from ..evaluate.spec import EvaluateSpec

    p = sub.add_parser("evaluate", help="does pre-training help on my data? probes + fine-tuning at label fractions, "
                                        "paired seeds, CIs and paired tests -> table, JSON, PNG",
                       description="Linear probes and full fine-tuning (with a floor on optimiser steps) at label "
                                   "fractions, for each encoder beside the mean spectrum, random-init features and "
                                   "scratch; the same label subsets for every row; 95 % bootstrap CIs and paired "
                                   "tests. Reruns reuse finished runs.")
    _add_config(p)
    add_arguments(p, EvaluateSpec)
    p.set_defaults(func=_run_evaluate, spec_cls=EvaluateSpec)


def _run_evaluate(args: argparse.Namespace) -> int:
    from ..evaluate import format_table, run_evaluate

    spec = _spec(args)
    payload = run_evaluate(spec)
    print(format_table(payload))
    print(f"-> {spec.out}/evaluate.json, {spec.out}/evaluate.png")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3r-zoo", description="S3R hyperspectral model zoo")
    parser.add_argument("--version", action="version", version=f"s3r-zoo {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_demo(sub)
    add_data(sub)
    _add_pretrain(sub)
    _add_finetune(sub)
    _add_embed(sub)
    _add_predict(sub)
    add_publish(sub)
    _add_evaluate(sub)
    return parser


class _Terminated(KeyboardInterrupt):
    exit_code = 143  # 128 + SIGTERM, as a shell reports it


def _on_sigterm(signum, frame) -> None:
    raise _Terminated("terminated (SIGTERM)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ..models import s3r_resnet  # noqa: F401  (registers the zoo's models with timm; see s3r_zoo_cli)
    from ..train.engine import NonFiniteError

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    where = " ".join(["s3r-zoo", args.command, *([args.data_command] if getattr(args, "data_command", None) else [])])
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:  # user errors: one clear line, no traceback
        print(f"{where}: error: {e}", file=sys.stderr)
        return 2
    except NonFiniteError as e:  # a run that diverged: nothing was exported; one line, exit 1
        print(f"{where}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the system refused a file operation: name the file and the reason
        name = f"{e.filename}: " if e.filename else ""
        print(f"{where}: error: {name}cannot {_verb(e)} ({e.strerror or e})", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: one line (a training run says where it stood)
        print(f"{where}: {e or 'interrupted'}", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _verb(e: OSError) -> str:
    return "write" if isinstance(e, (IsADirectoryError, FileExistsError)) or e.errno in (28, 30) else "read"


if __name__ == "__main__":
    sys.exit(main())
