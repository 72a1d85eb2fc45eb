import numpy as np
import ogbench

from cfgrl.data.layout import load_ogbench_npz, val_path
from cfgrl.data.navigate import generate_navigate


def test_generated_dataset_round_trips_through_ogbench_loader(tiny_navigate_data):
    env, train, val = ogbench.make_env_and_datasets("pointmaze-medium-navigate-v0",
                                                    dataset_path=str(tiny_navigate_data), compact_dataset=True)
    raw = np.load(tiny_navigate_data)
    assert set(raw.files) == {"observations", "actions", "terminals", "qpos", "qvel"}
    assert raw["terminals"].dtype == bool and raw["observations"].dtype == np.float32
    np.testing.assert_array_equal(train["observations"], raw["observations"])
    np.testing.assert_array_equal(train["actions"], raw["actions"])
    np.testing.assert_array_equal(train["valids"], 1.0 - raw["terminals"])
    ours = load_ogbench_npz(tiny_navigate_data)
    for key in ("observations", "actions"):
        np.testing.assert_array_equal(ours[key], raw[key])
    raw_val = np.load(val_path(tiny_navigate_data))
    np.testing.assert_array_equal(val["observations"], raw_val["observations"])
    # OGBench layout facts: 1001-step episodes, terminal on each episode's last row, obs = qpos for pointmaze
    assert len(raw["observations"]) == 4 * 1001 and len(raw_val["observations"]) == 1001
    np.testing.assert_array_equal(np.flatnonzero(raw["terminals"]), np.arange(1, 5) * 1001 - 1)
    np.testing.assert_allclose(raw["observations"], raw["qpos"], atol=1e-6)
    assert env.observation_space.shape == raw["observations"].shape[1:]


def test_generated_actions_follow_the_oracle_with_noise(tiny_navigate_data):
    raw = np.load(tiny_navigate_data)
    a = raw["actions"]
    assert a.min() >= -1 and a.max() <= 1
    # unit direction + N(0, 0.2) noise: mean norm near 1, the data moves the agent (not random actions)
    assert 0.8 < np.linalg.norm(a, axis=1).mean() < 1.3
    moved = np.linalg.norm(raw["observations"][1000] - raw["observations"][0])
    assert moved > 1.0


def test_generation_is_deterministic_and_independent_of_workers(tmp_path):
    a = tmp_path / "a.npz"
    b = tmp_path / "b.npz"
    generate_navigate("pointmaze-medium-v0", a, episodes=2, seed=7, workers=1, episode_steps=200)
    generate_navigate("pointmaze-medium-v0", b, episodes=2, seed=7, workers=2, episode_steps=200)
    ra, rb = np.load(a), np.load(b)
    for key in ra.files:
        np.testing.assert_array_equal(ra[key], rb[key])
    c = tmp_path / "c.npz"
    generate_navigate("pointmaze-medium-v0", c, episodes=2, seed=8, workers=1, episode_steps=200)
    assert not np.array_equal(np.load(c)["actions"], ra["actions"])
