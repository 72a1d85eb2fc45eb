"""Compare two results folders of the same spec, cell by cell: evaluation episodes, per-task success, distances,
trained parameters and training metrics (timings and provenance ignored). Exit status 0 when identical.

    python tests/regression/compare_results.py BEFORE/results/regression AFTER/results/regression
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import torch

IGNORED_METRICS = {"steps_per_s", "eta_s"}


def eval_payload(path: Path) -> dict:
    r = json.loads(path.read_text())
    return {"episodes": r["episodes"], "per_task": r.get("per_task"), "distance": r.get("distance_to_w0"),
            "success": r["success"], "return": r["return"]}


def metric_rows(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: v for k, v in row.items() if k not in IGNORED_METRICS} for row in csv.DictReader(f)]


def compare(a: Path, b: Path) -> list[str]:
    problems = []
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.suffix in (".json", ".pt", ".csv") and "eval" in p.parts
               or p.name in ("model.pt", "metrics.csv")}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.suffix in (".json", ".pt", ".csv") and "eval" in p.parts
               or p.name in ("model.pt", "metrics.csv")}
    for missing in sorted(files_a ^ files_b):
        problems.append(f"only in one: {missing}")
    for rel in sorted(files_a & files_b):
        if rel.suffix == ".json":
            if eval_payload(a / rel) != eval_payload(b / rel):
                problems.append(f"evaluation differs: {rel}")
        elif rel.name == "model.pt":
            na = torch.load(a / rel, weights_only=False)["networks"]
            nb = torch.load(b / rel, weights_only=False)["networks"]
            if na.keys() != nb.keys() or any(not torch.equal(na[k], nb[k]) for k in na):
                problems.append(f"parameters differ: {rel}")
        elif rel.name == "metrics.csv" and metric_rows(a / rel) != metric_rows(b / rel):
            problems.append(f"training metrics differ: {rel}")
    return problems


if __name__ == "__main__":
    problems = compare(Path(sys.argv[1]), Path(sys.argv[2]))
    print("\n".join(problems) if problems else "identical")
    sys.exit(1 if problems else 0)
