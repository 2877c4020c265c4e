"""The command line and header line shared by the benchmarks that time old against new in one run: ``--repeats``
(medians over that many rounds after a warm-up) and ``--threads``, and a first line that says when, where and with
which torch the numbers were measured."""

from __future__ import annotations

import argparse
import platform
from datetime import date

import torch


def timing_args(doc: str) -> argparse.Namespace:
    """Parse ``--repeats`` (default 7) and ``--threads`` (default 2) and set torch's thread count."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def print_header(name: str, args: argparse.Namespace) -> None:
    print(f"# {name} {date.today()} | {platform.processor() or platform.machine()} | "
          f"torch {torch.__version__} | threads {args.threads} | median of {args.repeats}")
