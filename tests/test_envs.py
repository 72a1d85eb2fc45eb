import numpy as np
import pytest
import yaml

from cfgrl.data.samplers import BatchRequest
from cfgrl.envs.registry import resolve_env
from cfgrl.pipeline.spec import SpecError, load_spec


@pytest.mark.parametrize("name, kind, eval_id, generators, oracle", [
    ("pointmaze-medium-navigate-v0", "ogbench-goal", "pointmaze-medium-v0", ("navigate",), False),
    ("antmaze-large-navigate-oraclerep-v0", "ogbench-goal", "antmaze-large-v0", (), True),
    ("cube-single-play-singletask-task2-v0", "ogbench-single", "cube-single-singletask-task2-v0", ("play",), False),
    ("puzzle-3x3-play-singletask-v0", "ogbench-single", "puzzle-3x3-singletask-v0", ("play",), False),
    ("humanoidmaze-giant-stitch-v0", "ogbench-goal", "humanoidmaze-giant-v0", (), False),
    ("walker-run", "dmc", "walker-run", ("exorl",), False),
    ("jaco-reach-top-left", "dmc", "jaco-reach-top-left", (), False),
])
def test_env_names_resolve(name, kind, eval_id, generators, oracle):
    info = resolve_env(name)
    assert (info.kind.name, info.eval_env_id, info.generators, info.oracle_rep) == (kind, eval_id, generators, oracle)


@pytest.mark.parametrize("name", ["antmaze-huge-navigate-v0", "walker-fly", "pointmaze-medium-navigate"])
def test_unknown_env_names_are_refused(name):
    with pytest.raises(KeyError, match="unknown env"):
        resolve_env(name)


def test_generate_is_refused_where_no_generator_exists(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "seeds": [0], "methods": {"gcbc": {}},
                                    "envs": {"antmaze-large-navigate-v0": {"data": {"source": "generate"}}}}))
    with pytest.raises(SpecError, match=r"envs.antmaze-large-navigate-v0.data.source: no offline generator"):
        load_spec(path)


def test_oraclerep_goals_are_ogbench_oracle_representations(tiny_navigate_data):
    env = resolve_env("pointmaze-medium-navigate-oraclerep-v0")
    sampler = env.kind.sampler(env, tiny_navigate_data, BatchRequest("goals"))
    raw = np.load(tiny_navigate_data)
    assert sampler.goal_source.shape == (len(raw["qpos"]), 2)
    np.testing.assert_array_equal(sampler.goal_source, raw["qpos"][:, :2])
    env = resolve_env("pointmaze-medium-navigate-singletask-task2-v0")
    single = env.kind.sampler(env, tiny_navigate_data, BatchRequest("transitions"))
    assert set(np.unique(single.rewards)) <= {-1.0, 0.0} and single.masks.shape == single.rewards.shape
