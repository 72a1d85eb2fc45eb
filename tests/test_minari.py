"""Minari: a tiny dataset written to a temporary MINARI_DATASETS_PATH reads back identically (no network), and a
spec env `minari/<dataset id>` goes through data, training, evaluation in the dataset's env and the report."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import yaml

minari = pytest.importorskip("minari")
h5py = pytest.importorskip("h5py")

from minari.data_collector import EpisodeBuffer  # noqa: E402

from analysis.selection import env_metric  # noqa: E402
from cfgrl.data.layout import DataError  # noqa: E402
from cfgrl.data.minari import flatten_observation, list_local, load_minari  # noqa: E402
from cfgrl.envs.registry import resolve_env  # noqa: E402
from cfgrl.methods import method_class  # noqa: E402
from cfgrl.pipeline.cli import main  # noqa: E402
from cfgrl.pipeline.evaluate import evaluate  # noqa: E402
from cfgrl.pipeline.spec import SpecError, load_spec  # noqa: E402
from cfgrl.pipeline.train import build_agent, load_agent, make_sampler, train  # noqa: E402
from tests.conftest import REPO  # noqa: E402


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
    step = {k: v[2] for k, v in obs.items()}  # one env observation, flattened for evaluation in the same layout
    np.testing.assert_array_equal(flatten_observation(step), data["observations"][2])
    only_b = load_minari("cfgrl/dict/tiny-v0", datasets_path=tmp_path, obs_key="b")
    np.testing.assert_array_equal(only_b["next_observations"], obs["b"][1:])


def test_missing_dataset_is_a_clear_error_without_network(tmp_path):
    with pytest.raises(DataError) as err:
        load_minari("D4RL/door/human-v2", datasets_path=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "D4RL/door/human-v2" in msg and str(tmp_path) in msg


# ---------------------------------------------------------------------------------------------------------------
# Minari datasets as spec envs: spec -> `cfgrl data` -> training -> evaluation in the dataset's own env -> report

TINY_ID = "cfgrl/pendulum/tiny-v0"
ENV = f"minari/{TINY_ID}"
EPISODE_STEPS = 15  # the recorded env's time limit (gym.make("Pendulum-v1", max_episode_steps=15))
REF = (-200.0, -10.0)  # the tiny dataset's reference scores (random, expert), for normalised scores


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """A MINARI_DATASETS_PATH holding TINY_ID: 4 random Pendulum episodes of 15 steps."""
    root = tmp_path_factory.mktemp("minari")
    env = gym.make("Pendulum-v1", max_episode_steps=EPISODE_STEPS)
    buffers = [EpisodeBuffer(id=i, seed=3 + i, **ep) for i, ep in enumerate(_episodes(env, 4, seed=3))]
    with pytest.MonkeyPatch.context() as m, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        m.setenv("MINARI_DATASETS_PATH", str(root))
        minari.create_dataset_from_buffers(TINY_ID, buffers, env=env, algorithm_name="random", data_format="hdf5",
                                           ref_min_score=REF[0], ref_max_score=REF[1])
    return root


CONFIG = {"steps": 100, "batch_size": 32, "hidden": [32, 32], "log_every": 50}


def _spec(tmp_path, data: dict, name: str = "mini", seeds: tuple[int, ...] = (0, 1)) -> Path:
    spec = {"name": name, "seeds": list(seeds),
            "envs": {ENV: {"data": data, "eval": {"episodes_per_task": 3}}},
            "methods": {"awr": {"config": CONFIG}, "cfgrl": {"w": [0, 1], "select": {"type": "fixed", "value": 1},
                                                             "config": {**CONFIG, "flow_steps": 4}}},
            "analysis": {"bootstrap_resamples": 1000, "figure_formats": ["png"]}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_minari_env_names_resolve():
    info = resolve_env("minari/mujoco/halfcheetah/medium-v0")
    assert (info.kind.name, info.eval_env_id, info.num_tasks, info.generators) == (
        "minari", "mujoco/halfcheetah/medium-v0", 1, ())
    assert env_metric("minari/mujoco/halfcheetah/medium-v0") == "return" and env_metric("walker-run") == "return"
    for bad in ("minari/mujoco/halfcheetah/medium", "minari/../x-v0", "minari/a//b-v0", "minari/"):
        with pytest.raises(KeyError, match="Minari dataset id"):
            resolve_env(bad)


def test_spec_names_a_minari_env_and_refuses_generate(tmp_path, tiny_root):
    spec = load_spec(_spec(tmp_path, {"source": "local", "path": str(tiny_root)}))
    assert dict(spec.envs[ENV].data) == {"source": "local", "path": str(tiny_root)}  # no generator defaults
    assert spec.envs[ENV].tasks == (1,)
    assert dict(load_spec(_spec(tmp_path, {"source": "download"})).envs[ENV].data) == {"source": "download"}
    cases = [({"source": "generate"}, f"envs.{ENV}.data.source: Minari datasets are not generated"),
             ({"source": "local", "episodes": 10}, f"envs.{ENV}.data.episodes: not used by Minari datasets")]
    for data, expected in cases:
        with pytest.raises(SpecError) as err:
            load_spec(_spec(tmp_path, data))
        assert "\n" not in str(err.value) and expected in str(err.value)
    other = {"name": "o", "seeds": [0], "methods": {"awr": {}},
             "envs": {"cheetah-run": {"data": {"source": "local"}}}}
    (tmp_path / "o.yaml").write_text(yaml.safe_dump(other))
    with pytest.raises(SpecError, match=r"envs.cheetah-run.data.source: 'local' is for Minari datasets only"):
        load_spec(tmp_path / "o.yaml")


def test_data_command_writes_load_minaris_arrays(tmp_path, tiny_root, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tiny_root))  # source local without a path: the env var
    out = tmp_path / "data" / "tiny.npz"
    main(["data", "--spec", str(_spec(tmp_path, {"source": "local"})), "--env", ENV, "--out", str(out)])
    expected = load_minari(TINY_ID, datasets_path=tiny_root)
    train, val = np.load(out), np.load(tmp_path / "data" / "tiny-val.npz")
    assert set(train.files) == set(expected) | {"env_spec", "ref_min_score", "ref_max_score"} == set(val.files)
    assert (float(train["ref_min_score"]), float(train["ref_max_score"])) == REF
    # 4 episodes: the last one is held out as the validation file, the first 3 train (cfgrl.data.episodes)
    for key, arr in expected.items():
        head, tail = (arr[:3], arr[3:]) if key == "episode_lengths" else (arr[:-EPISODE_STEPS], arr[-EPISODE_STEPS:])
        np.testing.assert_array_equal(train[key], head)
        np.testing.assert_array_equal(val[key], tail)
        assert train[key].dtype == arr.dtype
    spec = json.loads(str(train["env_spec"]))  # the evaluation env: the env the data was collected in
    assert (spec["id"], spec["max_episode_steps"]) == ("Pendulum-v1", EPISODE_STEPS)
    awr = method_class("awr")
    sampler = make_sampler(resolve_env(ENV), out, awr, awr.Config())  # training reads it like dm_control data
    np.testing.assert_array_equal(sampler.next_observations, expected["next_observations"][:-EPISODE_STEPS])


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("fault", ["nan", "missing"])
def test_bad_minari_data_is_a_one_line_error(tmp_path, monkeypatch, capsys, fault):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = gym.make("Pendulum-v1", max_episode_steps=5)
    eps = _episodes(env, 3, seed=0)
    if fault == "nan":
        eps[1]["observations"][2, 1] = np.inf
    minari.create_dataset_from_buffers(TINY_ID, [EpisodeBuffer(id=i, **ep) for i, ep in enumerate(eps)], env=env,
                                       algorithm_name="random", data_format="hdf5")
    if fault == "missing":
        with h5py.File(tmp_path / TINY_ID / "data" / "main_data.hdf5", "a") as f:
            del f["episode_1"]["rewards"]
    with pytest.raises(SystemExit) as err:
        main(["data", "--spec", str(_spec(tmp_path, {"source": "local"})), "--env", ENV,
              "--out", str(tmp_path / "d.npz")])
    assert err.value.code == 1
    msg = capsys.readouterr().err.rstrip("\n")
    key = "'observations' contains NaN or Inf" if fault == "nan" else "'rewards' is missing"
    assert "\n" not in msg and msg.startswith(f"error: {TINY_ID} (") and f"episode 1: key {key}" in msg
    assert str(tmp_path / TINY_ID / "data") in msg and not (tmp_path / "d.npz").exists()


def test_evaluation_runs_the_datasets_env_deterministically(tmp_path, tiny_root, monkeypatch):
    spec_path = _spec(tmp_path, {"source": "local", "path": str(tiny_root)})
    data = tmp_path / "tiny.npz"
    main(["data", "--spec", str(spec_path), "--env", ENV, "--out", str(data)])
    spec = load_spec(spec_path)
    train(spec, "cfgrl", ENV, 0, data, tmp_path / "cfgrl")
    agent, _ = load_agent(tmp_path / "cfgrl" / "model.pt")
    env_spec = str(np.load(data)["env_spec"])
    runs = [evaluate(agent, resolve_env(ENV), [1], 3, w, 10_000, 0, env_spec=env_spec) for w in (1.0, 1.0, 0.0)]
    first = runs[0]
    assert [e["length"] for e in first["episodes"]] == [EPISODE_STEPS] * 3
    assert all(np.isfinite(e["return"]) and e["return"] < 0 for e in first["episodes"])  # Pendulum: cost <= 0
    assert np.isnan(first["success"]) and first["return"] == pytest.approx(np.mean([e["return"]
                                                                                   for e in first["episodes"]]))
    assert runs[1]["episodes"] == first["episodes"]  # same seed, same w: identical episodes
    assert len({e["return"] for e in first["episodes"]}) == 3  # episodes differ (own seeds)
    untrained = build_agent("awr", spec.methods["awr"].config, 3, 1, 0, agent.device, 0)
    untrained.eval()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tiny_root))
    from_dataset = evaluate(untrained, resolve_env(ENV), [1], 2, None, 10_000, 0)  # env spec from the dataset
    assert [e["length"] for e in from_dataset["episodes"]] == [EPISODE_STEPS] * 2


def test_offline_download_fails_fast_with_one_line(tmp_path, monkeypatch, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MINARI_REMOTE", "hf://farama-minari")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")  # where minari's Hugging Face remote goes
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    spec = _spec(tmp_path, {"source": "download", "path": str(tmp_path / "minari")})
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as err:
        main(["data", "--spec", str(spec), "--env", ENV, "--out", str(tmp_path / "d.npz")])
    assert err.value.code == 1
    msg = capsys.readouterr().err.rstrip("\n")
    assert time.perf_counter() - t0 < 10
    assert "\n" not in msg and msg.startswith(f"error: {TINY_ID}: cannot download") and f"127.0.0.1:{port}" in msg


@pytest.mark.slow
def test_minari_spec_runs_end_to_end(tmp_path, tiny_root):
    spec = _spec(tmp_path, {"source": "local"}, name="tinyminari")
    env = {**os.environ, "MINARI_DATASETS_PATH": str(tiny_root)}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "-s", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "--config", f"spec={spec}"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results" / "tinyminari"
    assert (out / "data" / "minari" / "cfgrl" / "pendulum" / "tiny-v0-val.npz").exists()
    report = (out / "report.md").read_text()
    assert f"## {ENV}" in report and "Episode return" in report
    cells = pd.read_csv(out / "cells.csv")
    test = cells[(cells["env"] == ENV) & (cells["split"] == "test")]
    assert len(test) == 2 * 1 + 2 * 2  # awr: 2 seeds; cfgrl: 2 seeds x 2 w
    assert np.isfinite(test["return"]).all() and (test["return"] < 0).all()
    # the dataset has reference scores: D4RL-normalised scores beside the return, in the cells and the report
    np.testing.assert_allclose(test["normalized_return"], 100 * (test["return"] - REF[0]) / (REF[1] - REF[0]))
    assert "normalised score" in report
    result = json.loads((out / "eval" / "test" / "cfgrl" / "minari" / TINY_ID.split("/", 1)[0] / "pendulum"
                         / "tiny-v0" / "seed1" / "w0.json").read_text())
    assert [e["length"] for e in result["episodes"]] == [EPISODE_STEPS] * 3
