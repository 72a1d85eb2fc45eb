"""DAG planning cost of a large spec: the Snakemake dry run and `cfgrl check-spec`, wall and CPU seconds.

The spec is specs/default.yaml's structure (gcbc and gc_cfgrl on pointmaze-medium-navigate, cfgrl and the AWR
temperature sweep on cheetah-run, validation-episode selection for cfgrl and AWR) with more seeds and a longer w
grid, sized to about --cells evaluation cells (default 10^4; the spec checker refuses more than limits.max_cells,
default 20000). Each seed plans 5 + 3 L cells for a w grid of L values (gcbc 1, gc_cfgrl L, cfgrl L test + L
validation, 2 AWR entries x (test + validation)), so the seed count is cells / (5 + 3 L), rounded up. The spec is
written into a temporary folder and timed, each as a subprocess:
- `python -m snakemake -n --cores 2 -s <repo>/Snakefile --directory TMP --config spec=SPEC` (dry run: parses the
  workflow, loads and validates the spec, builds the whole DAG, prints the job table; nothing runs);
- `python -m cfgrl check-spec SPEC` (loads, validates and counts the cells);
wall seconds (perf_counter) and CPU seconds of the child (resource.getrusage(RUSAGE_CHILDREN), user + system),
median over --repeats. Also, in this process, load_spec + Spec.cells() alone.

    python bench/bench_plan.py --json plan.json                 # ~10^4 cells, w grid of 32 values
    python bench/bench_plan.py --quick --json plan-quick.json   # ~500 cells
    python bench/bench_plan.py --cells 20000 --w-count 16 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cfgrl.pipeline.provenance import cpu_info  # noqa: E402
from cfgrl.pipeline.spec import load_spec  # noqa: E402

BASE_W = [0.0, 1.0, 1.5, 2.0, 3.0, 5.0]  # the default spec's grid (3 is gc_cfgrl's fixed reported w)


def meta() -> dict[str, Any]:
    import torch

    return {"torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
            "cpu": cpu_info(), "device": "cpu", "loadavg": os.getloadavg()}


def w_grid(count: int) -> list[float]:
    """The default grid, then steps of 0.5 above 5 up to `count` values."""
    return BASE_W[:count] if count <= len(BASE_W) else BASE_W + [5.0 + 0.5 * i for i in range(1, count - 5)]


def cells_per_seed(w_count: int) -> int:
    return 5 + 3 * w_count


def write_spec(folder: Path, cells: int, w_count: int) -> tuple[Path, int]:
    """specs/default.yaml with ceil(cells / cells_per_seed) seeds and a w grid of w_count values."""
    if w_count < 5:
        raise SystemExit("--w-count must be at least 5 (gc_cfgrl reports the fixed w = 3)")
    raw = yaml.safe_load((REPO / "specs" / "default.yaml").read_text())
    seeds = max(1, math.ceil(cells / cells_per_seed(w_count)))
    raw["name"] = "bench-plan"
    raw["seeds"] = list(range(seeds))
    for label in ("gc_cfgrl", "cfgrl"):
        raw["methods"][label]["w"] = w_grid(w_count)
    raw = {k: v for k, v in raw.items() if not k.startswith("x-")}  # anchors already expanded by safe_load
    path = folder / "bench-plan.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path, seeds


def timed(command: list[str], log: Path, cwd: Path) -> dict[str, Any]:
    """Run a command (stdout and stderr to `log`); wall and child CPU seconds, exit code."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(":"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=env).returncode
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "rc": rc, "max_rss_mb_children": after.ru_maxrss / 1024}


def job_total(log: Path) -> int | None:
    """The 'total' row of Snakemake's job-stats table in a dry-run log."""
    m = re.findall(r"^total\s+(\d+)", log.read_text(), flags=re.MULTILINE)
    return int(m[-1]) if m else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if r["rc"] == 0]
    out: dict[str, Any] = {"runs": runs, "ok": len(ok) == len(runs)}
    if ok:
        out["wall_s"] = statistics.median(r["wall_s"] for r in ok)
        out["cpu_s"] = statistics.median(r["cpu_s"] for r in ok)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, default=10_000, help="evaluation cells to plan, about (default 10000)")
    p.add_argument("--w-count", type=int, default=32, help="w values of gc_cfgrl and cfgrl (default 32)")
    p.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs of each command (median; default 1)")
    p.add_argument("--keep", type=Path, default=None, help="copy the spec and the logs into this folder")
    p.add_argument("--quick", action="store_true", help="smoke run: about 500 cells")
    p.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up temp dirs on timeout
    if args.quick:
        args.cells = 500
    out: dict[str, Any] = {"meta": meta(), "quick": args.quick, "w_count": args.w_count}
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        folder = Path(tmp)
        spec_path, seeds = write_spec(folder, args.cells, args.w_count)
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        spec = load_spec(spec_path)
        cells = spec.cells()
        out["load_spec_in_process"] = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0}
        out.update({"seeds": seeds, "evaluation_cells": len(cells),
                    "training_runs": len({(m, e, s) for _, m, e, s, _ in cells}),
                    "evaluation_jobs": sum(len(seeds_) for _, _, seeds_ in spec.evaluation_jobs()),
                    "max_cells": spec.max_cells})
        print(f"spec: {seeds} seeds x w grid of {args.w_count} -> {len(cells)} evaluation cells, "
              f"{out['training_runs']} training runs (cap {spec.max_cells}); load_spec + cells in process "
              f"{out['load_spec_in_process']['wall_s']:.2f} s", flush=True)
        work = folder / "work"
        work.mkdir()
        commands = {
            "snakemake_dry_run": [sys.executable, "-m", "snakemake", "-n", "--cores", str(args.cores), "-s",
                                  str(REPO / "Snakefile"), "--directory", str(work), "--config",
                                  f"spec={spec_path}"],
            "check_spec": [sys.executable, "-m", "cfgrl", "check-spec", str(spec_path)],
        }
        for name, command in commands.items():
            runs = []
            for i in range(args.repeats):
                log = folder / f"{name}-{i}.log"
                run = timed(command, log, cwd=folder)
                if name == "snakemake_dry_run":
                    run["jobs"] = job_total(log)
                run["log_tail"] = log.read_text().strip().splitlines()[-3:]
                runs.append(run)
            out[name] = summarise(runs)
            out[name]["command"] = " ".join(command)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for f in folder.glob("*.*"):
                (args.keep / f.name).write_bytes(f.read_bytes())
    print(f"{'command':22s} {'wall s':>8s} {'CPU s':>8s}  result")
    for name in commands:
        r = out[name]
        jobs = r["runs"][-1].get("jobs")
        if r["ok"]:
            print(f"{name:22s} {r['wall_s']:8.2f} {r['cpu_s']:8.2f}  ok"
                  + (f", {jobs} jobs planned" if jobs is not None else ""))
        else:
            print(f"{name:22s} {'-':>8s} {'-':>8s}  FAILED rc {r['runs'][-1]['rc']}: {r['runs'][-1]['log_tail']}")
    out["meta"]["loadavg_after"] = os.getloadavg()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    if not all(out[n]["ok"] for n in commands):
        sys.exit(1)
    return out


if __name__ == "__main__":
    main()
