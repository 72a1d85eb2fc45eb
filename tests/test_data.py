import numpy as np
import pytest

from cfgrl.data.layout import DataError, load_ogbench_npz
from cfgrl.data.samplers import GoalSampler
from tests.conftest import toy_episodes


@pytest.mark.parametrize("discount", [None, 0.99, 0.5])
def test_future_goals_stay_inside_the_trajectory(discount):
    lengths = [5, 1, 2, 40, 7, 3]
    arrays = toy_episodes(lengths)
    sampler = GoalSampler(arrays["observations"], arrays["actions"], arrays["terminals"], geometric_discount=discount)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    ends = np.cumsum(lengths) - 1
    rng = np.random.default_rng(0)
    idxs = sampler.valid_idxs[rng.integers(len(sampler.valid_idxs), size=20_000)]
    goals = sampler.sample_goal_idxs(idxs, rng)
    episode = np.searchsorted(ends, idxs)
    assert (goals > idxs).all(), "goal must be a future state"
    assert (goals <= ends[episode]).all(), "goal must not leave the trajectory"
    assert (goals >= starts[episode]).all()
    assert not np.isin(np.flatnonzero(arrays["terminals"]), sampler.valid_idxs).any()
    if discount is None:  # the reference's rounding of a uniform point of [t+1, end]: end points half-weighted
        first = starts[3]
        g = sampler.sample_goal_idxs(np.full(100_000, first), rng) - first
        assert set(np.unique(g)) == set(range(1, 40))
        freq = np.bincount(g, minlength=40)[1:] / len(g)  # offsets 1 .. 39 over a span of 38
        np.testing.assert_allclose(freq[[0, -1]], 0.5 / 38, rtol=0.1)
        np.testing.assert_allclose(freq[1:-1], 1 / 38, rtol=0.1)
        assert abs(g.mean() - 20.0) < 0.3


def test_batch_shapes_and_goal_values():
    arrays = toy_episodes([10, 10], obs_dim=3)
    sampler = GoalSampler(arrays["observations"], arrays["actions"], arrays["terminals"])
    batch = sampler.sample(64, np.random.default_rng(1))
    assert batch["observations"].shape == (64, 3) and batch["actions"].shape == (64, 2)
    assert batch["goals"].shape == (64, 3)
    assert all((arrays["observations"] == g).all(axis=1).any() for g in batch["goals"])


def _write(tmp_path, arrays, name="bad.npz"):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "mutate, key, fragment",
    [
        (lambda a: a.pop("actions"), "actions", "missing key"),
        (lambda a: a.__setitem__("actions", a["actions"][:-1]), "actions", "shape"),
        (lambda a: a.__setitem__("observations", a["observations"][:, 0]), "observations", "shape"),
        (lambda a: a["observations"].__setitem__((3, 1), np.nan), "observations", "NaN or Inf"),
        (lambda a: a["actions"].__setitem__((0, 0), np.inf), "actions", "NaN or Inf"),
    ],
)
def test_bad_data_gives_one_line_error_naming_file_and_key(tmp_path, mutate, key, fragment):
    arrays = toy_episodes([6, 6])
    mutate(arrays)
    path = _write(tmp_path, arrays)
    with pytest.raises(DataError) as err:
        load_ogbench_npz(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and f"'{key}'" in message and fragment in message
