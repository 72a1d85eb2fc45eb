"""Seeds as the unit (per-seed means, Student-t intervals over seeds) and the selection rule for the reported w."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.selection import MAX_OVER_TEST_IS_BIASED, rows_for, select_reported
from analysis.stats import (
    mean_ci,
    paired_diff_ci,
    paired_differences,
    per_seed_means,
    seed_std,
    summarize,
    summarize_by,
    welch_diff_ci,
)
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


def test_interval_is_over_seeds_not_over_flattened_episodes():
    episodes = episode_table()
    episodes = episodes[episodes["method"] == "cfgrl"]
    per_seed = per_seed_means(episodes)
    ours = summarize_by(per_seed, ["method", "env", "w"]).iloc[0]

    seed_means = np.array([1.0, 0.0, 0.6, 0.2])
    flat = episodes["success"].to_numpy()
    seed_ci = stats.t.interval(0.95, 3, loc=seed_means.mean(), scale=stats.sem(seed_means))
    flat_ci = stats.t.interval(0.95, len(flat) - 1, loc=flat.mean(), scale=stats.sem(flat))
    # ours is the t-interval over the 4 seeds, exactly
    assert ours["mean"] == pytest.approx(0.45) and ours["n_seeds"] == 4
    assert ours["std"] == pytest.approx(np.sqrt(0.59 / 3))
    assert (ours["ci_low"], ours["ci_high"]) == pytest.approx(seed_ci)
    assert mean_ci(per_seed["success"].to_numpy()) == pytest.approx(seed_ci)
    # ... and it differs from the flattened one: other centre (0.6 vs 0.45), other width
    assert flat.mean() == pytest.approx(0.6)
    assert seed_ci[1] - seed_ci[0] > 2.5 * (flat_ci[1] - flat_ci[0])  # 4 seeds, not 20 episodes, are the sample


@pytest.mark.parametrize("x", [[0.2, 0.5], [0.1, 0.4, 0.35], [0.0, 0.0, 1.0, 0.5, 0.25], list(np.linspace(0, 1, 10))])
@pytest.mark.parametrize("ci", [0.95, 0.9])
def test_mean_ci_is_the_student_t_interval(x, ci):
    x = np.asarray(x)
    n = len(x)
    half = stats.t.ppf((1 + ci) / 2, n - 1) * x.std(ddof=1) / np.sqrt(n)  # by hand
    assert mean_ci(x, ci) == pytest.approx((x.mean() - half, x.mean() + half))
    assert mean_ci(x, ci) == pytest.approx(stats.t.interval(ci, n - 1, loc=x.mean(), scale=stats.sem(x)))


def test_mean_ci_by_hand_and_vectorised():
    # [1, 2, 3]: mean 2, s = 1, t_{2, 0.975} = 4.302653: 2 -+ 4.302653 / sqrt(3) = [-0.484138, 4.484138]
    lo, hi = mean_ci(np.array([1.0, 2.0, 3.0]))
    assert (lo, hi) == pytest.approx((-0.484138, 4.484138), abs=1e-6)
    assert isinstance(lo, float) and isinstance(hi, float)
    rows = np.random.default_rng(0).random((6, 4))
    lows, highs = mean_ci(rows, 0.9)
    assert lows.shape == highs.shape == (6,)
    for r, lo_r, hi_r in zip(rows, lows, highs, strict=True):
        assert mean_ci(r, 0.9) == pytest.approx((lo_r, hi_r))


def test_one_seed_gives_nan_interval_and_std_zero_variance_gives_a_point():
    lo, hi = mean_ci(np.array([0.7]))
    assert np.isnan(lo) and np.isnan(hi)  # never a zero-width interval from one seed
    assert np.isnan(seed_std(np.array([0.7]))) and np.isnan(seed_std(np.array([])))
    assert mean_ci(np.array([0.0, 0.0, 0.0])) == (0.0, 0.0)  # zero variance, n >= 2: the degenerate [m, m]
    cells = pd.DataFrame({"method": ["m", "m", "m", "k"], "env": "e", "w": np.nan, "seed": [0, 1, 2, 0],
                          "success": [0.5, 0.5, 0.5, 0.3]})
    out = summarize_by(cells, ["method", "env"]).set_index("method")
    assert out.loc["k", "n_seeds"] == 1 and out.loc["k", "mean"] == pytest.approx(0.3)
    assert out.loc["k", ["std", "ci_low", "ci_high"]].isna().all()
    assert (out.loc["m", "std"], out.loc["m", "ci_low"], out.loc["m", "ci_high"]) == (0.0, 0.5, 0.5)


def test_welch_diff_ci_by_hand():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0, 8.0])
    # s_a^2 / n_a = 1/3, s_b^2 / n_b = (20/3) / 4 = 5/3, se = sqrt(2);
    # df = 2^2 / ((1/3)^2 / 2 + (5/3)^2 / 3) = 4 / (1/18 + 25/27) = 216/53; diff = -3
    half = stats.t.ppf(0.975, 216 / 53) * np.sqrt(2)
    assert welch_diff_ci(a, b) == pytest.approx((-3 - half, -3 + half))
    assert half == pytest.approx(2.7563 * np.sqrt(2), abs=1e-3)  # t_{4.08, 0.975} = 2.756
    ref = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert welch_diff_ci(a, b) == pytest.approx((ref.low, ref.high))
    assert welch_diff_ci(b, a, 0.9) == pytest.approx(tuple(-v for v in welch_diff_ci(a, b, 0.9)[::-1]))


def test_welch_diff_ci_edge_cases_and_vectorised():
    b = np.array([0.41, 0.50, 0.47, 0.39, 0.52])
    assert all(np.isnan(welch_diff_ci([1.0], b))) and all(np.isnan(welch_diff_ci(b, [0.2])))
    assert all(np.isnan(welch_diff_ci([0.1, np.nan], b)))
    assert welch_diff_ci([1.0, 1.0, 1.0], [0.0, 0.0]) == (1.0, 1.0)  # no variance anywhere: [d, d]
    lo, hi = mean_ci(b)  # one side constant: the other side's t-interval, shifted (df = n_b - 1)
    assert welch_diff_ci([1.0, 1.0, 1.0], b) == pytest.approx((1 - hi, 1 - lo))
    rng = np.random.default_rng(1)
    xa, xb = rng.random((5, 3)), rng.random((5, 4))
    lows, highs = welch_diff_ci(xa, xb)
    for k in range(5):
        assert welch_diff_ci(xa[k], xb[k]) == pytest.approx((lows[k], highs[k]))


def test_paired_diff_ci_and_paired_differences():
    ref = np.array([0.2, 0.5, 0.4, 0.3])
    cur = np.array([0.3, 0.7, 0.4, 0.6])
    d = cur - ref
    assert paired_diff_ci(cur, ref) == pytest.approx(stats.t.interval(0.95, 3, loc=d.mean(), scale=stats.sem(d)))
    assert paired_diff_ci(cur, ref) == pytest.approx(mean_ci(d))
    with pytest.raises(ValueError, match="differ in length"):
        paired_diff_ci(cur, ref[:3])
    cells = pd.DataFrame([{"method": "g", "env": "e", "seed": s, "w": w, "success": v}
                          for w, vals in ((1.0, ref), (3.0, cur)) for s, v in enumerate(vals)])
    out = paired_differences(cells, "g", 1.0).set_index("w")
    assert out.loc[3.0, "mean_diff"] == pytest.approx(d.mean()) and out.loc[3.0, "n_seeds"] == 4
    assert (out.loc[3.0, "ci_low"], out.loc[3.0, "ci_high"]) == pytest.approx(mean_ci(d))
    assert (out.loc[3.0, "seeds_better"], out.loc[3.0, "seeds_worse"]) == (3, 0)
    assert (out.loc[1.0, "ci_low"], out.loc[1.0, "ci_high"]) == (0.0, 0.0)  # w = 1 minus itself
    one = paired_differences(cells[cells["seed"] == 0], "g", 1.0).set_index("w")
    assert np.isnan(one.loc[3.0, "ci_low"]) and one.loc[3.0, "n_seeds"] == 1


def test_summarize_by_agrees_with_summarize():
    cells = synthetic_cells(seeds=3, gc=False)
    cells = cells[cells["method"] == "cfgrl"]
    a = summarize(cells)
    b = summarize_by(cells, ["method", "env", "w"])
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


def budget_cells() -> pd.DataFrame:
    """cfgrl on envs a, b at w 0, 1, 2, 3 (seeds 0-2): divergence grows with w (faster on b); success is highest
    at w = 3 everywhere, which the budget rule must not look at."""
    rows = []
    for env, slope in (("a", 0.1), ("b", 0.3)):
        for w in (0.0, 1.0, 2.0, 3.0):
            for s in range(3):
                d = slope * w + 0.01 * (s - 1)
                rows.append({"method": "cfgrl", "env": env, "seed": s, "w": w, "split": "test",
                             "success": 0.2 * w, "distance_to_w0": d, "kl_to_w0": 2 * d, "data_distance": 1 + d})
    return pd.DataFrame(rows)


def test_budget_rule_picks_the_largest_w_within_the_budget_per_env():
    cells = budget_cells()
    out = select_reported(cells, "cfgrl", {"type": "budget", "divergence": 0.25})
    assert out.groupby("env")["w"].first().to_dict() == {"a": 2.0, "b": 0.0}  # a: 0.2 <= .25 < .3; b: .3 > .25
    assert len(out) == 6 and (out["split"] == "test").all()
    kl = select_reported(cells, "cfgrl", {"type": "budget", "divergence": 0.25, "measure": "kl"})
    assert kl.groupby("env")["w"].first().to_dict() == {"a": 1.0, "b": 0.0}
    data = select_reported(cells, "cfgrl", {"type": "budget", "divergence": 1.65, "measure": "data"})
    assert data.groupby("env")["w"].first().to_dict() == {"a": 3.0, "b": 2.0}
    # the chosen w does not move when the returns change: the rule never reads them
    shuffled = cells.assign(success=np.random.default_rng(0).permutation(cells["success"].to_numpy()))
    assert select_reported(shuffled, "cfgrl", {"type": "budget", "divergence": 0.25})["w"].tolist() == \
        out["w"].tolist()


def test_budget_rule_refuses_a_budget_no_w_satisfies_in_one_line():
    cells = budget_cells().assign(distance_to_w0=lambda d: d["distance_to_w0"] + 1.0)
    with pytest.raises(ValueError, match=r"cfgrl a: no w keeps the mean mse divergence within the budget 0\.25 "
                                         r"\(smallest: 1 at w = 0\)") as info:
        select_reported(cells, "cfgrl", {"type": "budget", "divergence": 0.25})
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="needs the cells column 'kl_to_w0'"):
        select_reported(cells.drop(columns="kl_to_w0"), "cfgrl", {"type": "budget", "divergence": 1, "measure": "kl"})


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


def test_interval_of_a_missing_metric_is_nan_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        low, high = mean_ci(np.array([np.nan, np.nan, np.nan]))  # success on dm_control
        assert np.isnan(low) and np.isnan(high)
        assert all(np.isnan(welch_diff_ci(np.array([np.nan] * 3), np.array([np.nan] * 3))))
        assert np.isnan(seed_std(np.array([np.nan, np.nan])))
        assert mean_ci(np.array([0.2, 0.4, 0.9]))[0] < 0.5  # ordinary input still works
