"""Seeds as the unit (per-seed means, bootstrap over seeds) and the selection rule for the reported w."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.selection import MAX_OVER_TEST_IS_BIASED, rows_for, select_reported
from analysis.stats import bootstrap_ci, per_seed_means, summarize, summarize_by
from tests.synthetic import synthetic_cells

# Hand-made episode table: 4 seeds with unequal episode counts and very different seed means.
SEED_EPISODES = {0: [1] * 8, 1: [0] * 2, 2: [1, 0, 1, 0, 1], 3: [0, 0, 0, 0, 1]}


def episode_table() -> pd.DataFrame:
    rows = [{"method": "cfgrl", "env": "e", "seed": s, "w": 3.0, "success": float(x)}
            for s, eps in SEED_EPISODES.items() for x in eps]
    rows += [{"method": "awr", "env": "e", "seed": 0, "w": np.nan, "success": 0.5}]  # NaN w kept as a group
    return pd.DataFrame(rows)


def test_per_seed_means_averages_episodes_within_each_seed():
    per_seed = per_seed_means(episode_table())
    cf = per_seed[per_seed["method"] == "cfgrl"].sort_values("seed")
    np.testing.assert_allclose(cf["success"], [1.0, 0.0, 0.6, 0.2])
    assert cf["episodes"].tolist() == [8, 2, 5, 5]
    awr = per_seed[per_seed["method"] == "awr"]
    assert len(awr) == 1 and np.isnan(awr["w"].iloc[0])
    with pytest.raises(KeyError, match="return"):
        per_seed_means(episode_table(), value="return")


def test_bootstrap_is_over_seeds_not_over_flattened_episodes():
    episodes = episode_table()
    episodes = episodes[episodes["method"] == "cfgrl"]
    per_seed = per_seed_means(episodes)
    ours = summarize_by(per_seed, ["method", "env", "w"], n_resamples=5000, random_state=7).iloc[0]

    seed_means = np.array([1.0, 0.0, 0.6, 0.2])
    flat = episodes["success"].to_numpy()

    def direct(x):
        res = stats.bootstrap((x,), np.mean, n_resamples=5000, method="percentile",
                              random_state=np.random.default_rng(7), vectorized=True)
        return res.confidence_interval.low, res.confidence_interval.high

    seed_ci, flat_ci = direct(seed_means), direct(flat)
    # ours is the seed-axis bootstrap, exactly
    assert ours["mean"] == pytest.approx(0.45) and ours["n_seeds"] == 4
    assert (ours["ci_low"], ours["ci_high"]) == pytest.approx(seed_ci)
    assert bootstrap_ci(per_seed["success"].to_numpy(), n_resamples=5000, random_state=7) == pytest.approx(seed_ci)
    # ... and it differs from the flattened one: other centre (0.6 vs 0.45), other width
    assert flat.mean() == pytest.approx(0.6)
    assert seed_ci != pytest.approx(flat_ci, abs=0.05)
    assert seed_ci[0] == pytest.approx(0.1) and flat_ci[0] == pytest.approx(0.4)
    assert seed_ci[1] - seed_ci[0] > 1.5 * (flat_ci[1] - flat_ci[0])  # 4 seeds, not 20 episodes, are the sample


def test_summarize_by_agrees_with_summarize():
    cells = synthetic_cells(seeds=3, gc=False)
    cells = cells[cells["method"] == "cfgrl"]
    a = summarize(cells, n_resamples=500, random_state=1)
    b = summarize_by(cells, ["method", "env", "w"], n_resamples=500, random_state=1)
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)


# ---- selection of the reported w ---------------------------------------------------------------------------


def val_test_cells() -> pd.DataFrame:
    """cfgrl on two envs; validation seeds 10, 11 prefer w = 2 on env a and w = 3 on env b; test seeds 0, 1
    prefer w = 5 everywhere (a max-over-test rule would pick 5)."""
    rows = []
    val_best = {"a": 2.0, "b": 3.0}
    for env in ("a", "b"):
        for w in (1.0, 2.0, 3.0, 5.0):
            for s in (0, 1):
                rows.append({"method": "cfgrl", "env": env, "seed": s, "w": w, "split": "test",
                             "success": 0.9 if w == 5.0 else 0.5 + 0.01 * s, "path": f"t{env}{w}{s}"})
            for s in (10, 11):
                rows.append({"method": "cfgrl", "env": env, "seed": s, "w": w, "split": "validation",
                             "success": 0.8 if w == val_best[env] else 0.4, "path": f"v{env}{w}{s}"})
    return pd.DataFrame(rows)


def test_fixed_rule_reports_that_w_on_test_cells_only():
    out = select_reported(val_test_cells(), "cfgrl", {"type": "fixed", "value": 3})
    assert set(out["w"]) == {3.0} and set(out["split"]) == {"test"} and len(out) == 4
    assert out["validation_mean"].isna().all() and out["selection"].iloc[0] == "fixed w = 3"
    with pytest.raises(ValueError, match="not evaluated"):
        select_reported(val_test_cells(), "cfgrl", {"type": "fixed", "value": 7})
    # a table without a split column is all test
    plain = synthetic_cells(seeds=2, gc=False)
    assert len(select_reported(plain, "awr", {"type": "fixed", "value": 10.0}, knob="temperature")) == 6


def test_validation_rule_on_seeds_chooses_on_validation_and_reports_test():
    cells = val_test_cells()
    out = select_reported(cells, "cfgrl", {"type": "validation", "on": "seeds"})
    chosen = out.groupby("env")["w"].first().to_dict()
    assert chosen == {"a": 2.0, "b": 3.0}  # not the test-best 5
    assert set(out["split"]) == {"test"} and set(out["seed"]) == {0, 1}
    assert out["validation_mean"].tolist() == pytest.approx([0.8] * 4)
    # validation seeds must be disjoint from test seeds
    overlap = cells.copy()
    overlap.loc[overlap["seed"] == 10, "seed"] = 0
    with pytest.raises(ValueError, match="disjoint"):
        select_reported(overlap, "cfgrl", {"type": "validation", "on": "seeds"})


def test_validation_rule_on_episodes_uses_same_seeds_separate_episodes():
    cells = val_test_cells()
    cells.loc[cells["split"] == "validation", "seed"] -= 10  # same checkpoints, separate result files
    out = select_reported(cells, "cfgrl", {"type": "validation", "on": "episodes"})
    assert out.groupby("env")["w"].first().to_dict() == {"a": 2.0, "b": 3.0}
    same_files = cells.copy()
    same_files["path"] = same_files["env"] + same_files["w"].astype(str) + same_files["seed"].astype(str)
    with pytest.raises(ValueError, match="separate validation episodes"):
        select_reported(same_files, "cfgrl", {"type": "validation", "on": "episodes"})
    with pytest.raises(ValueError, match="split == 'validation'"):
        select_reported(cells.drop(columns="split"), "cfgrl", {"type": "validation", "on": "episodes"})


@pytest.mark.parametrize("rule", [{"type": "max"}, {"type": "best"}, {"type": "oracle"},
                                  {"type": "validation", "on": "test"}])
def test_selecting_on_the_reported_cells_is_refused_with_the_reason(rule):
    with pytest.raises(ValueError, match="winner's curse") as err:
        select_reported(val_test_cells(), "cfgrl", rule)
    assert MAX_OVER_TEST_IS_BIASED in str(err.value)


def test_unknown_rules_and_ambiguous_rows_raise():
    with pytest.raises(ValueError, match="unknown rule"):
        select_reported(val_test_cells(), "cfgrl", {"type": "median"})
    with pytest.raises(ValueError, match="'seeds' or 'episodes'"):
        select_reported(val_test_cells(), "cfgrl", {"type": "validation"})
    with pytest.raises(ValueError, match="rows for env"):
        rows_for(val_test_cells(), "cfgrl")  # four w per seed: which one?
    assert set(rows_for(val_test_cells(), "cfgrl", 2.0)["split"]) == {"test"}


def test_bootstrap_ci_of_a_missing_metric_is_nan_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        low, high = bootstrap_ci(np.array([np.nan, np.nan, np.nan]))  # success on dm_control
        assert np.isnan(low) and np.isnan(high)
        assert bootstrap_ci(np.array([0.2, 0.4, 0.9]))[0] < 0.5  # ordinary input still works
