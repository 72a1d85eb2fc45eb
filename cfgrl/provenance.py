"""Provenance stamped into every checkpoint and result file."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import cfgrl

_PACKAGES = ("torch", "numpy", "ogbench", "mujoco", "dm_control", "gymnasium", "snakemake")


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


def provenance(spec: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    out = {"code_version": code_version(), "cfgrl": cfgrl.__version__, "python": platform.python_version(),
           "packages": versions, "host": platform.node()}
    if spec is not None:
        out["spec_hash"] = spec.get("_hash")
        out["spec_path"] = spec.get("_path")
    out.update(extra)
    return out
