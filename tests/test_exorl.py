"""ExORL format: generator -> reader round trip, reward relabelling from physics, caching, bad data."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import cfgrl.data.exorl as exorl
from cfgrl.data.exorl import (
    DOMAIN_TASKS,
    LinearController,
    episode_files,
    episode_returns,
    generate_exorl,
    load_exorl,
)
from cfgrl.data.layout import DataError

TINY_FIT = dict(fit_iterations=2, fit_horizon=30)


@pytest.fixture(scope="module")
def walker_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("exorl") / "walker" / "rnd"
    generate_exorl("walker", out, episodes=3, seed=4, workers=1, **TINY_FIT)
    return out


def test_generated_episodes_have_the_exorl_layout(walker_dir):
    files = episode_files(walker_dir)
    assert [f.name for f in files] == [f"episode_{i:06d}_1000.npz" for i in range(3)]
    with np.load(files[0]) as ep:
        assert set(ep.files) == {"observation", "action", "reward", "discount", "physics"}
        assert ep["observation"].shape == (1001, 24) and ep["observation"].dtype == np.float32
        assert ep["action"].shape == (1001, 6) and (ep["action"][0] == 0).all()
        assert ep["physics"].shape == (1001, 18) and ep["physics"].dtype == np.float64
        assert ep["reward"].shape == (1001, 1) and ep["reward"][0, 0] == 0
        assert np.abs(ep["action"]).max() <= 1.0
    manifest = json.loads((walker_dir / "manifest.json").read_text())
    assert len(manifest["episodes"]) == 3 and manifest["collection_task"] == "walker-stand"
    assert {e["behaviour"] for e in manifest["episodes"]} <= {"uniform", "smooth", "controller"}


def test_reader_relabels_rewards_equal_to_the_environment_rewards(walker_dir):
    data = load_exorl("walker-stand", walker_dir, workers=1)  # the task the generator collected with
    stored = np.concatenate([np.load(f)["reward"][1:, 0] for f in episode_files(walker_dir)])
    np.testing.assert_allclose(data["rewards"], stored, rtol=0, atol=1e-6)
    eps = [np.load(f) for f in episode_files(walker_dir)]
    np.testing.assert_array_equal(data["observations"], np.concatenate([e["observation"][:-1] for e in eps]))
    np.testing.assert_array_equal(data["next_observations"], np.concatenate([e["observation"][1:] for e in eps]))
    np.testing.assert_array_equal(data["actions"], np.concatenate([e["action"][1:] for e in eps]))
    assert (data["masks"] == 1).all() and np.flatnonzero(data["timeouts"]).tolist() == [999, 1999, 2999]
    np.testing.assert_array_equal(data["episode_lengths"], [1000, 1000, 1000])
    manifest = json.loads((walker_dir / "manifest.json").read_text())
    np.testing.assert_allclose(episode_returns(data), [e["return/walker-stand"] for e in manifest["episodes"]],
                               atol=1e-3)
    # another task of the domain: different rewards from the same physics
    run = load_exorl("walker-run", walker_dir, workers=2)
    assert not np.allclose(run["rewards"], data["rewards"])
    np.testing.assert_array_equal(run["observations"], data["observations"])


def test_processed_arrays_are_cached_per_task_and_refreshed(walker_dir, monkeypatch):
    first = load_exorl("walker-walk", walker_dir, workers=1)
    assert (walker_dir / "processed" / "walker_walk.npz").exists()

    def fail(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(exorl, "_process_episodes", fail)
    again = load_exorl("walker-walk", walker_dir, workers=1)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    monkeypatch.undo()
    # a changed episode file makes the cache stale
    calls = []
    original = exorl._process_episodes
    monkeypatch.setattr(exorl, "_process_episodes", lambda *a: calls.append(1) or original(*a))
    f = episode_files(walker_dir)[0]
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    load_exorl("walker-walk", walker_dir, workers=1)
    assert calls
    monkeypatch.undo()
    # fewer episodes: a different cache entry
    two = load_exorl("walker-walk", walker_dir, workers=1, max_episodes=2)
    assert len(two["rewards"]) == 2000 and (walker_dir / "processed" / "walker_walk_first2.npz").exists()


@pytest.mark.parametrize("domain", ["cheetah", "quadruped"])
def test_generation_is_deterministic_and_independent_of_workers(tmp_path, domain):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_exorl(domain, a, episodes=2, seed=9, workers=1, **TINY_FIT)
    generate_exorl(domain, b, episodes=2, seed=9, workers=2, **TINY_FIT)
    generate_exorl(domain, c, episodes=2, seed=10, workers=1, **TINY_FIT)
    for fa, fb in zip(episode_files(a), episode_files(b), strict=True):
        assert fa.read_bytes() == fb.read_bytes()
    assert np.load(episode_files(a)[0])["physics"].tolist() != np.load(episode_files(c)[0])["physics"].tolist()
    data = load_exorl(DOMAIN_TASKS[domain][0], a, workers=1)
    stored = np.concatenate([np.load(f)["reward"][1:, 0] for f in episode_files(a)])
    np.testing.assert_allclose(data["rewards"], stored, rtol=0, atol=1e-6)


def _episode(T=5, obs_dim=24, action_dim=6, nphys=18, seed=0):
    rng = np.random.default_rng(seed)
    return {"observation": rng.normal(size=(T + 1, obs_dim)).astype(np.float32),
            "action": rng.uniform(-1, 1, size=(T + 1, action_dim)).astype(np.float32),
            "physics": rng.normal(size=(T + 1, nphys)) * 0.1,
            "reward": np.zeros((T + 1, 1), np.float32)}


@pytest.mark.parametrize(
    "mutate, key, fragment",
    [
        (lambda e: e.pop("physics"), "physics", "missing key"),
        (lambda e: e.pop("observation"), "observation", "missing key"),
        (lambda e: e.__setitem__("action", e["action"][:-1]), "action", "shape"),
        (lambda e: e.__setitem__("observation", e["observation"][:, :20]), "observation", "shape"),
        (lambda e: e.__setitem__("physics", e["physics"][:, :10]), "physics", "shape"),
        (lambda e: e.__setitem__("reward", np.zeros((6, 2), np.float32)), "reward", "shape"),
        (lambda e: e["observation"].__setitem__((2, 3), np.nan), "observation", "NaN or Inf"),
        (lambda e: e["physics"].__setitem__((4, 0), np.inf), "physics", "NaN or Inf"),
        (lambda e: e["reward"].__setitem__((1, 0), np.nan), "reward", "NaN or Inf"),
    ],
)
def test_bad_episode_gives_one_line_error_naming_file_and_key(tmp_path, mutate, key, fragment):
    buffer = tmp_path / "walker" / "rnd" / "buffer"
    buffer.mkdir(parents=True)
    np.savez(buffer / "episode_000000_5.npz", **_episode())
    bad = _episode(seed=1)
    mutate(bad)
    path = buffer / "episode_000001_5.npz"
    np.savez(path, **bad)
    with pytest.raises(DataError) as err:
        load_exorl("walker-walk", buffer.parent, workers=1, use_cache=False)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and f"'{key}'" in message and fragment in message


def test_empty_folder_and_linear_controller(tmp_path):
    with pytest.raises(DataError, match="no episode files"):
        load_exorl("cheetah-run", tmp_path)
    c = LinearController(W=np.full((2, 3), 10.0), mu=np.zeros(3), sd=np.ones(3))
    assert c(np.ones((4, 3))).shape == (4, 2) and (c(np.ones(3)) == 1.0).all()
