"""Offline OGBench play data (cfgrl.data.play): OGBench's file format, loaders, determinism, non-trivial data."""

import numpy as np
import ogbench
import pytest
import yaml

from cfgrl.data.layout import load_ogbench_npz, val_path
from cfgrl.data.ogbench import load_ogbench
from cfgrl.data.play import PLAY_NOISE, _play_episodes, generate_play, play_keys, scene_episode_healthy
from cfgrl.envs.registry import resolve_env
from cfgrl.pipeline.spec import load_spec

# gymnasium's notes on OGBench's float64 space bounds; glfw without a display (nothing is rendered)
pytestmark = [pytest.mark.filterwarnings("ignore:.*precision lowered by casting"),
              pytest.mark.filterwarnings("ignore:.*DISPLAY environment variable")]

FAMILIES = ["cube-single", "cube-double", "scene", "puzzle-3x3"]
STEPS = 150  # short episodes: long enough for the oracles to move a cube / press buttons
# OGBench's play files: these keys exactly (generate_manipspace.py), button_states only where the env has buttons
KEYS = {
    "cube-single": {"observations", "actions", "terminals", "qpos", "qvel"},
    "cube-double": {"observations", "actions", "terminals", "qpos", "qvel"},
    "scene": {"observations", "actions", "terminals", "qpos", "qvel", "button_states"},
    "puzzle-3x3": {"observations", "actions", "terminals", "qpos", "qvel", "button_states"},
}
NUM_BUTTONS = {"scene": 2, "puzzle-3x3": 9}
# first observation index of the button blocks (one-hot state (2), position, velocity per button): after the 19
# proprioceptive dims, and for scene after its cube's 9 dims (OGBench's compute_observation)
BUTTON_OB_START = {"scene": 28, "puzzle-3x3": 19}


@pytest.fixture(scope="module")
def play_data(tmp_path_factory):
    """One train and one val episode of STEPS steps per family: {family: train file path}."""
    folder = tmp_path_factory.mktemp("play")
    paths = {}
    for family in FAMILIES:
        paths[family] = folder / f"{family}-play-v0.npz"
        counts = generate_play(f"{family}-v0", paths[family], episodes=1, seed=1, episode_steps=STEPS, workers=1)
        assert counts == {"train": STEPS, "val": STEPS}
    return paths


@pytest.mark.parametrize("family", FAMILIES)
def test_play_file_has_ogbench_keys_dtypes_and_shapes(play_data, family):
    import gymnasium

    path = play_data[family]
    env = gymnasium.make(f"{family}-v0").unwrapped
    for file in (path, val_path(path)):
        raw = np.load(file)
        assert set(raw.files) == KEYS[family] == set(play_keys(f"{family}-v0"))
        n = STEPS
        assert raw["observations"].shape == (n, *env.observation_space.shape)
        assert raw["actions"].shape == (n, 5)
        assert raw["qpos"].shape == (n, env.model.nq) and raw["qvel"].shape == (n, env.model.nv)
        for key in ("observations", "actions", "qpos", "qvel"):
            assert raw[key].dtype == np.float32, key
        assert raw["terminals"].dtype == bool
        np.testing.assert_array_equal(np.flatnonzero(raw["terminals"]), [n - 1])  # one fixed-length episode
        if family in NUM_BUTTONS:
            assert raw["button_states"].dtype == np.int64
            assert raw["button_states"].shape == (n, NUM_BUTTONS[family])
            assert set(np.unique(raw["button_states"])) <= {0, 1}
        assert raw["actions"].min() >= -1 and raw["actions"].max() <= 1


@pytest.mark.parametrize("family", FAMILIES)
def test_play_file_loads_through_ogbench_and_the_suite(play_data, family):
    path = play_data[family]
    raw = np.load(path)
    env, train, val = ogbench.make_env_and_datasets(f"{family}-play-v0", dataset_path=str(path),
                                                    compact_dataset=True)
    np.testing.assert_array_equal(train["observations"], raw["observations"])
    np.testing.assert_array_equal(train["actions"], raw["actions"])
    np.testing.assert_array_equal(train["valids"], 1.0 - raw["terminals"])
    np.testing.assert_array_equal(val["observations"], np.load(val_path(path))["observations"])
    assert env.observation_space.shape == raw["observations"].shape[1:]
    ours = load_ogbench_npz(path)
    assert set(ours) == set(raw.files)
    for key in raw.files:
        np.testing.assert_array_equal(ours[key], raw[key].astype(ours[key].dtype), err_msg=key)
    # the single-task variant relabels rewards from qpos (and button_states): OGBench and the suite agree
    name = f"{family}-play-singletask-v0"
    _, og_train, _ = ogbench.make_env_and_datasets(name, dataset_path=str(path))
    suite_train, _ = load_ogbench(name, dataset_path=path)
    for key in ("observations", "actions", "rewards", "masks", "next_observations"):
        np.testing.assert_array_equal(suite_train[key], og_train[key], err_msg=key)


@pytest.mark.parametrize("family", FAMILIES)
def test_play_rows_pair_each_observation_with_its_state(play_data, family):
    import gymnasium

    raw = np.load(play_data[family])
    arm = gymnasium.make(f"{family}-v0").unwrapped._arm_joint_ids
    obs = raw["observations"]
    np.testing.assert_allclose(obs[:, :6], raw["qpos"][:, arm], atol=1e-6)  # joint positions = qpos before step
    np.testing.assert_allclose(obs[:, 6:12], raw["qvel"][:, arm], atol=1e-6)
    if family in NUM_BUTTONS:
        start = BUTTON_OB_START[family]
        for i in range(NUM_BUTTONS[family]):
            np.testing.assert_array_equal(obs[:, start + 4 * i + 1], raw["button_states"][:, i])


@pytest.mark.parametrize("family", FAMILIES)
def test_play_data_is_not_trivial(play_data, family):
    rows = {k: np.concatenate([np.load(p)[k] for p in (play_data[family], val_path(play_data[family]))])
            for k in ("actions", "qpos", "button_states") if k in KEYS[family]}
    eps = {k: v.reshape(2, STEPS, *v.shape[1:]) for k, v in rows.items()}
    assert rows["actions"].std(axis=0).min() > 0.01  # the oracle acts on every action dimension
    effector_moved = np.abs(eps["qpos"][:, -1, :6] - eps["qpos"][:, 0, :6]).max()
    assert effector_moved > 0.1
    if family.startswith("cube"):
        n_cubes = 1 if family == "cube-single" else 2
        cube_xyz = np.concatenate([eps["qpos"][..., 14 + 7 * i: 17 + 7 * i] for i in range(n_cubes)], axis=-1)
        moved = np.abs(cube_xyz - cube_xyz[:, :1]).max()
        assert moved > 0.02, f"no cube moved more than 2 cm (max {moved:.4f})"
    else:
        changes = (np.diff(eps["button_states"], axis=1) != 0).any(axis=-1).sum()
        state_change = np.abs(eps["qpos"][:, -1, 14:] - eps["qpos"][:, 0, 14:]).max()  # objects, drawer, window
        assert changes >= 1 and state_change > 0.01


@pytest.mark.parametrize("family", FAMILIES)
def test_an_episode_does_not_depend_on_the_episodes_before_it(family):
    together = _play_episodes(f"{family}-v0", 5, [0, 1, 2], PLAY_NOISE, 30)
    alone = _play_episodes(f"{family}-v0", 5, [2], PLAY_NOISE, 30)
    for key in together:
        np.testing.assert_array_equal(together[key][60:], alone[key], err_msg=key)


def test_generation_is_deterministic_and_independent_of_workers(tmp_path):
    a, b, c = tmp_path / "a.npz", tmp_path / "b.npz", tmp_path / "c.npz"
    generate_play("cube-double-v0", a, episodes=4, seed=7, episode_steps=30, workers=1)  # chunks of 2 episodes
    generate_play("cube-double-v0", b, episodes=4, seed=7, episode_steps=30, workers=2)  # chunks of 1
    for x, y in ((a, b), (val_path(a), val_path(b))):
        rx, ry = np.load(x), np.load(y)
        assert rx.files == ry.files
        for key in rx.files:
            np.testing.assert_array_equal(rx[key], ry[key], err_msg=key)
    assert len(np.load(a)["actions"]) == 4 * 30 and len(np.load(val_path(a))["actions"]) == 30
    generate_play("cube-double-v0", c, episodes=4, seed=8, episode_steps=30, workers=2)
    assert not np.array_equal(np.load(c)["actions"], np.load(a)["actions"])


@pytest.mark.parametrize("name, generators, datagen_id", [
    ("cube-single-play-v0", ("play",), "cube-single-v0"),
    ("cube-double-play-oraclerep-v0", ("play",), "cube-double-v0"),
    ("scene-play-singletask-task3-v0", ("play",), "scene-v0"),
    ("puzzle-3x3-play-singletask-v0", ("play",), "puzzle-3x3-v0"),
    ("cube-triple-play-v0", (), "cube-triple-v0"),
    ("cube-single-noisy-v0", (), "cube-single-v0"),
    ("pointmaze-medium-navigate-v0", ("navigate",), "pointmaze-medium-v0"),
])
def test_play_envs_name_the_play_generator(name, generators, datagen_id):
    info = resolve_env(name)
    assert (info.generators, info.datagen_env_id) == (generators, datagen_id)


def test_scene_health_check_follows_ogbench():
    qpos = np.zeros((5, 25), dtype=np.float32)
    qpos[:, 14:17] = [0.4, 0.0, 0.02]
    assert scene_episode_healthy(qpos)
    right = qpos.copy()
    right[2, 15] = 0.29
    assert not scene_episode_healthy(right)
    left_on_table = qpos.copy()
    left_on_table[2, 15] = -0.31
    assert not scene_episode_healthy(left_on_table)
    in_drawer = left_on_table.copy()
    in_drawer[2, 16] = 0.07
    assert scene_episode_healthy(in_drawer)


def test_unsupported_envs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no play generator for 'cube-triple-v0'"):
        generate_play("cube-triple-v0", tmp_path / "x.npz", episodes=1)


def _spec_file(tmp_path, envs, method="gcbc"):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "seeds": [0], "methods": {method: {}}, "envs": envs}))
    return path


def test_generated_play_data_defaults_to_ogbench_noise(tmp_path):
    spec = load_spec(_spec_file(tmp_path, {
        "cube-single-play-v0": {"data": {"source": "generate", "episodes": 2}},
        "scene-play-oraclerep-v0": {"data": {"source": "generate", "noise": 0.3}},
        "puzzle-3x3-play-v0": {"data": {"source": "download"}},
        "pointmaze-medium-navigate-v0": {"data": {"source": "generate"}},
    }))
    noise = {env: e.data.get("noise") for env, e in spec.envs.items()}
    assert noise == {"cube-single-play-v0": PLAY_NOISE, "scene-play-oraclerep-v0": 0.3,
                     "puzzle-3x3-play-v0": None,  # downloaded: no generator settings
                     "pointmaze-medium-navigate-v0": 0.2}
    assert PLAY_NOISE == 0.1


def test_cli_data_generates_a_play_dataset(tmp_path, monkeypatch):
    import cfgrl.data.play
    from cfgrl.pipeline.cli import main

    real, calls = cfgrl.data.play.generate_play, []

    def short(*args, **kwargs):  # the CLI's episodes have 1001 steps; keep the test fast
        calls.append((args, kwargs))
        return real(*args, episode_steps=40, **kwargs)

    monkeypatch.setattr(cfgrl.data.play, "generate_play", short)
    spec = _spec_file(tmp_path, {"cube-single-play-singletask-task2-v0": {"data": {"source": "generate",
                                                                                  "episodes": 2, "seed": 4}}},
                      method="bc")
    out = tmp_path / "data" / "cube-single-play-singletask-task2-v0.npz"
    main(["data", "--spec", str(spec), "--env", "cube-single-play-singletask-task2-v0", "--out", str(out),
          "--workers", "1"])
    assert calls == [(("cube-single-v0", out), {"episodes": 2, "seed": 4, "noise": PLAY_NOISE, "workers": 1})]
    raw = np.load(out)
    assert set(raw.files) == KEYS["cube-single"] and len(raw["observations"]) == 2 * 40
    assert len(np.load(val_path(out))["observations"]) == 40
    _, train, _ = ogbench.make_env_and_datasets("cube-single-play-singletask-task2-v0", dataset_path=str(out))
    assert train["rewards"].shape == (2 * 40 - 2,)
