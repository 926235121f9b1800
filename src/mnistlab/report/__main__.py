"""``python -m mnistlab.report <multirun dir> [--metric val/acc_best] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys

from mnistlab.report import build_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnistlab.report",
        description="Summarize a multirun folder: summary.csv, report.md and a self-contained report.html.",
    )
    parser.add_argument("sweep_dir", help="the sweep folder, e.g. multirun/2026-01-01/12-00-00")
    parser.add_argument(
        "--metric", default=None, help="rank by this metric (default: the jobs' optimized_metric)"
    )
    parser.add_argument(
        "--out", default=None, help="write the report here (default: into the sweep folder)"
    )
    args = parser.parse_args(argv)
    try:
        paths = build_report(args.sweep_dir, args.out, args.metric)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
