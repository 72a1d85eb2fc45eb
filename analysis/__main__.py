"""Command line of the analysis layer (`cfgrl-analysis`, or `python -m analysis`): the cells table and the report.

    cfgrl-analysis cells --out CELLS.csv RESULT.json...
    cfgrl-analysis report --spec SPEC --cells CELLS.csv --outdir DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def cmd_cells(args: argparse.Namespace) -> None:
    from analysis.cells import collect_cells
    from cfgrl.io import atomic_write_text

    table = collect_cells(args.results)
    atomic_write_text(args.out, table.to_csv(index=False))
    print(f"wrote {args.out}: {len(table)} cells")


def cmd_report(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a batch job draws to files; chosen here, not when analysis is imported
    from analysis.report import write_report
    from cfgrl.pipeline.spec import load_spec

    spec = load_spec(args.spec)
    path = write_report(spec, args.cells, args.outdir)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    started = time.monotonic()
    from cfgrl.pipeline.cli import suite_errors

    parser = argparse.ArgumentParser(prog="cfgrl-analysis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("cells", help="collect per-cell result files into one table")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("results", nargs="+")
    p.set_defaults(func=cmd_cells)

    p = sub.add_parser("report", help="statistics, figures and report.md from a cells table")
    p.add_argument("--spec", required=True)
    p.add_argument("--cells", required=True, type=Path)
    p.add_argument("--outdir", required=True, type=Path)
    p.set_defaults(func=cmd_report)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except suite_errors() as err:  # one line, as the cfgrl command gives them
        sys.stderr.write(f"error: {' '.join(str(err).split())}\n")
        sys.exit(1)
    if args.command == "cells":  # a job of the cost table (the report's own job is not in it)
        from cfgrl.pipeline.usage import usage_line

        sys.stderr.write(usage_line(started) + "\n")


if __name__ == "__main__":
    main()
