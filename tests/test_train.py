from dataclasses import asdict

import pytest
import torch
import yaml

from cfgrl.pipeline.provenance import data_hash
from cfgrl.pipeline.spec import load_spec
from cfgrl.pipeline.train import load_agent, train


def _spec(tmp_path, method, steps):
    raw = {"name": "t", "seeds": [0],
           "envs": {"pointmaze-medium-navigate-v0": {"data": {"source": "generate", "episodes": 4}}},
           "methods": {method: {"config": {"steps": steps, "batch_size": 32, "hidden": [32, 32], "log_every": 10,
                                           "checkpoint_every": 25, "device": "cpu"}}}}
    if method == "gc_cfgrl":
        raw["methods"][method]["w"] = [1]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


@pytest.mark.parametrize("method", ["gcbc", "gc_cfgrl"])
def test_interrupted_then_resumed_training_is_bit_identical(tmp_path, tiny_navigate_data, method):
    spec = _spec(tmp_path, method, steps=60)
    env = "pointmaze-medium-navigate-v0"
    train(spec, method, env, 0, tiny_navigate_data, tmp_path / "straight")
    # interrupt at step 37 (past the checkpoint at 25): the resumed run redoes 26..37 from the checkpoint
    train(spec, method, env, 0, tiny_navigate_data, tmp_path / "resumed", stop_after=37)
    assert (tmp_path / "resumed" / "_progress" / "checkpoint.pt").exists()
    assert not (tmp_path / "resumed" / "model.pt").exists()
    train(spec, method, env, 0, tiny_navigate_data, tmp_path / "resumed")
    a = torch.load(tmp_path / "straight" / "model.pt", weights_only=False)["networks"]
    b = torch.load(tmp_path / "resumed" / "model.pt", weights_only=False)["networks"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not (tmp_path / "resumed" / "_progress" / "checkpoint.pt").exists()
    rows = (tmp_path / "resumed" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,steps_per_s") and len(rows) == 1 + 6
    agent, record = load_agent(tmp_path / "resumed" / "model.pt")
    assert record["provenance"]["steps"] == 60
    assert record["config"] == asdict(spec.methods[method].config) and record["config"]["steps"] == 60
    assert record["provenance"]["data_sha256"] == data_hash(tiny_navigate_data)


def test_same_seed_same_parameters_other_seed_differs(tmp_path, tiny_navigate_data):
    spec = _spec(tmp_path, "gc_cfgrl", steps=20)
    env = "pointmaze-medium-navigate-v0"
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        train(spec, "gc_cfgrl", env, seed, tiny_navigate_data, tmp_path / name)
    load = [torch.load(tmp_path / n / "model.pt", weights_only=False)["networks"] for n in "abc"]
    assert all(torch.equal(load[0][k], load[1][k]) for k in load[0])
    assert not all(torch.equal(load[0][k], load[2][k]) for k in load[0])
