"""cfgrl/cpu_kernels.py: importing cfgrl caps numpy's, OpenBLAS's and PyTorch's CPU kernels at AVX2 before they load
(CFGRL_CPU_KERNELS=portable, the default), leaves them alone with `native`, never overrides a variable the user
set, and the provenance of every result records the mode. Each case runs in a fresh interpreter: the caps act
only when a library loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cfgrl import cpu_kernels
from cfgrl.cpu_kernels import PORTABLE
from tests.conftest import REPO

PORTABLE_HERE = cpu_kernels._cpu_has_avx2_and_fma()
PROBE = """
import json, os, sys
{first}
import cfgrl, numpy, torch
from cfgrl import cpu_kernels
from cfgrl.pipeline.provenance import provenance
print(json.dumps({{"state": cpu_kernels.state(), "env": {{k: os.environ.get(k) for k in cpu_kernels.PORTABLE}},
                  "recorded": provenance()["cpu_kernels"]}}))
"""


def probe(mode: str | None = None, first: str = "", **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in PORTABLE and k not in cpu_kernels.RECORDED_IF_SET and k != cpu_kernels.MODE_VARIABLE}
    if mode is not None:
        env[cpu_kernels.MODE_VARIABLE] = mode
    env.update(extra)
    out = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.skipif(not PORTABLE_HERE, reason="not an x86-64 CPU with AVX2 and FMA: nothing is capped")
def test_portable_is_the_default_and_caps_every_library_before_it_loads():
    result = probe()
    assert result["state"]["mode"] == "portable" and result["state"]["loaded_before"] == []
    assert result["env"] == PORTABLE
    assert result["recorded"] == result["state"]  # what every result file's provenance carries
    assert cpu_kernels.summary(result["recorded"]) == "portable"


@pytest.mark.skipif(not PORTABLE_HERE, reason="not an x86-64 CPU with AVX2 and FMA: nothing is capped")
def test_mkl_is_left_its_own_kernels_and_a_users_cap_is_recorded():
    assert probe()["state"]["variables"].keys() == PORTABLE.keys()  # MKL_ENABLE_INSTRUCTIONS is not set
    capped = probe(MKL_ENABLE_INSTRUCTIONS="AVX2")
    assert capped["state"]["variables"]["MKL_ENABLE_INSTRUCTIONS"] == "AVX2"


def test_native_leaves_the_libraries_their_own_choice():
    result = probe("native")
    assert result["state"]["mode"] == "native" and result["state"]["variables"] == {}
    assert all(v is None for v in result["env"].values())
    assert cpu_kernels.summary(result["recorded"]) == "native"


@pytest.mark.skipif(not PORTABLE_HERE, reason="not an x86-64 CPU with AVX2 and FMA: nothing is capped")
def test_a_variable_the_user_set_wins_and_a_late_library_is_recorded():
    result = probe(OPENBLAS_CORETYPE="Zen")
    assert result["env"]["OPENBLAS_CORETYPE"] == "Zen"
    assert result["env"]["NPY_DISABLE_CPU_FEATURES"] == PORTABLE["NPY_DISABLE_CPU_FEATURES"]
    late = probe(first="import numpy")  # numpy loaded before cfgrl: it keeps its own kernels, and the record says so
    assert late["state"]["loaded_before"] == ["numpy"]
    assert cpu_kernels.summary(late["recorded"]) == "portable, late: numpy"


def test_an_unknown_mode_is_one_line_naming_the_variable():
    env = {**os.environ, cpu_kernels.MODE_VARIABLE: "fast"}
    out = subprocess.run([sys.executable, "-c", "import cfgrl"], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == ["error: CFGRL_CPU_KERNELS: must be one of portable, native, got 'fast'"]
    assert issubclass(cpu_kernels.SettingError, ValueError)


@pytest.mark.parametrize("variable, message", [
    ("CFGRL_CPU_KERNELS", "CFGRL_CPU_KERNELS: must be one of portable, native, got 'fast'"),
    ("CFGRL_GELU", "CFGRL_GELU: must be one of c, aten, got 'fast'")])
def test_a_bad_kernel_variable_stops_the_workflow_and_the_cli_in_one_line_before_any_job(tmp_path, variable,
                                                                                        message):
    env = {**os.environ, variable: "fast"}
    plan = subprocess.run(["snakemake", "-n", "--cores", "1", "-s", str(REPO / "Snakefile"), "--directory",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    # snakemake's own line about the profile may come first; then ours, and no traceback
    assert plan.returncode == 1 and plan.stderr.strip().splitlines()[-1] == f"error: {message}", plan.stderr
    assert "Traceback" not in plan.stderr
    cli = subprocess.run([sys.executable, "-m", "cfgrl", "check-spec", str(REPO / "specs" / "default.yaml")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 1 and cli.stderr.strip().splitlines() == [f"error: {message}"], cli.stderr
    assert not (tmp_path / "results").exists()


def test_this_test_process_runs_portable():
    """conftest.py imports cfgrl before numpy and torch, so the data-hash tests (tests/test_data_hashes.py) see the
    portable kernels: the committed hashes are what AVX2 and AVX-512 machines both generate."""
    state = cpu_kernels.state()
    assert state["loaded_before"] == []
    assert state["mode"] == ("portable" if PORTABLE_HERE else "native (no AVX2/FMA or not x86-64)") or \
        os.environ.get(cpu_kernels.MODE_VARIABLE) == "native"


def test_the_cells_table_and_the_report_name_the_mode(tmp_path):
    from analysis.cells import read_cell
    from analysis.run_record import PROVENANCE_COLUMNS

    cell = {"method": "gc_cfgrl", "env": "e", "seed": 0, "w": 1.0, "episodes": [{"success": True, "return": 1.0}],
            "provenance": {"train_provenance": {"cpu_kernels": {"mode": "native", "variables": {},
                                                                "loaded_before": []}}}}
    (tmp_path / "w1.json").write_text(json.dumps(cell))
    assert read_cell(tmp_path / "w1.json")["cpu_kernels"] == "native"
    del cell["provenance"]["train_provenance"]["cpu_kernels"]  # files written before the mode was recorded
    (tmp_path / "w1.json").write_text(json.dumps(cell))
    assert read_cell(tmp_path / "w1.json")["cpu_kernels"] is None
    assert "cpu_kernels" in PROVENANCE_COLUMNS


def test_the_cells_table_tells_cpu_generations_apart():
    """Both machine types of docs/performance.md report the model name 'AMD EPYC'; the label adds what differs."""
    from analysis.cells import cpu_label

    zen4 = {"model": "AMD EPYC", "family_model_stepping": "25/17/1", "simd": ["avx2", "avx512f", "fma"]}
    older = {"model": "AMD EPYC", "family_model_stepping": "23/49/0", "simd": ["avx2", "fma"]}
    assert cpu_label(zen4) == "AMD EPYC (25/17/1, avx512f)" and cpu_label(older) == "AMD EPYC (23/49/0, avx2)"
    assert cpu_label({"model": "M1"}) == "M1" and cpu_label({}) is None
