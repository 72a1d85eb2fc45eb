"""Minari: a tiny dataset written to a temporary MINARI_DATASETS_PATH reads back identically (no network)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

minari = pytest.importorskip("minari")
pytest.importorskip("h5py")

from minari.data_collector import EpisodeBuffer  # noqa: E402

from cfgrl.data import DataError  # noqa: E402
from cfgrl.minari_source import list_local, load_minari  # noqa: E402


def _episodes(env, n: int, seed: int) -> list[dict]:
    """Random-action Pendulum episodes; episode 1 is marked terminated, episode 2 stops without a flag."""
    out = []
    for ep in range(n):
        obs, _ = env.reset(seed=seed + ep)
        rec = {"observations": [obs], "actions": [], "rewards": [], "terminations": [], "truncations": []}
        env.action_space.seed(seed + ep)
        done = False
        while not done:
            a = env.action_space.sample()
            obs, r, term, trunc, _ = env.step(a)
            for k, v in zip(("observations", "actions", "rewards", "terminations", "truncations"),
                            (obs, a, r, term, trunc), strict=True):
                rec[k].append(v)
            done = term or trunc
        if ep == 1:
            rec["terminations"][-1], rec["truncations"][-1] = True, False
        if ep == 2:
            rec["truncations"][-1] = False
        out.append({k: np.asarray(v) for k, v in rec.items()})
    return out


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_local_dataset_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "unused"))  # our argument must win
    env = gym.make("Pendulum-v1", max_episode_steps=15)
    eps = _episodes(env, 4, seed=3)
    buffers = [EpisodeBuffer(id=i, seed=3 + i, **ep) for i, ep in enumerate(eps)]
    with monkeypatch.context() as m:
        m.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
        minari.create_dataset_from_buffers("cfgrl/pendulum/tiny-v0", buffers, env=env, algorithm_name="random",
                                           data_format="hdf5")
    data = load_minari("cfgrl/pendulum/tiny-v0", datasets_path=tmp_path / "minari")
    assert list_local(tmp_path / "minari") == ["cfgrl/pendulum/tiny-v0"]
    np.testing.assert_array_equal(data["episode_lengths"], [15, 15, 15, 15])
    np.testing.assert_array_equal(data["observations"], np.concatenate([e["observations"][:-1] for e in eps]))
    np.testing.assert_array_equal(data["next_observations"], np.concatenate([e["observations"][1:] for e in eps]))
    np.testing.assert_array_equal(data["actions"], np.concatenate([e["actions"] for e in eps]))
    np.testing.assert_array_equal(data["rewards"], np.concatenate([e["rewards"] for e in eps]).astype(np.float32))
    ends = np.cumsum(data["episode_lengths"]) - 1
    assert np.flatnonzero(data["terminals"]).tolist() == [ends[1]]
    assert np.flatnonzero(data["timeouts"]).tolist() == [ends[0], ends[2], ends[3]]
    np.testing.assert_array_equal(data["masks"], 1.0 - data["terminals"])
    assert all(data[k].dtype == np.float32 for k in ("observations", "actions", "rewards", "terminals"))
    first = load_minari("cfgrl/pendulum/tiny-v0", datasets_path=tmp_path / "minari", max_episodes=2)
    assert len(first["rewards"]) == 30


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_dict_observations_flatten(tmp_path, monkeypatch):
    space = gym.spaces.Dict({"b": gym.spaces.Box(-1, 1, (2,)), "a": gym.spaces.Box(-1, 1, (3,))})
    rng = np.random.default_rng(0)
    obs = {"a": rng.uniform(-1, 1, (6, 3)).astype(np.float32), "b": rng.uniform(-1, 1, (6, 2)).astype(np.float32)}
    buf = EpisodeBuffer(id=0, observations=obs, actions=rng.uniform(-1, 1, (5, 1)).astype(np.float32),
                        rewards=list(rng.normal(size=5)), terminations=[False] * 5, truncations=[False] * 4 + [True])
    with monkeypatch.context() as m:
        m.setenv("MINARI_DATASETS_PATH", str(tmp_path))
        minari.create_dataset_from_buffers("cfgrl/dict/tiny-v0", [buf], observation_space=space,
                                           action_space=gym.spaces.Box(-1, 1, (1,)), algorithm_name="x",
                                           data_format="hdf5")
    data = load_minari("cfgrl/dict/tiny-v0", datasets_path=tmp_path)
    np.testing.assert_array_equal(data["observations"], np.concatenate([obs["a"], obs["b"]], axis=1)[:-1])
    only_b = load_minari("cfgrl/dict/tiny-v0", datasets_path=tmp_path, obs_key="b")
    np.testing.assert_array_equal(only_b["next_observations"], obs["b"][1:])


def test_missing_dataset_is_a_clear_error_without_network(tmp_path):
    with pytest.raises(DataError) as err:
        load_minari("D4RL/door/human-v2", datasets_path=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "D4RL/door/human-v2" in msg and str(tmp_path) in msg
