"""Provenance stamped into every checkpoint and result file: code version, package versions, the machine and the
dataset, so a user can tell why two machines' numbers differ."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

import cfgrl
from cfgrl import cpu_kernels

# packages whose version can change a number the suite prints (simulators, numerics, data, statistics)
PACKAGES = ("torch", "numpy", "scipy", "ogbench", "mujoco", "dm_control", "gymnasium", "minari", "h5py", "pandas",
            "rliable", "arch", "snakemake")


def code_version() -> str:
    """`git describe` of the source tree when available (with '-dirty'), else the package version."""
    root = Path(cfgrl.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return cfgrl.__version__


@functools.cache
def package_versions() -> dict[str, str | None]:
    """Installed versions of PACKAGES (None where absent)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.cache
def environment_hash() -> str:
    """Short hash of every installed distribution and version (pip freeze, sorted): equal hashes, equal installs."""
    names = sorted(f"{d.metadata['Name']}=={d.version}".lower() for d in metadata.distributions())
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


@functools.cache
def cpu_info() -> dict[str, Any]:
    """The CPU that ran the job: model name, vendor, family/model/stepping, SIMD flags, the SIMD level torch dispatches
    to, cores."""
    info: dict[str, Any] = {"machine": platform.machine(), "model": platform.processor() or None}
    try:
        text = Path("/proc/cpuinfo").read_text()
        first = text.split("\n\n")[0]
        fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["model"] = fields.get("model name", info["model"])
        info["vendor"] = fields.get("vendor_id")
        info["family_model_stepping"] = "/".join(fields.get(k, "?") for k in ("cpu family", "model", "stepping"))
        flags = set(fields.get("flags", "").split())
        info["simd"] = sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "fma", "sse4_2"})
    except OSError:
        pass
    try:
        import torch

        info["torch_capability"] = torch.backends.cpu.get_cpu_capability()
    except (ImportError, AttributeError):
        pass
    info["cores"] = os.cpu_count()
    return info


def array_hash(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of a dataset's arrays: every key (sorted) with its dtype, shape and bytes. It names the data, not
    the .npz container (whose zip timestamps differ between two writes of the same arrays)."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def data_hash(path: str | Path) -> str:
    """`array_hash` of an .npz dataset file (`cfgrl data-hash FILE` prints it)."""
    with np.load(path, allow_pickle=False) as file:
        return array_hash({k: file[k] for k in file.files})


def provenance(spec: Any = None, **extra: Any) -> dict[str, Any]:
    """The provenance record: code, packages, machine, the spec (a cfgrl.pipeline.spec.Spec) and `extra`."""
    from cfgrl.core import fast_gelu  # imports torch: not at module level (the analysis layer loads no torch)

    out = {"code_version": code_version(), "cfgrl": cfgrl.__version__, "python": platform.python_version(),
           "packages": package_versions(), "environment_hash": environment_hash(), "cpu": cpu_info(),
           "cpu_kernels": cpu_kernels.state(), "gelu_kernel": fast_gelu.state(), "host": platform.node()}
    if spec is not None:
        out["spec_hash"] = spec.hash
        out["spec_path"] = spec.path
    out.update(extra)
    return out
