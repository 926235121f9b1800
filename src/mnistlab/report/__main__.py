"""``python -m mnistlab.report <multirun dir> [--metric val/acc_best] [--out DIR]``, or
``python -m mnistlab.report --notebook <dir of study sweeps> [--out DIR]``."""

from __future__ import annotations

import argparse
import sys

from mnistlab.report import build_report
from mnistlab.report.notebook import build_notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnistlab.report",
        description="Summarize a multirun folder: summary.csv, report.md and a self-contained "
        "report.html. With --notebook: one notebook.html (+ notebook.md) of every study sweep "
        "under a folder (what `make studies` writes).",
    )
    parser.add_argument(
        "sweep_dir", nargs="?", help="the sweep folder, e.g. multirun/2026-01-01/12-00-00"
    )
    parser.add_argument(
        "--notebook",
        metavar="DIR",
        default=None,
        help="build the lab notebook from the study sweeps under DIR (one folder per study)",
    )
    parser.add_argument(
        "--metric", default=None, help="rank by this metric (default: the jobs' optimized_metric)"
    )
    parser.add_argument(
        "--out", default=None, help="write the report here (default: into the sweep folder)"
    )
    args = parser.parse_args(argv)
    if (args.sweep_dir is None) == (args.notebook is None):
        parser.error("give a sweep folder or --notebook DIR (one of the two)")
    try:
        if args.notebook is not None:
            paths = build_notebook(args.notebook, args.out)
        else:
            paths = build_report(args.sweep_dir, args.out, args.metric)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
