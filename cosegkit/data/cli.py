"""`cosegkit data fetch|check`: argparse wiring for `fetch_dataset` and `check_dataset`.

``add_data_subcommands(subparsers)`` takes the top-level ``parser.add_subparsers()`` object, adds ``data`` with
``fetch`` and ``check`` under it, and sets ``handler`` (``args.handler(args) -> int`` exit code) on each.
"""

from __future__ import annotations

import argparse
import sys
import time

from cosegkit.data.fetch import SOURCES, fetch_dataset
from cosegkit.data.official import LOADERS

__all__ = ["add_data_subcommands", "run_fetch", "run_check", "main"]


def run_fetch(args: argparse.Namespace) -> int:
    try:
        root = fetch_dataset(args.name, args.root, url=args.url, sha256=args.sha256)
    except ValueError as e:  # bad input (no or wrong --sha256, unknown name, unsafe archive): 2, as elsewhere
        print(f"cosegkit data fetch: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the download or the disk failed
        print(f"cosegkit data fetch: error: {e}", file=sys.stderr)
        return 1
    source = SOURCES[args.name.lower()]
    print(f"{args.name}: ready in {root} (load_dataset({source.loader!r}, {str(root)!r}))")
    return 0


def run_check(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    try:
        from cosegkit.data.check import check_dataset

        report = check_dataset(args.root, name=args.layout)
    except (ValueError, OSError) as e:
        print(f"cosegkit data check: error: {e}", file=sys.stderr)
        return 2
    print(report.format())
    print(f"checked in {time.perf_counter() - t0:.1f} s")
    return 0 if report.ok else 2  # bad files are bad input: exit 2 like the other commands


def add_data_subcommands(subparsers) -> argparse.ArgumentParser:
    """Register ``data fetch`` and ``data check`` on ``subparsers``; return the ``data`` parser."""
    data = subparsers.add_parser("data", help="download and check datasets")
    sub = data.add_subparsers(dest="data_command", metavar="{fetch,check}")
    sub.required = True

    fetch = sub.add_parser("fetch", help="download, verify (SHA-256) and safely extract an official archive")
    fetch.add_argument("name", help=f"dataset: {', '.join(SOURCES)}")
    fetch.add_argument("--root", required=True, help="folder to extract into")
    fetch.add_argument("--url", default=None, help="override the official URL (mirror or file://)")
    fetch.add_argument("--sha256", default=None,
                       help="expected SHA-256 of the archive: required, since cosegkit registers none")
    fetch.set_defaults(handler=run_fetch)

    check = sub.add_parser("check", help="decode every image and mask; list every bad file (exit 2 if any)")
    check.add_argument("root", help="dataset folder")
    check.add_argument("--layout", default="folder", choices=sorted(LOADERS),
                       help="folder layout (default: folder = <group>/images + <group>/masks)")
    check.set_defaults(handler=run_check)
    return data


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m cosegkit.data.cli data check ROOT``."""
    parser = argparse.ArgumentParser(prog="cosegkit")
    sub = parser.add_subparsers(dest="command")
    sub.required = True
    add_data_subcommands(sub)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
