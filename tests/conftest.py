from __future__ import annotations

import cfgrl  # noqa: F401  (first: it caps numpy's, OpenBLAS's and torch's CPU kernels before they load)

# isort: split
import copy
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cfgrl.core.agent import Agent

REPO = Path(__file__).resolve().parent.parent


def write_spec(tmp_path: Path, spec: dict, name: str = "spec.yaml") -> Path:
    """Write a spec dict as YAML into tmp_path; return the file's path."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def mutated(base: dict, change: Callable[[dict], object]) -> dict:
    """A deep copy of the spec `base` with `change` applied to it."""
    spec = yaml.safe_load(yaml.safe_dump(base))
    change(spec)
    return spec


def assert_spec_error(path: Path, field: str, fragment: str) -> None:
    """load_spec(path) fails with one line `<path>: <field>: ...` that contains `fragment`."""
    from cfgrl.pipeline.spec import SpecError, load_spec

    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {field}:"), message
    assert fragment in message, message


@pytest.fixture(autouse=True)
def one_thread():
    """Every test runs torch on one thread (the suite's CPU determinism and speed assume it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_navigate_data(tmp_path_factory) -> Path:
    """A small real pointmaze-medium navigate dataset (4 train + 1 val episodes of 1001 steps)."""
    from cfgrl.data.navigate import generate_navigate

    path = tmp_path_factory.mktemp("data") / "pointmaze-medium-navigate-v0.npz"
    generate_navigate("pointmaze-medium-v0", path, episodes=4, seed=3, workers=1)
    return path


def toy_episodes(lengths: list[int], obs_dim: int = 3, action_dim: int = 2, seed: int = 0) -> dict:
    """Random arrays in OGBench layout with the given episode lengths."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    terminals = np.zeros(n, dtype=bool)
    terminals[np.cumsum(lengths) - 1] = True
    return {"observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
            "actions": rng.uniform(-1, 1, size=(n, action_dim)).astype(np.float32), "terminals": terminals}


def assert_resume_is_exact(make: Callable[[int], Agent], batch: dict) -> None:
    """Train make(0) 3 steps, save full_state, take one more step; a make(7) agent (other initialisation and RNG)
    loaded from that state must reproduce the step, the parameters and the next actions bit for bit."""
    agent = make(0)
    for _ in range(3):
        agent.update(batch)
    buffer = io.BytesIO()
    torch.save(agent.full_state(), buffer)
    goals = batch.get("goals") if agent.goal_conditioned else None
    expected_info = agent.update(batch)
    expected_params = copy.deepcopy(agent.state_dict())
    expected_act = agent.act(batch["observations"], goals, 2.0)

    other = make(7)
    buffer.seek(0)
    other.load_full_state(torch.load(buffer, weights_only=False))
    info = other.update(batch)
    assert other.step == agent.step == 4
    for k, v in expected_info.items():
        assert torch.equal(info[k], v), k
    for k, v in expected_params.items():
        assert torch.equal(other.state_dict()[k], v), k
    assert torch.equal(other.act(batch["observations"], goals, 2.0), expected_act)
