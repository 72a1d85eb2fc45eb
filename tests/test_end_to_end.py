"""A tiny spec through the real Snakemake workflow; the report must agree with the per-cell result files."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from cfgrl.pipeline.spec import w_label
from cfgrl.pipeline.usage import read_usage
from tests.conftest import REPO

TINY = {
    "name": "tiny",
    "seeds": [0, 1],
    "envs": {"pointmaze-medium-navigate-v0": {"data": {"source": "generate", "episodes": 2},
                                              "eval": {"episodes_per_task": 2, "tasks": [1, 2]}}},
    "methods": {
        "gcbc": {"config": {"steps": 300, "batch_size": 64, "hidden": [64, 64], "log_every": 100}},
        "gc_cfgrl": {"w": [0, 1, 2], "select": {"type": "validation", "on": "episodes"},
                     "config": {"steps": 300, "batch_size": 64, "hidden": [64, 64], "log_every": 100,
                                "flow_steps": 4}},
    },
    "analysis": {"bootstrap_resamples": 1000, "figure_formats": ["png"]},
}


def snakemake(workdir, spec, *extra):
    cmd = [sys.executable, "-m", "snakemake", *extra, "--cores", "2", "-s", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--config", f"spec={spec}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def parse_tables(report: str) -> dict[tuple[str, str], float]:
    """(method, w) -> success % from the report's main per-env tables (header | method | w | seeds | ...)."""
    out, inside = {}, False
    for line in report.splitlines():
        if line.startswith("| method | w | seeds | success |"):
            inside = True
            continue
        if inside and not line.startswith("|"):
            inside = False
        if inside and not line.startswith("|---"):
            cols = [c.strip() for c in line.strip("|").split("|")]
            out[(cols[0], cols[1])] = float(cols[3])
    return out


@pytest.mark.slow
def test_tiny_spec_runs_end_to_end_and_report_matches_cells(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    proc = snakemake(tmp_path, spec)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results" / "tiny"
    report = (out / "report.md").read_text()
    # jobs in the order Snakemake started them: evaluations have priority, so with 4 trainings on 2 cores a
    # finished checkpoint is evaluated before the last training starts (a stopped run keeps its cells)
    started = re.findall(r"^(?:local)?rule ([\w-]+):$", proc.stderr, flags=re.M)
    last_train = max(i for i, name in enumerate(started) if name.startswith("train_"))
    assert any(name.startswith("evaluate_") for name in started[:last_train]), started

    # recompute every number of the report from the per-cell JSON files
    per_cell = {}
    for path in sorted((out / "eval" / "test").glob("*/*/seed*/w*.json")):
        result = json.loads(path.read_text())
        label = "—" if "w" not in result else w_label(result["w"])  # an unguided method's cell has no w
        per_cell.setdefault((result["method"], label), {})[result["seed"]] = np.mean(
            [e["success"] for e in result["episodes"]])
        assert len(result["episodes"]) == 4
        assert result["provenance"]["spec_hash"] and result["provenance"]["packages"]["torch"]
    assert len(per_cell) == 4 and all(len(v) == 2 for v in per_cell.values())
    assert len(list((out / "eval" / "validation").glob("gc_cfgrl/*/seed*/w*.json"))) == 6
    assert "## Reported settings and comparisons" in report and "chosen on validation episodes" in report
    assert "## How far guidance moves the policy from the data" in report
    cell_dir = out / "eval" / "test" / "gc_cfgrl" / "pointmaze-medium-navigate-v0" / "seed0"
    w0, w2 = (json.loads((cell_dir / f"w{w}.json").read_text()) for w in (0, 2))
    assert w0["distance_to_w0"] == 0.0 and w2["distance_to_w0"] > 0.0
    table = parse_tables(report)
    assert set(table) == set(per_cell)
    for key, seeds in per_cell.items():
        assert table[key] == float(f"{100 * np.mean(list(seeds.values())):.1f}"), key
    assert (out / "figures" / "success_vs_w_pointmaze-medium-navigate-v0.png").stat().st_size > 10_000
    assert not list((out / "figures").glob("*.pdf"))  # analysis.figure_formats: [png]
    for log in ("train/gc_cfgrl/pointmaze-medium-navigate-v0/seeds0-0.log", "report.log"):
        assert (out / "logs" / log).exists()
    assert (out / "benchmarks" / "train" / "gcbc" / "pointmaze-medium-navigate-v0" / "seeds1-1.tsv").exists()
    usage = read_usage(out / "logs" / "train" / "gcbc" / "pointmaze-medium-navigate-v0" / "seeds1-1.log")
    assert usage is not None and usage["cpu_s"] > 0  # the job's own CPU time, the cost table's source

    # nothing left to do; `figures` redraws the report without training
    model = out / "train" / "gcbc" / "pointmaze-medium-navigate-v0" / "seed0" / "model.pt"
    mtime = model.stat().st_mtime
    again = snakemake(tmp_path, spec, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    (out / "report.md").unlink()
    redraw = snakemake(tmp_path, spec, "figures")
    assert redraw.returncode == 0, redraw.stderr[-2000:]
    assert (out / "report.md").read_text() == report
    assert model.stat().st_mtime == mtime
    # `snakemake --report` packs the report and its figures into one HTML file (needs pygments)
    html = snakemake(tmp_path, spec, "--report", str(tmp_path / "report.html"))
    assert html.returncode == 0, html.stderr[-2000:]
    assert (tmp_path / "report.html").stat().st_size > 100_000

    # editing one method's config reruns exactly that method's training and evaluation cells
    edited = yaml.safe_load(spec.read_text())
    edited["methods"]["gcbc"]["config"]["steps"] = 301
    spec.write_text(yaml.safe_dump(edited))
    plan = snakemake(tmp_path, spec, "-n")
    stats = dict(re.findall(r"^([\w-]+)\s+(\d+)$", plan.stdout, flags=re.M))
    trainings = {name: n for name, n in stats.items() if name.startswith("train_")}  # one rule per training job
    assert set(trainings) == {f"train_gcbc_pointmaze_medium_navigate_v0_seeds{s}-{s}" for s in (0, 1)}, plan.stdout
    assert stats.get("evaluate_gcbc_test") == "2", plan.stdout[-2000:]
    assert "data" not in stats, plan.stdout[-2000:]


SMALL = {"steps": 100, "batch_size": 32, "hidden": [32, 32], "log_every": 50, "snapshot_every": 50}
ALL_GC = {
    "name": "allgc",
    "seeds": [0],
    "envs": {"pointmaze-medium-navigate-v0": {"data": {"source": "generate", "episodes": 2},
                                              "eval": {"episodes_per_task": 1, "tasks": [1, 2]}}},
    "methods": {name: {"config": SMALL} for name in ("bc", "hgcbc")}
    | {name: {"config": {**SMALL, "flow_steps": 4}} for name in ("flow_bc", "flow_gcbc", "flow_hgcbc")}
    | {"hcfgrl": {"w": [0, 1, 2], "config": {**SMALL, "flow_steps": 4}}},
    "eval": {"at_steps": [50]},  # the step-50 snapshots are evaluated too: performance over training steps
    "analysis": {"figure_formats": ["png"]},
}


@pytest.mark.slow
def test_every_goal_conditioned_method_runs_through_the_pipeline(tmp_path):
    """Every goal-conditioned method, with snapshots (eval.at_steps), TensorBoard logs where the package is
    installed, and the cost table."""
    try:
        import tensorboard  # noqa: F401
        logging = ["csv", "tensorboard"]
    except ImportError:
        logging = ["csv"]
    spec = tmp_path / "allgc.yaml"
    spec.write_text(yaml.safe_dump({**ALL_GC, "train": {"logging": logging}}))
    proc = snakemake(tmp_path, spec)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results" / "allgc"
    report = (out / "report.md").read_text()
    assert "## Performance over training steps" in report
    assert (out / "figures" / "success_vs_step_pointmaze-medium-navigate-v0.png").stat().st_size > 10_000
    snap = json.loads((out / "eval" / "test" / "hcfgrl" / "pointmaze-medium-navigate-v0" / "seed0" / "step50"
                       / "w2.json").read_text())
    assert snap["step"] == 50 and snap["snapshot"] is True
    assert "## What the run cost" in report and "| train |" in report
    own = re.search(r"as each job measured itself \((\d+) of (\d+) jobs", report)
    assert own and own[1] == own[2], "every job of the cost table records its own CPU time"
    if "tensorboard" in logging:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(out / "train" / "hcfgrl" / "pointmaze-medium-navigate-v0" / "seed0"
                                      / "tensorboard")).Reload()
        steps = [e.step for e in events.Scalars("actor/flow_loss")]
        assert steps == [50, 100]
    table = parse_tables(report)
    expected = {(m, "—") for m in ("bc", "flow_bc", "flow_gcbc", "hgcbc", "flow_hgcbc")}
    assert set(table) == expected | {("hcfgrl", w) for w in ("0", "1", "2")}
    hcfgrl = json.loads((out / "eval" / "test" / "hcfgrl" / "pointmaze-medium-navigate-v0" / "seed0" / "w2.json")
                        .read_text())
    assert len(hcfgrl["episodes"]) == 2 and hcfgrl["distance_to_w0"] > 0
