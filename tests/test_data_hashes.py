"""Dependency drift fails CI instead of silently changing results: small datasets made by each offline generator
must hash (cfgrl.pipeline.provenance.array_hash) to the values committed here. A failure means the same code and
seeds now produce different data: a changed ogbench, mujoco, dm_control or numpy (check constraints.txt), or a
changed generator; update the values only together with the README's measured numbers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from cfgrl.data.exorl import generate_exorl, load_exorl
from cfgrl.data.navigate import generate_navigate
from cfgrl.data.play import generate_play
from cfgrl.pipeline.provenance import array_hash, data_hash

COMMITTED = {  # measured 2026-12-01 with constraints.txt (mujoco 3.17.0, ogbench 1.2.2, dm_control, numpy 2.4.6)
    "navigate": "7cac5e5dd81f8f94ceddf9428942495454734f59e6cbbd98321286738e2ebe71",
    "play": "dd5b0847ee5c72cf855e12812d7bc1862d4597781e77807b6326dfbfb03c7227",
    "exorl": "9d1867e1d8b1113131d344db68ceb4a3abd1ec07c792b263c1c9659e947d10cc",
}


def test_navigate_generator_output_is_unchanged(tmp_path):
    generate_navigate("pointmaze-medium-v0", tmp_path / "nav.npz", episodes=2, seed=7, workers=1, episode_steps=200)
    assert data_hash(tmp_path / "nav.npz") == COMMITTED["navigate"]


def test_play_generator_output_is_unchanged(tmp_path):
    generate_play("cube-single-v0", tmp_path / "play.npz", episodes=1, seed=1, episode_steps=60, workers=1)
    assert data_hash(tmp_path / "play.npz") == COMMITTED["play"]


def test_exorl_generator_and_reward_relabelling_are_unchanged(tmp_path):
    generate_exorl("cheetah", tmp_path / "cheetah" / "rnd", episodes=2, seed=9, workers=1, fit_iterations=2,
                   fit_horizon=30)
    assert array_hash(load_exorl("cheetah-run", tmp_path / "cheetah" / "rnd", workers=1)) == COMMITTED["exorl"]


def test_hash_names_the_arrays_not_the_container(tmp_path):
    arrays = {"observations": np.arange(6, dtype=np.float32).reshape(3, 2), "terminals": np.array([0, 0, 1])}
    np.savez(tmp_path / "a.npz", **arrays)
    np.savez_compressed(tmp_path / "b.npz", **dict(reversed(list(arrays.items()))))
    assert data_hash(tmp_path / "a.npz") == data_hash(tmp_path / "b.npz") == array_hash(arrays)
    arrays["terminals"] = arrays["terminals"].astype(np.int32)  # same values, other dtype: other data
    assert array_hash(arrays) != data_hash(tmp_path / "a.npz")
    out = subprocess.run([sys.executable, "-m", "cfgrl", "data-hash", str(tmp_path / "a.npz")],
                         capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == data_hash(tmp_path / "a.npz")
