"""OGBench loading: identical to ogbench.make_env_and_datasets, eager or memory-mapped."""

from __future__ import annotations

import os

import numpy as np
import ogbench
import pytest

from cfgrl.data.layout import DataError
from cfgrl.data.ogbench import load_ogbench, npy_cache, parse_name

NAMES = [
    "pointmaze-medium-navigate-v0",
    "pointmaze-medium-navigate-singletask-v0",
    "pointmaze-medium-navigate-singletask-task3-v0",
    "pointmaze-medium-navigate-oraclerep-v0",
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("compact", [True, False])
def test_round_trip_equals_ogbench(tiny_navigate_data, tmp_path, name, compact):
    _, ref_train, ref_val = ogbench.make_env_and_datasets(name, dataset_path=str(tiny_navigate_data),
                                                          compact_dataset=compact)
    for lazy in (False, True):
        train, val = load_ogbench(name, dataset_path=tiny_navigate_data, compact=compact, lazy=lazy,
                                  cache_dir=tmp_path / "cache")
        for ours, ref in ((train, ref_train), (val, ref_val)):
            assert set(ours) == set(ref)
            for key in ref:
                assert ours[key].dtype == ref[key].dtype, key
                np.testing.assert_array_equal(ours[key], ref[key], err_msg=key)
    if "singletask" in name:
        assert {"rewards", "masks"} <= set(train) and (train["rewards"] == 0).any()  # the goal is reached
    if "oraclerep" in name:
        assert train["oracle_reps"].shape[1] == 2


def test_lazy_arrays_are_memory_maps_and_cache_follows_the_file(tiny_navigate_data, tmp_path):
    src = tmp_path / "pointmaze-medium-navigate-v0.npz"
    src.write_bytes(tiny_navigate_data.read_bytes())
    (tmp_path / "pointmaze-medium-navigate-v0-val.npz").write_bytes(
        tiny_navigate_data.with_name("pointmaze-medium-navigate-v0-val.npz").read_bytes())
    train, _ = load_ogbench("pointmaze-medium-navigate-v0", dataset_path=src, compact=True, lazy=True)
    assert isinstance(train["observations"], np.memmap) and isinstance(train["actions"], np.memmap)
    cache = tmp_path / "pointmaze-medium-navigate-v0.npz.npycache"
    assert sorted(p.name for p in cache.iterdir()) == ["actions.npy", "observations.npy", "qpos.npy", "qvel.npy",
                                                       "source.json", "terminals.npy"]
    mtime = (cache / "observations.npy").stat().st_mtime_ns
    npy_cache(src)  # unchanged source: reused
    assert (cache / "observations.npy").stat().st_mtime_ns == mtime
    # a changed source file is copied again
    arrays = dict(np.load(src))
    arrays["observations"] = arrays["observations"] + 1.0
    np.savez_compressed(src, **arrays)
    os.utime(src, ns=(mtime + 10**9, mtime + 10**9))
    train2, _ = load_ogbench("pointmaze-medium-navigate-v0", dataset_path=src, compact=True, lazy=True)
    np.testing.assert_array_equal(train2["observations"], arrays["observations"])


def test_names_split_like_ogbench():
    p = parse_name("antmaze-large-navigate-singletask-task2-v0")
    assert (p.env_name, p.dataset_name, p.variant) == ("antmaze-large-singletask-task2-v0",
                                                       "antmaze-large-navigate-v0", "singletask")
    p = parse_name("cube-single-play-oraclerep-v0")
    assert (p.env_name, p.dataset_name, p.variant) == ("cube-single-v0", "cube-single-play-v0", "oraclerep")
    p = parse_name("visual-cube-single-play-v0")
    assert (p.env_name, p.dataset_name, p.variant, p.visual) == ("visual-cube-single-v0", "visual-cube-single-play-v0",
                                                                 "goal", True)


@pytest.mark.parametrize("lazy", [False, True])
def test_bad_and_missing_files_give_one_line_errors(tiny_navigate_data, tmp_path, lazy):
    arrays = dict(np.load(tiny_navigate_data))
    arrays["actions"][5, 1] = np.nan
    bad = tmp_path / "pointmaze-medium-navigate-v0.npz"
    np.savez_compressed(bad, **arrays)
    np.savez_compressed(tmp_path / "pointmaze-medium-navigate-v0-val.npz", **arrays)
    with pytest.raises(DataError) as err:
        load_ogbench("pointmaze-medium-navigate-v0", dataset_path=bad, lazy=lazy)
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg and "'actions'" in msg and "NaN" in msg
    with pytest.raises(DataError) as err:
        load_ogbench("pointmaze-giant-navigate-v0", data_dir=tmp_path / "nowhere", lazy=lazy)
    assert "pointmaze-giant-navigate-v0.npz" in str(err.value) and "cfgrl download ogbench" in str(err.value)
