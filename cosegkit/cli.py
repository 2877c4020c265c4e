"""The `cosegkit` command line: `data`, `experiments`, `train`, `evaluate`, `predict` and `reproduce`."""

from __future__ import annotations

import argparse
import sys

from cosegkit.data.cli import add_data_subcommands
from cosegkit.predict import add_predict_subcommand
from cosegkit.reproduce import reproduce
from cosegkit.train.cli import add_train_subcommands
from cosegkit.train.profiles import list_profiles


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cosegkit",
        description="Reproducible companion to deep metric learning papers for image co-segmentation.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True

    add_data_subcommands(subparsers)
    add_train_subcommands(subparsers)
    add_predict_subcommand(subparsers)

    reproduce = subparsers.add_parser(
        "reproduce", help="run every notebook in order and write tables and figures to results/"
    )
    reproduce.add_argument("--profile", required=True, help=f"one of {', '.join(list_profiles())}")
    reproduce.add_argument("--data-root", default=None, help="PASCAL-VOC co-seg folder (synthetic set if absent)")
    reproduce.add_argument("--only", default=None, help="run only the notebook whose name contains this")
    reproduce.add_argument("--out", default=None,
                           help="output directory (default: results/<profile>/)")
    reproduce.add_argument("--withhold-dataset-images", action="store_true",
                           help="afterwards remove the figures that show dataset images (for a run to be committed)")
    reproduce.add_argument("--fresh", action="store_true",
                           help="start over: remove the reproduction in the output directory (any parameters) first")
    reproduce.set_defaults(handler=_run_reproduce)
    return parser


def _run_reproduce(args: argparse.Namespace) -> int:
    try:
        return reproduce(profile=args.profile, data_root=args.data_root, only=args.only, out=args.out,
                         withhold_dataset_images=args.withhold_dataset_images, fresh=args.fresh)
    except (ValueError, FileNotFoundError) as e:
        print(f"cosegkit reproduce: error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
