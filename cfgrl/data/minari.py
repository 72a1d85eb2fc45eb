"""Minari datasets (D4RL ports and others) read from a local MINARI_DATASETS_PATH into flat arrays.

`load_minari` downloads nothing: `minari.load_dataset(..., download=False)` reads `<path>/<dataset id>/data/`;
`download_minari` fetches a dataset with `minari.download_dataset` (a spec's `source: download`), failing within
seconds when minari's remote cannot be reached. Reading needs minari with a storage backend (`pip install
'minari[hdf5]'` for the D4RL ports, `minari[arrow]` for arrow datasets). Transition layout returned by
`load_minari`:
    observations (N, obs_dim) float32, next_observations (N, obs_dim) float32, actions (N, A) float32,
    rewards (N,) float32, terminals (N,) float32 (Minari's terminations: absorbing states),
    timeouts (N,) float32 (1 on each episode's last step unless it terminated: truncations, and episodes that
    simply stop), masks (N,) float32 = 1 - terminals, episode_lengths (E,) int64.
N is the total number of steps. Dict observations are flattened: one key (`obs_key`) or all keys concatenated in
sorted order; `flatten_observation` flattens one environment observation the same way (evaluation).
`eval_env_spec` is the JSON gymnasium EnvSpec of the environment a dataset is evaluated in (its `eval_env_spec`,
else the env it was collected with), which `make_eval_env` builds.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cfgrl.data.layout import DataError


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


def _add_axis(obs: Any) -> Any:
    """One observation (array, or a dict / tuple of them) -> the same with a leading axis of length 1."""
    if isinstance(obs, dict):
        return {k: _add_axis(v) for k, v in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_add_axis(v) for v in obs)
    return np.asarray(obs)[None]


def flatten_observation(obs: Any, obs_key: str | None = None, where: str = "observation") -> np.ndarray:
    """One environment observation (array, or a dict / tuple of them) -> (obs_dim,) float32, laid out as
    `load_minari` lays out dataset observations (same key order), so a policy trained on the dataset can act."""
    return _flat(_add_axis(obs), obs_key, where)[0]


def _default_root() -> str:
    return os.environ.get("MINARI_DATASETS_PATH", "~/.minari/datasets")


def _open(dataset_id: str) -> Any:
    """minari.load_dataset(dataset_id) from the current MINARI_DATASETS_PATH, with one-line DataErrors."""
    try:
        import minari
    except ImportError as err:
        raise DataError(f"{dataset_id}: minari is not installed (pip install 'minari[hdf5]')") from err
    root = _default_root()
    try:
        return minari.load_dataset(dataset_id, download=False)
    except FileNotFoundError as err:
        raise DataError(f"{dataset_id}: not found under {root} (set MINARI_DATASETS_PATH or pass "
                        "datasets_path; nothing is downloaded)") from err
    except (ImportError, ModuleNotFoundError) as err:
        raise DataError(f"{dataset_id}: its storage backend is missing ({err}); pip install "
                        "'minari[hdf5]' or 'minari[arrow]'") from err
    except (OSError, KeyError, ValueError) as err:
        raise DataError(f"{dataset_id}: cannot read the dataset under {root} ({_one_line(err)})") from err


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


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
    """Read a local Minari dataset (e.g. 'D4RL/door/human-v2') into the transition layout above.

    Raises DataError (one line naming the dataset, its data folder, the episode and the key) for a dataset that
    is missing, unreadable, lacks a key, has inconsistent lengths or holds NaN/Inf."""
    with _datasets_path(datasets_path):
        dataset = _open(dataset_id)
        data_path = getattr(dataset.spec, "data_path", _default_root())
        parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                              ("observations", "next_observations", "actions", "rewards",
                                               "terminals", "timeouts")}
        lengths = []
        episodes = iter(dataset.iterate_episodes())
        for i in range(dataset.total_episodes if max_episodes is None else min(max_episodes,
                                                                                  dataset.total_episodes)):
            try:
                ep = next(episodes)
            except KeyError as err:  # h5py / the storage: a member of an episode is missing
                named = re.search(r"object '([^']+)'", str(err))  # h5py: "... (object 'rewards' doesn't exist)"
                key = named.group(1) if named else " ".join(str(err).strip("'\"").split())
                raise DataError(f"{dataset_id} ({data_path}) episode {i}: key '{key}' is missing") from err
            where = f"{dataset_id} ({data_path}) episode {ep.id}"
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
            episode = {"observations": obs, "actions": actions.reshape(T, -1).astype(np.float32, copy=False),
                       "rewards": np.asarray(ep.rewards, dtype=np.float32)}
            for key, arr in episode.items():
                if not np.isfinite(arr).all():
                    raise DataError(f"{where}: key '{key}' contains NaN or Inf")
            parts["observations"].append(obs[:-1])
            parts["next_observations"].append(obs[1:])
            parts["actions"].append(episode["actions"])
            parts["rewards"].append(episode["rewards"])
            parts["terminals"].append(terminals)
            parts["timeouts"].append(timeouts)
            lengths.append(T)
    if not lengths:
        raise DataError(f"{dataset_id}: no episodes")
    data = {k: np.concatenate(v) for k, v in parts.items()}
    data["masks"] = 1.0 - data["terminals"]
    data["episode_lengths"] = np.asarray(lengths, dtype=np.int64)
    return data


def eval_env_spec(dataset_id: str, datasets_path: str | Path | None = None) -> str:
    """The JSON gymnasium EnvSpec a local dataset is evaluated in: its `eval_env_spec` if it names one, else the
    env it was collected with (what `MinariDataset.recover_environment(eval_env=True)` builds). DataError (one
    line) when it records no environment, its actions are not a Box, or its env has no time limit."""
    import gymnasium

    with _datasets_path(datasets_path):
        dataset = _open(dataset_id)
    spec = getattr(dataset, "_eval_env_spec", None) or dataset.env_spec  # minari 0.5: no public eval-spec accessor
    if spec is None:
        raise DataError(f"{dataset_id}: the dataset records no environment (env_spec is None), so it cannot be "
                        "evaluated")
    if not isinstance(dataset.action_space, gymnasium.spaces.Box):
        raise DataError(f"{dataset_id}: action space {dataset.action_space} is not continuous (Box); the "
                        "suite's methods need continuous actions")
    if spec.max_episode_steps is None:
        raise DataError(f"{dataset_id}: its environment {spec.id} has no time limit (max_episode_steps), which "
                        "evaluation needs")
    return spec.to_json()


def reference_scores(dataset_id: str, datasets_path: str | Path | None = None) -> tuple[float, float] | None:
    """(ref_min_score, ref_max_score) of a local dataset, the reference returns minari.get_normalized_score
    normalises with (random and expert policy; D4RL ports have them), or None when the dataset has none."""
    with _datasets_path(datasets_path):
        metadata = _open(dataset_id).storage.metadata
    low, high = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    return None if low is None or high is None else (float(low), float(high))


def normalized_score(returns: Any, reference: tuple[float, float]) -> Any:
    """minari.get_normalized_score's formula, (return - ref_min) / (ref_max - ref_min), times 100 (the D4RL
    convention: 0 = the random policy, 100 = the expert)."""
    low, high = reference
    return 100.0 * (np.asarray(returns, dtype=np.float64) - low) / (high - low)


def make_eval_env(env_spec_json: str, where: str) -> Any:
    """gymnasium.make of a JSON EnvSpec (from `eval_env_spec`), with a one-line DataError naming `where` when
    the environment cannot be built (e.g. its package, such as mujoco or gymnasium-robotics, is missing)."""
    import gymnasium

    try:
        return gymnasium.make(gymnasium.envs.registration.EnvSpec.from_json(env_spec_json))
    except Exception as err:  # noqa: BLE001  (any failure of a third-party env constructor)
        raise DataError(f"{where}: cannot build its evaluation environment ({_one_line(err)})") from err


def _remote_endpoint() -> tuple[str, str]:
    """(minari's remote, e.g. 'hf://farama-minari', the HTTP endpoint it talks to). minari reads the remote from
    MINARI_REMOTE; Hugging Face remotes go to HF_ENDPOINT (default https://huggingface.co), GCP ones to Google
    Cloud Storage."""
    from minari.storage.remotes import DEFAULT_REMOTE

    remote = os.environ.get("MINARI_REMOTE", DEFAULT_REMOTE)
    kind = remote.split("://", 1)[0]
    if kind == "gcp":
        return remote, "https://storage.googleapis.com"
    return remote, os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def download_minari(dataset_id: str, datasets_path: str | Path | None = None, connect_timeout: float = 5.0) -> None:
    """Download a dataset with `minari.download_dataset` into `datasets_path` (default MINARI_DATASETS_PATH) unless
    it is there already. Before minari is called, its remote's endpoint is probed (`connect_timeout` s, proxies
    honoured), so offline this fails within seconds; every failure is a one-line DataError naming the dataset."""
    import urllib.parse

    from cfgrl.data.download import _connect

    try:
        import minari
    except ImportError as err:
        raise DataError(f"{dataset_id}: minari is not installed (pip install 'minari[hdf5]')") from err
    with _datasets_path(datasets_path):
        root = _default_root()
        if (Path(root).expanduser() / dataset_id / "data").exists():
            return
        remote, endpoint = _remote_endpoint()
        if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") and remote.startswith("hf://"):
            raise DataError(f"{dataset_id}: cannot download from {remote}: HF_HUB_OFFLINE is set (use source: "
                            f"local with the dataset under {root})")
        try:
            conn, _ = _connect(urllib.parse.urlsplit(endpoint), connect_timeout, connect_timeout)
            conn.close()
        except Exception as err:  # noqa: BLE001  (cfgrl.data.download's _Unreachable, _Retryable, _Permanent)
            raise DataError(f"{dataset_id}: cannot download from {remote}: {err} (use source: local with the "
                            f"dataset under {root})") from err
        try:
            minari.download_dataset(dataset_id)
        except ImportError as err:
            raise DataError(f"{dataset_id}: minari's remote {remote} needs an extra package ({_one_line(err)}; "
                            "pip install 'minari[hf]' or 'minari[gcs]')") from err
        except Exception as err:  # noqa: BLE001  (minari raises ValueError, network and storage errors)
            raise DataError(f"{dataset_id}: download from {remote} failed ({_one_line(err)})") from err
