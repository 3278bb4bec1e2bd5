"""``s3r-zoo export / push / release / releases``: hub folders, uploads and the zoo's own releases."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_publish"]


def add_publish(sub: argparse._SubParsersAction) -> None:
    """``export``, ``release``, ``releases`` and ``push``."""
    _add_export(sub)
    _add_release(sub)
    _add_push(sub)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a Hugging Face model folder (plain-timm loadable) for a checkpoint")
    p.add_argument("checkpoint", help="zoo .safetensors checkpoint (e.g. runs/cr/encoder.safetensors)")
    p.add_argument("--out", required=True, help="folder to write model.safetensors, config.json, README.md")
    p.add_argument("--name", help="model name for the card (default: checkpoint file stem)")
    p.add_argument("--repo", help="hub repository ORG/NAME, for the card's loading snippet")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from ..hub import export_hub_folder

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
    from ..hub import push_hub_folder

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
    from ..release import release_checkpoint

    kw = {"records": args.records} if args.records else {}
    e = release_checkpoint(args.run, args.tag, weights_dir=args.weights_dir, hub_dir=args.hub_dir,
                           hardware=args.hardware, **kw)
    print(f"released {e['path']} ({e['file']['size'] / 1e6:.1f} MB, sha256 {e['file']['sha256'][:12]}...)"
          + (f"; hub folder {e['hub_dir']}" if "hub_dir" in e else ""))
    return 0


def _run_releases(args: argparse.Namespace) -> int:
    from ..release import releases_view, verify_manifest

    kw = {"records": args.records} if args.records else {}
    if args.write_manifest:
        from ..release import write_manifest

        print(f"-> {write_manifest(args.write_manifest, **kw)}")
        return 0
    if args.verify:
        problems = verify_manifest(args.verify, **kw)
        for p in problems:
            print(f"{args.verify}/{p}", file=sys.stderr)
        print(f"{args.verify}: {'verifies' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    print(releases_view(**kw))
    return 0
