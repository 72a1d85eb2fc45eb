"""The OGBench dataset layout every goal-conditioned and single-task file follows, its one validator, and the
rule that names a dataset's validation file.

Layout (compact): per step t of every episode, `observations[t]` (N, obs_dim), `actions[t]` (N, A),
`terminals[t]` (N,) = 1 on the last step of each episode; optional info keys `qpos`, `qvel`, `button_states`
(N, ...). A transition (s_t, a_t, s_{t+1}) exists for every step that is not an episode's last one.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

REQUIRED_KEYS = ("observations", "actions", "terminals")
INFO_KEYS = ("qpos", "qvel", "button_states")
_CHUNK_ROWS = 1 << 16


class DataError(ValueError):
    """A dataset file is malformed or missing; the message names the file and the key."""


def val_path(path: str | Path) -> Path:
    """A dataset file's validation twin: <name>.npz -> <name>-val.npz in the same folder (OGBench's naming)."""
    path = Path(path)
    return path.with_name(path.name.replace(".npz", "-val.npz"))


def validate_arrays(arrays: dict[str, np.ndarray], path: str | Path) -> None:
    """Check keys, shapes and finiteness of an OGBench-layout dataset (in memory or memory-mapped: finiteness is
    checked in row chunks, without full-size temporaries); raise DataError naming the file and key on the first
    fault."""
    for key in REQUIRED_KEYS:
        if key not in arrays:
            raise DataError(f"{path}: missing key '{key}'")
    n = len(arrays["observations"])
    for key in (*REQUIRED_KEYS, *INFO_KEYS):
        if key not in arrays:
            continue
        arr = arrays[key]
        ndim_ok = arr.ndim == 1 if key == "terminals" else arr.ndim >= 2
        if not ndim_ok or len(arr) != n:
            raise DataError(f"{path}: key '{key}' has shape {arr.shape}, expected "
                            f"{'(N,)' if key == 'terminals' else '(N, D)'} with N = {n}")
    for key in ("observations", "actions", "qpos", "qvel"):
        arr = arrays.get(key)
        if arr is None or not np.issubdtype(arr.dtype, np.floating):
            continue
        for start in range(0, n, _CHUNK_ROWS):
            if not np.isfinite(arr[start : start + _CHUNK_ROWS]).all():
                raise DataError(f"{path}: key '{key}' contains NaN or Inf")
    if n == 0 or arrays["terminals"][-1] == 0:
        raise DataError(f"{path}: key 'terminals' must end an episode on the last row")


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file, in memory; DataError (naming the file) when it is missing or not a valid
    .npz (truncated, not a zip, a corrupt member)."""
    try:
        with np.load(path, allow_pickle=False) as file:
            return {k: file[k] for k in file.files}
    except FileNotFoundError as err:
        raise DataError(f"{path}: no such dataset file") from err
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: cannot read ({type(err).__name__}: {err})") from err


def load_ogbench_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read an OGBench .npz file, validated, as float32 observations/actions and float32 terminals."""
    arrays = read_npz(path)
    validate_arrays(arrays, path)
    arrays["observations"] = arrays["observations"].astype(np.float32, copy=False)
    arrays["actions"] = arrays["actions"].astype(np.float32, copy=False)
    arrays["terminals"] = arrays["terminals"].astype(np.float32, copy=False)
    return arrays
