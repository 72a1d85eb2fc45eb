"""Faults: broken data files are one-line errors naming the file and key with nothing written; a killed
evaluation or report leaves no partial file and a rerun completes it; two snakemake runs on one results folder:
the second refuses with the reason."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import yaml

from tests.conftest import REPO

ENV = "pointmaze-medium-navigate-v0"


def cfgrl(*args, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "cfgrl", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def spec_file(tmp_path, steps=40):
    spec = {"name": "f", "seeds": [0], "envs": {ENV: {"data": {"source": "generate", "episodes": 2},
                                                       "eval": {"episodes_per_task": 3, "tasks": [1]}}},
            "methods": {"gcbc": {"config": {"steps": steps, "batch_size": 16, "hidden": [16], "log_every": 20}}}}
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def broken_copies(good, tmp_path):
    """name -> a broken copy of the dataset file `good` (and its -val twin, intact)."""
    arrays = dict(np.load(good))
    val = good.with_name(good.name.replace(".npz", "-val.npz"))
    out = {}

    def write(name, data=None, raw=None):
        path = tmp_path / name / good.name
        path.parent.mkdir()
        (path.parent / val.name).write_bytes(val.read_bytes())
        if raw is not None:
            path.write_bytes(raw)
        else:
            np.savez(path, **data)
        out[name] = path

    write("truncated", raw=good.read_bytes()[: len(good.read_bytes()) // 2])
    write("not_a_zip", raw=b"hello, I am not an npz file")
    write("missing_key", {k: v for k, v in arrays.items() if k != "actions"})
    write("wrong_shape", {**arrays, "observations": arrays["observations"][:, 0]})
    nan = arrays["observations"].copy()
    nan[10, 0] = np.nan
    write("nan", {**arrays, "observations": nan})
    return out


EXPECTED = {"truncated": "cannot read", "not_a_zip": "cannot read", "missing_key": "missing key 'actions'",
            "wrong_shape": "key 'observations' has shape", "nan": "key 'observations' contains NaN or Inf"}


def test_broken_data_is_one_line_naming_the_file_and_nothing_is_written(tmp_path, tiny_navigate_data):
    spec = spec_file(tmp_path)
    for name, path in broken_copies(tiny_navigate_data, tmp_path).items():
        out = tmp_path / name / "run"
        proc = cfgrl("train", "--spec", spec, "--method", "gcbc", "--env", ENV, "--seed", 0, "--data", path,
                     "--out", out, cwd=tmp_path)
        assert proc.returncode == 1, (name, proc.stderr[-2000:])
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), (name, proc.stderr[-2000:])
        assert EXPECTED[name] in lines[0], (name, lines[0])
        assert "Traceback" not in proc.stderr and not out.exists()
    with zipfile.ZipFile(tiny_navigate_data) as z:  # the good file is a real zip (the test's premise)
        assert "observations.npy" in z.namelist()


def _kill_when(proc, predicate, timeout=120):
    t0 = time.time()
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _no_partial(folder):
    return not [p for p in folder.rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]


def _only_complete_files(folder):
    """Every file a reader would open is whole. A SIGKILL can leave a hidden `.name.*.tmp` behind (no handler
    runs; no reader or rule opens it, the next write of name removes it); a PNG must end with its IEND chunk, a PDF
    with %%EOF."""
    for path in folder.rglob("*"):
        if not path.is_file() or (path.name.startswith(".") and path.name.endswith(".tmp")):
            continue
        data = path.read_bytes()
        if path.suffix == ".png" and not data.endswith(b"IEND\xaeB`\x82"):
            return False
        if path.suffix == ".pdf" and b"%%EOF" not in data[-64:]:
            return False
        if not data:
            return False
    return True


@pytest.mark.slow
def test_killed_evaluation_and_report_leave_no_partial_file_and_rerun_completes(tmp_path, tiny_navigate_data):
    spec = spec_file(tmp_path)
    model_dir = tmp_path / "train"
    assert cfgrl("train", "--spec", spec, "--method", "gcbc", "--env", ENV, "--seed", 0, "--data",
                 tiny_navigate_data, "--out", model_dir, cwd=tmp_path).returncode == 0
    cell = tmp_path / "eval" / "w.json"
    args = [sys.executable, "-m", "cfgrl", "evaluate", "--spec", spec, "--method", "gcbc", "--env", ENV, "--seed",
            "0", "--model", model_dir / "model.pt", "--out", cell]
    proc = subprocess.Popen([str(a) for a in args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _kill_when(proc, lambda: (tmp_path / "eval").exists() or time.sleep(1.0) is None)  # mid-evaluation
    assert not cell.exists() and (not (tmp_path / "eval").exists() or _only_complete_files(tmp_path / "eval"))
    assert subprocess.run([str(a) for a in args], cwd=tmp_path, capture_output=True).returncode == 0
    assert json.loads(cell.read_text())["episodes"] and _no_partial(tmp_path / "eval")
    # the report: killed while drawing, no partial report.md / figure; the rerun writes them
    cells = tmp_path / "cells.csv"
    cells_args = [sys.executable, "-m", "analysis", "cells", "--out", cells, cell]
    assert subprocess.run([str(a) for a in cells_args], cwd=tmp_path, capture_output=True).returncode == 0
    rargs = [sys.executable, "-m", "analysis", "report", "--spec", spec, "--cells", cells, "--outdir", tmp_path / "r"]
    proc = subprocess.Popen([str(a) for a in rargs], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _kill_when(proc, lambda: (tmp_path / "r" / "figures").exists())
    assert not (tmp_path / "r" / "report.md").exists() and _only_complete_files(tmp_path / "r")
    assert subprocess.run([str(a) for a in rargs], cwd=tmp_path, capture_output=True).returncode == 0
    assert (tmp_path / "r" / "report.md").read_text().startswith("# Report: f")
    assert _only_complete_files(tmp_path / "r") and _no_partial(tmp_path / "r")  # the rerun removed any temporary


@pytest.mark.slow
def test_a_second_snakemake_run_on_the_same_results_refuses(tmp_path):
    spec = spec_file(tmp_path, steps=3000)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "-s", str(REPO / "Snakefile"), "--directory",
           str(tmp_path), "--config", f"spec={spec}"]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while not list((tmp_path / ".snakemake" / "locks").glob("*")):
            assert first.poll() is None and time.time() - t0 < 120
            time.sleep(0.2)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert second.returncode != 0 and "Directory cannot be locked" in second.stderr + second.stdout
    finally:
        first.kill()
        first.wait()
