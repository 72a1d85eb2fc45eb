from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


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
    from cfgrl.datagen import generate_navigate

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
