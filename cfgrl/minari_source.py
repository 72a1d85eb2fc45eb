"""Minari datasets (D4RL ports and others) read from a local MINARI_DATASETS_PATH into flat arrays.

Nothing is downloaded: `minari.load_dataset(..., download=False)` reads `<path>/<dataset id>/data/`. Reading
needs minari with a storage backend (`pip install 'minari[hdf5]'` for the D4RL ports, `minari[arrow]` for arrow
datasets). Transition layout returned by `load_minari`:
    observations (N, obs_dim) float32, next_observations (N, obs_dim) float32, actions (N, A) float32,
    rewards (N,) float32, terminals (N,) float32 (Minari's terminations: absorbing states),
    timeouts (N,) float32 (1 on each episode's last step unless it terminated: truncations, and episodes that
    simply stop), masks (N,) float32 = 1 - terminals, episode_lengths (E,) int64.
N is the total number of steps. Dict observations are flattened: one key (`obs_key`) or all keys concatenated in
sorted order.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cfgrl.data import DataError


@contextlib.contextmanager
def _datasets_path(path: str | Path | None) -> Iterator[None]:
    """Temporarily point MINARI_DATASETS_PATH at `path` (no change if None)."""
    if path is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(path).expanduser())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _flat(obs: Any, obs_key: str | None, where: str) -> np.ndarray:
    """Observations of one episode (T+1, ...) or a dict of them -> (T+1, obs_dim) float32."""
    if isinstance(obs, dict):
        if obs_key is not None:
            if obs_key not in obs:
                raise DataError(f"{where}: observation key '{obs_key}' not in {sorted(obs)}")
            obs = obs[obs_key]
        else:
            parts = [_flat(obs[k], None, where) for k in sorted(obs)]
            return np.concatenate(parts, axis=1)
    if isinstance(obs, tuple):
        return np.concatenate([_flat(o, None, where) for o in obs], axis=1)
    arr = np.asarray(obs)
    return arr.reshape(len(arr), -1).astype(np.float32, copy=False)


def list_local(datasets_path: str | Path | None = None) -> list[str]:
    """Ids of the Minari datasets stored under `datasets_path` (default: MINARI_DATASETS_PATH or ~/.minari)."""
    import minari

    with _datasets_path(datasets_path):
        return sorted(minari.list_local_datasets())


def load_minari(
    dataset_id: str,
    datasets_path: str | Path | None = None,
    obs_key: str | None = None,
    max_episodes: int | None = None,
) -> dict[str, np.ndarray]:
    """Read a local Minari dataset (e.g. 'D4RL/door/human-v2') into the transition layout above."""
    try:
        import minari
    except ImportError as err:
        raise DataError(f"{dataset_id}: minari is not installed (pip install 'minari[hdf5]')") from err
    with _datasets_path(datasets_path):
        root = os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")
        try:
            dataset = minari.load_dataset(dataset_id, download=False)
        except FileNotFoundError as err:
            raise DataError(f"{dataset_id}: not found under {root} (set MINARI_DATASETS_PATH or pass "
                            "datasets_path; nothing is downloaded)") from err
        except (ImportError, ModuleNotFoundError) as err:
            raise DataError(f"{dataset_id}: its storage backend is missing ({err}); pip install "
                            "'minari[hdf5]' or 'minari[arrow]'") from err
        parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                              ("observations", "next_observations", "actions", "rewards",
                                               "terminals", "timeouts")}
        lengths = []
        for i, ep in enumerate(dataset.iterate_episodes()):
            if max_episodes is not None and i >= max_episodes:
                break
            where = f"{dataset_id} episode {ep.id}"
            obs = _flat(ep.observations, obs_key, where)
            actions = np.asarray(ep.actions)
            T = len(actions)
            if len(obs) != T + 1:
                raise DataError(f"{where}: key 'observations' has {len(obs)} rows, expected {T + 1} (T + 1)")
            for key, arr in (("rewards", ep.rewards), ("terminations", ep.terminations),
                             ("truncations", ep.truncations)):
                if np.shape(arr) != (T,):
                    raise DataError(f"{where}: key '{key}' has shape {np.shape(arr)}, expected ({T},)")
            terminals = np.asarray(ep.terminations, dtype=np.float32)
            timeouts = np.asarray(ep.truncations, dtype=np.float32)
            if T and not (terminals[-1] or timeouts[-1]):
                timeouts[-1] = 1.0  # the episode stops here either way
            parts["observations"].append(obs[:-1])
            parts["next_observations"].append(obs[1:])
            parts["actions"].append(actions.reshape(T, -1).astype(np.float32, copy=False))
            parts["rewards"].append(np.asarray(ep.rewards, dtype=np.float32))
            parts["terminals"].append(terminals)
            parts["timeouts"].append(timeouts)
            lengths.append(T)
    if not lengths:
        raise DataError(f"{dataset_id}: no episodes")
    data = {k: np.concatenate(v) for k, v in parts.items()}
    for key in ("observations", "next_observations", "actions", "rewards"):
        if not np.isfinite(data[key]).all():
            raise DataError(f"{dataset_id}: key '{key}' contains NaN or Inf")
    data["masks"] = 1.0 - data["terminals"]
    data["episode_lengths"] = np.asarray(lengths, dtype=np.int64)
    return data
