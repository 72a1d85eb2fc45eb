"""The cells table: one row per (method, env, seed, w) evaluation result file."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from cfgrl.cpu_kernels import summary

CELL_COLUMNS = ["method", "registry", "temperature", "env", "seed", "w", "split", "step", "snapshot", "success",
                "return", "normalized_return", "distance_to_w0", "kl_to_w0", "data_distance",
                "episodes", "per_task", "spec_hash", "code_version", "data_sha256", "cpu", "cpu_kernels",
                "gelu_kernel", "environment_hash", "path"]


def gelu_label(state: dict | None) -> str | None:
    """The tanh-GELU kernel of a provenance record (cfgrl.core.fast_gelu.state()) in a word or two."""
    if not state:
        return None
    return f"c ({state['isa']})" if state.get("kernel") == "c" else f"aten ({state.get('reason', '?')})"


def cpu_label(cpu: dict) -> str | None:
    """A provenance record's CPU in a few words that tell machine types apart (one model name, e.g. 'AMD EPYC',
    covers several generations): 'AMD EPYC (25/17/1, avx512f)' = model, family/model/stepping, widest SIMD."""
    if not cpu.get("model"):
        return None
    simd = cpu.get("simd") or []
    widest = next((f for f in ("avx512f", "avx2") if f in simd), None)
    details = [d for d in (cpu.get("family_model_stepping"), widest) if d]
    return f"{cpu['model']} ({', '.join(details)})" if details else str(cpu["model"])


def read_cell(path: str | Path) -> dict:
    """One result JSON -> one row. `success` is the mean over the cell's episodes (episodes averaged first)."""
    with open(path) as f:
        result = json.load(f)
    episodes = result["episodes"]
    flags = [e["success"] for e in episodes]
    success = float("nan") if any(f is None for f in flags) else float(np.mean(flags))
    prov = result["provenance"]
    train = prov.get("train_provenance") or {}
    return {
        "method": result["method"],  # the spec's method entry
        "registry": result.get("registry", result["method"]),  # the registered method behind it
        "temperature": result.get("settings", {}).get("temperature", np.nan),  # AWR's T
        "env": result["env"],
        "seed": int(result["seed"]),
        "w": float(result["w"]) if result.get("w") is not None else np.nan,  # none: an unguided method
        "split": result.get("split", "test"),
        "step": int(result.get("step", prov.get("train_provenance", {}).get("steps", -1))),  # training steps
        "snapshot": bool(result.get("snapshot", False)),  # a snapshot (eval.at_steps), not the final model
        "success": success,
        "return": float(np.mean([e.get("return", np.nan) for e in episodes])),
        "normalized_return": result.get("normalized_return", np.nan),  # Minari: minari.get_normalized_score x 100
        "distance_to_w0": result.get("distance_to_w0", np.nan),  # mean ||a_w - a_0||^2 on held-out states
        "kl_to_w0": result.get("kl_to_w0", np.nan),  # k-NN estimate of KL(pi_w || pi_0) on held-out states
        "data_distance": result.get("data_distance", np.nan),  # mean ||a - a_data||^2 on held-out states
        "episodes": len(episodes),
        "per_task": json.dumps(result.get("per_task") or {}, sort_keys=True),  # {task: success}, goal-conditioned
        "spec_hash": prov.get("spec_hash"),
        "code_version": prov.get("code_version"),
        "data_sha256": train.get("data_sha256"),  # cfgrl.pipeline.provenance.array_hash of the training data file
        "cpu": cpu_label(train.get("cpu") or {}),  # the CPU that trained the checkpoint
        "environment_hash": train.get("environment_hash"),
        "cpu_kernels": summary(train.get("cpu_kernels") or {}),  # CFGRL_CPU_KERNELS of the training job
        "gelu_kernel": gelu_label(train.get("gelu_kernel")),  # cfgrl.core.fast_gelu: 'c' or 'aten' (None: before it)
        "path": str(path),
    }


def collect_cells(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Read every result file into the cells table, sorted by (method, env, w, seed)."""
    rows = [read_cell(p) for p in paths]
    table = pd.DataFrame(rows, columns=CELL_COLUMNS)
    return table.sort_values(["split", "method", "env", "w", "seed"], na_position="first").reset_index(drop=True)
