"""`cosegkit experiments | train | evaluate` subcommands (registered by cosegkit.cli)."""

from __future__ import annotations

import argparse
import json
import sys

from cosegkit.train.engine import train, train_splits
from cosegkit.train.evaluate import evaluate_run
from cosegkit.train.experiments import list_experiments
from cosegkit.train.profiles import list_profiles

__all__ = ["add_train_subcommands", "parse_set"]


def parse_set(items: list[str] | None) -> dict:
    """`--set key=value` pairs -> overrides dict; values are parsed as JSON when they parse, else strings."""
    overrides: dict = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE (e.g. epochs=2 or optim.lr=0.01), got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides[key.strip()] = value
    return overrides


def add_train_subcommands(subparsers) -> None:
    exp = subparsers.add_parser("experiments", help="list the registered experiments (name, then description)")
    exp.set_defaults(handler=_run_experiments)

    tr = subparsers.add_parser("train", help="train one registered experiment under a profile")
    tr.add_argument("--experiment", required=True, help="experiment name (see `cosegkit experiments`)")
    tr.add_argument("--profile", required=True, help=f"one of {', '.join(list_profiles())}")
    tr.add_argument("--data-root", default=None, help="dataset folder (synthetic pairs if absent)")
    tr.add_argument("--dataset", default=None,
                    help="layout of --data-root: folder (default), internet, msrc, icoseg, sbcoseg")
    tr.add_argument("--out", required=True, help="run directory")
    tr.add_argument("--seed", type=int, default=None, help="run seed, >= 0 (default 0; --resume: the run's)")
    tr.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    tr.add_argument("--splits", type=int, default=None,
                    help="train on N random 3:1:1 splits (run dirs OUT/split_000...) and report mean +- std")
    tr.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                    help="override a setting, e.g. --set epochs=2 --set optim.lr=0.01 (repeatable)")
    tr.add_argument("--no-progress", action="store_true", help="disable the tqdm progress bars")
    tr.set_defaults(handler=_run_train)

    ev = subparsers.add_parser("evaluate", help="score a trained run on every image of a dataset folder")
    ev.add_argument("--run", required=True, help="run directory written by `cosegkit train`")
    ev.add_argument("--data-root", default=None,
                    help="dataset folder (default: the run's own folder, or its synthetic test set)")
    ev.add_argument("--dataset", default=None, help="layout of --data-root (default: the run's; see `train --dataset`)")
    ev.add_argument("--max-pairs-per-group", type=int, default=None,
                    help="cap on positive pairs per group (default: every pair)")
    ev.add_argument("--negative-pairs", type=int, default=None,
                    help="negative pairs to score (default: as many as positive pairs, at most 1000)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the negative-pair draw")
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(handler=_run_evaluate)


def _run_experiments(args: argparse.Namespace) -> int:
    exps = list_experiments()
    width = max(len(e.name) for e in exps)
    for e in exps:
        print(f"{e.name:<{width}}  {e.description}")
    return 0


def _fmt(summary: dict) -> str:
    return f"P {100 * summary['precision']:.1f}  J {summary['jaccard']:.3f}  ({summary['n_images']} images)"


def _print_report(report: dict, out=None) -> None:
    out = out or sys.stdout
    pos = report["positive"]
    line = f"positive pairs: {_fmt(pos)}"
    if pos.get("ungated"):
        u = pos["ungated"]
        line += f"; before the decision gate P {100 * u['precision']:.1f}  J {u['jaccard']:.3f}"
    print(line, file=out)
    neg = report.get("negative")
    if neg:
        line = f"negative pairs: {neg['n_pairs']}, empty predicted masks {100 * neg['empty_fraction']:.1f}%"
        if neg.get("decision_accuracy") is not None:
            line += f", decision accuracy {100 * neg['decision_accuracy']:.1f}%"
        print(line, file=out)
    elif report.get("negative_note"):
        print(f"negative pairs: none ({report['negative_note']})", file=out)


def _run_train(args: argparse.Namespace) -> int:
    try:
        overrides = parse_set(args.overrides)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.no_progress:
        overrides["progress"] = False
    try:
        if args.splits is not None:
            agg = train_splits(
                args.experiment, args.profile, args.out, n_splits=args.splits, data_root=args.data_root,
                seed=args.seed, resume=args.resume, overrides=overrides, dataset=args.dataset,
            )
            print(
                f"{args.experiment} over {agg['n_splits']} splits: "
                f"P {100 * agg['precision_mean']:.1f} +- {100 * agg['precision_std']:.1f}  "
                f"J {agg['jaccard_mean']:.3f} +- {agg['jaccard_std']:.3f}"
            )
            return 0
        result = train(
            args.experiment, args.profile, args.out, data_root=args.data_root, seed=args.seed,
            resume=args.resume, overrides=overrides, dataset=args.dataset,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result.test is not None:
        print(f"{args.experiment} [{args.profile}] test: ", end="")
        _print_report(result.test)
    print(f"run dir: {result.run_dir}  wall time {result.wall_time_s:.1f} s")
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    try:
        report = evaluate_run(
            args.run, data_root=args.data_root, dataset=args.dataset,
            max_pairs_per_group=args.max_pairs_per_group, negative_pairs=args.negative_pairs,
            seed=args.seed, progress=not args.no_progress,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _print_report(report)
    print(f"wrote {report['path']}")
    return 0
