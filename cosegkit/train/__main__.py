"""`python -m cosegkit.train {experiments,train,evaluate} ...`: the engine's subcommands without the rest of the
`cosegkit` CLI (used by the subprocess tests and by torchrun: `torchrun ... -m cosegkit.train train ...`)."""

from __future__ import annotations

import argparse
import sys

from cosegkit.train.cli import add_train_subcommands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cosegkit.train")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_train_subcommands(sub)
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
