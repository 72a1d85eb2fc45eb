"""Portable CPU kernels: the same datasets on an AVX-512 machine as on an AVX2 one.

numpy, OpenBLAS (the matrix products of numpy and scipy) and PyTorch each choose their CPU kernels when they load,
from the instruction sets the CPU has. AVX-512 kernels round differently from AVX2 ones, and the suite's offline
data generators (OGBench's oracles, dm_control) call them: on an AVX-512 machine the same spec and seed generated
another pointmaze dataset than on the AVX2 machine the README's numbers came from, and so other results
(docs/performance.md, "Reproducibility across CPUs", has the measurements). Each library reads an environment
variable that caps its kernels; `pin()` sets them, before numpy or torch is imported, to the AVX2 level that every
x86-64 machine of the last decade has (OpenBLAS and numpy; not MKL nor PyTorch's own kernels: see PORTABLE).
cfgrl/__init__.py calls it first thing, so every `cfgrl` command, every
Snakemake job (the Snakefile imports cfgrl, and jobs inherit its environment) and the tests run portable.

CFGRL_CPU_KERNELS selects the mode: `portable` (default) or `native` (each library's own choice, which on AVX-512
machines gives other datasets than AVX2 machines). A variable the user set already is left as it is. Nothing is
set on CPUs without AVX2 and FMA, or that are not x86-64 (there the libraries' choice stands: recorded as native).
Measured on an AVX-512 machine (AMD EPYC, Zen 4): training and evaluation gave identical numbers in both modes;
data generation did not (OpenBLAS's kernels), and the portable mode reproduced the AVX2 machine's data and results.

Importing numpy or torch before cfgrl leaves that library on its own kernels: `state()['loaded_before']` names it,
and every result file's provenance records `state()`.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

MODE_VARIABLE = "CFGRL_CPU_KERNELS"
MODES = ("portable", "native")
GELU_VARIABLE = "CFGRL_GELU"  # the tanh-GELU kernel (cfgrl/core/fast_gelu.py): 'c' (default) or PyTorch's 'aten'
GELU_KERNELS = ("c", "aten")
# the variable each library reads when it loads -> the value that caps it at AVX2
PORTABLE = {
    "OPENBLAS_CORETYPE": "Haswell",  # OpenBLAS (numpy's and scipy's): its AVX2 kernels (AMD Zen uses the same)
    # numpy's AVX-512 loops off (exp, log, sin, ...): numpy >= 2.3 names the group X86_V4, older releases each part
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL",
}
# Not capped: MKL, PyTorch's CPU matrix products. MKL_ENABLE_INSTRUCTIONS=AVX2 was capped until 2026-12-07: on the
# Intel Xeon (AVX-512, AMX) it made a 256 x 256 x 256 product 1.5x slower (114 vs 168 GFLOP/s, 1 thread) and the
# default run's pointmaze updates 1.2x slower, and bought nothing measured: it touches no data generator (those
# call OpenBLAS), and training differed across CPU vendors with it as without it (MKL on AMD ignores it).
# Not capped: PyTorch's own vectorised kernels (ATEN_CPU_CAPABILITY=avx2 would). On the AVX-512 machine they gave
# bit-identical parameters at either level for every method, and capping them cost about 20% of training speed
# (docs/performance.md). Set ATEN_CPU_CAPABILITY=avx2 yourself to cap them too.
# Recorded when set (by the user): the variables that cap the kernels left uncapped.
RECORDED_IF_SET = ("MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "ATEN_CPU_CAPABILITY")
_STATE: dict[str, Any] = {}


class SettingError(ValueError):
    """A CFGRL_* environment variable holds a value it cannot take; the message names the variable."""


def _choice(variable: str, allowed: tuple[str, ...], default: str) -> str:
    value = os.environ.get(variable, default).strip().lower() or default
    if value not in allowed:
        raise SettingError(f"{variable}: must be one of {', '.join(allowed)}, got {os.environ[variable]!r}")
    return value


def requested_gelu() -> str:
    """The GELU kernel CFGRL_GELU asks for: 'c' (default) or 'aten'; another value is a SettingError."""
    return _choice(GELU_VARIABLE, GELU_KERNELS, "c")


def check_environment() -> None:
    """Both variables checked at once, before any job runs (the Snakefile and the CLI call it): a bad value is a
    SettingError naming the variable."""
    _choice(MODE_VARIABLE, MODES, "portable")
    requested_gelu()


def _cpu_has_avx2_and_fma() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return {"avx2", "fma"} <= flags
    except OSError:
        pass
    return False


def pin() -> dict[str, Any]:
    """Set the caps of the mode CFGRL_CPU_KERNELS names (default portable) unless set already; returns `state()`.
    A value other than portable or native is a SettingError naming the variable."""
    mode = _choice(MODE_VARIABLE, MODES, "portable")
    applied = mode == "portable" and _cpu_has_avx2_and_fma()
    if applied:
        for name, value in PORTABLE.items():
            os.environ.setdefault(name, value)
    _STATE.clear()
    _STATE.update({
        "mode": mode if applied or mode == "native" else "native (no AVX2/FMA or not x86-64)",
        "variables": {name: os.environ[name] for name in (*PORTABLE, *RECORDED_IF_SET) if name in os.environ},
        # libraries that had loaded before the caps were set keep their own kernels
        "loaded_before": sorted(name for name in ("numpy", "scipy", "torch") if name in sys.modules),
    })
    return state()


def state() -> dict[str, Any]:
    """{'mode': portable | native | ..., 'variables': the caps in the environment, 'loaded_before': libraries that
    loaded before pin() ran (those kept their own kernels)}."""
    return {"mode": _STATE.get("mode"), "variables": dict(_STATE.get("variables", {})),
            "loaded_before": list(_STATE.get("loaded_before", []))}


def summary(recorded: dict[str, Any] | None = None) -> str | None:
    """A state (default: this process's; or one read from a provenance record) in a few words for tables:
    'portable', 'native', or 'portable, late: numpy' when a library loaded before the caps; None for None."""
    s = state() if recorded is None else recorded
    if not s or s.get("mode") is None:
        return None
    mode, late = str(s["mode"]), s.get("loaded_before") or []
    return mode + (f", late: {'+'.join(late)}" if late and mode == "portable" else "")
