"""What a run was and what it cost, as report sections: the provenance of its cells (dataset hashes, CPUs,
installed packages, code versions, each counted) and the cost of its jobs (wall time, CPU time from each job's
own record, peak memory)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.tables import markdown_table
from cfgrl.pipeline.usage import read_usage

PROVENANCE_COLUMNS = {"data_sha256": "dataset hash (sha256 of the arrays, `cfgrl data-hash FILE`)",
                      "cpu": "CPU that trained the checkpoints",
                      "cpu_kernels": "CPU kernels of the training jobs (CFGRL_CPU_KERNELS, cfgrl/cpu_kernels.py)",
                      "gelu_kernel": "tanh-GELU kernel of the training jobs (cfgrl/core/fast_gelu.py)",
                      "environment_hash": "installed-packages hash",
                      "code_version": "code version"}


def cell_file(path: str | Path, outdir: Path | None = None) -> Path:
    """A cells.csv `path` (relative to the folder the workflow ran in, e.g. results/NAME/eval/...) as a file that
    exists from here: as written, else the part from `eval/` on under `outdir` (the run's results folder)."""
    p = Path(path)
    if p.exists() or outdir is None or p.is_absolute() or "eval" not in p.parts:
        return p
    return outdir.joinpath(*p.parts[p.parts.index("eval"):])


def provenance_section(cells: pd.DataFrame, outdir: Path | None = None) -> list[str]:
    """What produced the cells: per env the dataset hashes, and across cells the CPUs, installed-package sets and
    code versions, each with its count of cells; a line of warning wherever one quantity has several values; the
    package versions of the first cell's file (found under `outdir` when the report runs from elsewhere)."""
    parts = ["## Provenance", ""]
    if "data_sha256" in cells.columns:
        for env, group in cells.groupby("env"):
            hashes = group["data_sha256"].dropna().unique()
            text = ", ".join(f"`{h[:16]}`" for h in hashes) if len(hashes) else "not recorded"
            warn = " (**several**: the cells did not all train on the same data)" if len(hashes) > 1 else ""
            parts.append(f"- `{env}`: dataset hash {text}{warn}.")
    for column, what in PROVENANCE_COLUMNS.items():
        if column == "data_sha256" or column not in cells.columns:
            continue
        counts = cells[column].fillna("unknown").value_counts()
        text = "; ".join(f"`{v}` ({n} cells)" for v, n in counts.items())
        warn = " **Several values: numbers may differ for that reason alone.**" if len(counts) > 1 else ""
        parts.append(f"- {what}: {text}.{warn}")
    if "path" in cells.columns and len(cells):
        try:
            with open(cell_file(cells["path"].iloc[0], outdir)) as f:
                packages = json.load(f)["provenance"].get("packages") or {}
            parts.append("- package versions (first cell): "
                         + ", ".join(f"{k} {v}" for k, v in packages.items() if v is not None) + ".")
        except (OSError, ValueError, KeyError):
            pass
    return parts + [""]


def _last(table: pd.DataFrame, column: str) -> float:
    """The last row's value of a benchmark column as a number (NaN when absent or not a number)."""
    return float(pd.to_numeric(table[column], errors="coerce").iloc[-1]) if column in table else float("nan")


def seconds(x: float) -> str:
    """Seconds for the cost table: whole seconds from 10 s on, one decimal below (a sub-second job is not '0')."""
    return f"{x:.0f}" if not x < 10 else f"{x:.1f}"


def cost_section(outdir: Path) -> list[str]:
    """What the run cost: per kind of job and per method entry, the number of jobs, their wall time and CPU time
    (sums) and the peak resident memory. Wall time from Snakemake's benchmark files; CPU time from the
    job's own record at the end of its log (cfgrl.pipeline.usage: getrusage, worker processes included) where it
    has one, else the benchmark file's cpu_time (sampled while the job runs, so short jobs are undercounted)."""
    rows = []
    for path in sorted((outdir / "benchmarks").rglob("*.tsv")):
        rel = path.relative_to(outdir / "benchmarks")
        kind = rel.parts[0] if len(rel.parts) > 1 else path.stem
        if kind == "report":  # the report's own job is running (a benchmark file there is an older run's)
            continue
        method = rel.parts[1] if kind in ("train", "eval") and len(rel.parts) > 2 else ""
        try:
            b = pd.read_csv(path, sep="\t")
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        if b.empty:
            continue
        usage = read_usage((outdir / "logs" / rel).with_suffix(".log"))
        rows.append({"kind": kind, "method": method, "wall_s": _last(b, "s"),
                     "cpu_s": float(usage["cpu_s"]) if usage else _last(b, "cpu_time"),
                     "cpu_from_job": usage is not None,
                     "max_rss_mb": np.fmax(_last(b, "max_rss"), float(usage["max_rss_mb"]) if usage else np.nan)})
    if not rows:
        return []
    t = pd.DataFrame(rows)

    def table(groups: list[str]) -> list[list[str]]:
        g = t.groupby(groups, sort=True).agg(jobs=("wall_s", "size"), wall=("wall_s", "sum"), cpu=("cpu_s", "sum"),
                                             rss=("max_rss_mb", "max")).reset_index()
        return [[*(str(r[c]) for c in groups), str(int(r.jobs)), seconds(r.wall), seconds(r.cpu), f"{r.rss:.0f}"]
                for _, r in g.iterrows()]

    head = ["jobs", "wall s (sum)", "CPU s (sum)", "peak RSS (MB)"]
    total = [["all", str(len(t)), seconds(t["wall_s"].sum()), seconds(t["cpu_s"].sum()),
              f"{t['max_rss_mb'].max():.0f}"]]
    per_method = t[t["method"] != ""]
    own = int(t["cpu_from_job"].sum())
    source = (f"CPU time (user + sys) as each job measured itself ({own} of {len(t)} jobs: getrusage, its worker "
              "processes included, the last line of its log)"
              + ("" if own == len(t) else f"; for the other {len(t) - own}, Snakemake's sampled cpu_time, which "
                 "misses a job's last seconds"))
    return ["## What the run cost", "",
            "One row per kind of job (the report's own job is not in it): wall time from Snakemake's benchmark "
            "files, summed over jobs (jobs run in parallel, so the run's wall time is less than the sum); "
            f"{source}; peak resident memory of the largest job (the larger of its benchmark file's, the process "
            "tree sampled, and its own record's, its largest process).", "",
            markdown_table(["kind", *head], table(["kind"]) + total), "",
            *([markdown_table(["kind", "method", *head], [r for r in table(["kind", "method"]) if r[1]]), ""]
              if not per_method.empty else [])]
