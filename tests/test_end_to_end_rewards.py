"""The reward-based half through the real Snakemake workflow: AWR vs offline-RL CFGRL on an OGBench single-task
env and on a dm_control task with offline-generated ExORL-format data."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from tests.conftest import REPO

CONFIG = {"steps": 200, "batch_size": 64, "hidden": [32, 32], "log_every": 100}
TINY = {
    "name": "tinyrl",
    "seeds": [0, 1],
    "envs": {
        "pointmaze-medium-navigate-singletask-v0": {"data": {"source": "generate", "episodes": 2},
                                                    "eval": {"episodes_per_task": 2}},
        "cheetah-run": {"data": {"source": "generate", "episodes": 4, "fit_iterations": 1},
                        "eval": {"episodes_per_task": 2}},
    },
    "methods": {
        "awr": {"envs": ["cheetah-run"], "config": CONFIG},
        "awr_t1": {"method": "awr", "envs": ["cheetah-run"], "config": {**CONFIG, "temperature": 1.0}},
        # a budget every w satisfies: the largest, w = 3
        "cfgrl": {"w": [0, 1, 3], "select": {"type": "budget", "divergence": 100.0},
                  "config": {**CONFIG, "flow_steps": 4}},
        "idql": {"envs": ["cheetah-run"], "config": {**CONFIG, "flow_steps": 4, "num_samples": 4}},
        "fql": {"envs": ["cheetah-run"], "config": {**CONFIG, "flow_steps": 4}},
    },
    "sweeps": {"awr_best": {"entries": ["awr", "awr_t1"], "select": {"type": "validation", "on": "episodes"}}},
    "train": {"seed_group": 2},  # both seeds of an entry in one training job (the tiny spec test runs them apart)
    "analysis": {"bootstrap_resamples": 1000, "figure_formats": ["png"]},
}  # (plain BC runs through the pipeline in test_end_to_end.py's every-method test)


@pytest.mark.slow
def test_reward_based_spec_runs_end_to_end(tmp_path):
    spec = tmp_path / "tinyrl.yaml"
    spec.write_text(yaml.safe_dump(TINY))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "-s", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "--config", f"spec={spec}"],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results" / "tinyrl"
    report = (out / "report.md").read_text()
    for env in TINY["envs"]:
        assert f"## {env}" in report
    assert "| cheetah-run | return | cfgrl (w=3) | awr_best (temperature=" in report  # the sweep's chosen entry
    assert "- `awr_best`: cheetah-run: temperature = " in report and "chosen on validation episodes" in report
    assert (out / "eval" / "validation" / "awr_t1" / "cheetah-run" / "seed1" / "wnone.json").exists()
    dmc = json.loads((out / "eval" / "test" / "cfgrl" / "cheetah-run" / "seed1" / "w3.json").read_text())
    assert len(dmc["episodes"]) == 2 and all(e["length"] == 1000 for e in dmc["episodes"])
    assert np.isfinite(dmc["return"]) and dmc["return"] >= 0
    single = json.loads((out / "eval" / "test" / "cfgrl" / "pointmaze-medium-navigate-singletask-v0" / "seed0"
                         / "w1.json").read_text())
    assert len(single["episodes"]) == 2 and all(e["return"] <= 0 for e in single["episodes"])  # -1 per step
    norms = np.load(out / "train" / "cfgrl" / "cheetah-run" / "seed0" / "grad_norms.npz")["norms"]
    assert norms.shape == (64,) and (norms > 0).all()
    assert (out / "data" / "exorl" / "cheetah" / "rnd" / "ready.json").exists()
    assert "### Per-sample actor-gradient norms on cheetah-run" in report
    assert (out / "figures" / "awr_temperature_vs_cfgrl_w_return.png").stat().st_size > 10_000
    cells = (out / "cells.csv").read_text().splitlines()
    assert cells[0].startswith("method,registry,temperature,") and any(",awr,1.0," in c for c in cells)
    assert (out / "figures" / "grad_norms_cheetah-run.png").stat().st_size > 10_000
    # the stronger baselines run through the whole pipeline; every cell has its divergences
    for method in ("idql", "fql"):
        assert f"| cheetah-run | return | cfgrl (w=3) | {method} |" in report
        result = json.loads((out / "eval" / "test" / method / "cheetah-run" / "seed0" / "wnone.json").read_text())
        assert np.isfinite(result["return"]) and result["data_distance"] > 0
    assert dmc["distance_to_w0"] > 0 and np.isfinite(dmc["kl_to_w0"]) and dmc["data_distance"] > 0
    assert "largest per env whose mean ||a_w - a_0||^2" in report
    assert "## Performance at equal divergence" in report
    assert (out / "figures" / "performance_vs_divergence_return.png").stat().st_size > 10_000
