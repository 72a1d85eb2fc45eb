"""Per-env tests (Welch, Mann-Whitney, Holm, Hedges' g, bootstrap difference) and rliable aggregates."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.aggregate import (
    iqm_ci,
    performance_profiles,
    probability_of_improvement,
    score_matrices,
    seeded_numpy,
)
from analysis.significance import (
    COMPARE_COLUMNS,
    compare_methods,
    diff_ci,
    hedges_g,
    holm,
    mann_whitney,
    welch,
)
from tests.synthetic import synthetic_cells

A = np.array([0.62, 0.71, 0.55, 0.68])
B = np.array([0.41, 0.50, 0.47, 0.39, 0.52])


def test_welch_and_mann_whitney_are_scipys():
    t, p = welch(A, B)
    ref = stats.ttest_ind(A, B, equal_var=False)
    assert (t, p) == pytest.approx((ref.statistic, ref.pvalue))
    u, pu = mann_whitney(A, B)
    ref = stats.mannwhitneyu(A, B, alternative="two-sided")
    assert (u, pu) == pytest.approx((ref.statistic, ref.pvalue))
    assert u == 20.0  # every a beats every b: U = n_a n_b
    # degenerate inputs give NaN rather than a misleading number
    assert np.isnan(welch([0.0, 0.0], [0.0, 0.0])[1]) and np.isnan(welch([1.0], B)[1])
    assert np.isnan(mann_whitney([1.0, 1.0], [1.0, 1.0])[1])


def test_holm_textbook_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> 4*0.005, 3*0.01, 2*0.03, 1*0.04 = 0.02, 0.03, 0.06, 0.04;
    # running max -> 0.02, 0.03, 0.06, 0.06; back in input order:
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    out = holm([0.01, np.nan, 0.04])  # NaN is outside the family: m = 2
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04])
    assert np.isnan(out[1]) and holm([]).shape == (0,)


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(0).uniform(0, 0.2, size=12)
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])


def test_hedges_g_by_hand():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 6.0, 8.0])
    # means 2.5, 5; ddof-1 variances 5/3, 20/3; pooled (3*5/3 + 3*20/3)/6 = 25/6; d = -2.5/sqrt(25/6) = -1.22474
    # J = 1 - 3/(4*8 - 9) = 20/23; g = -1.224745 * 0.869565 = -1.064996
    assert hedges_g(a, b) == pytest.approx(-2.5 / np.sqrt(25 / 6) * 20 / 23)
    assert hedges_g(a, b) == pytest.approx(-1.064996, abs=1e-6)
    assert hedges_g(b, a) == pytest.approx(-hedges_g(a, b))
    assert np.isnan(hedges_g([1.0], b)) and np.isnan(hedges_g([1.0, 1.0], [1.0, 1.0]))


def test_diff_ci_is_a_seeded_independent_bootstrap():
    lo, hi = diff_ci(A, B, n_resamples=2000, random_state=3)
    res = stats.bootstrap((A, B), lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis), n_resamples=2000,
                          method="percentile", random_state=np.random.default_rng(3), vectorized=True)
    assert (lo, hi) == pytest.approx((res.confidence_interval.low, res.confidence_interval.high))
    assert lo < A.mean() - B.mean() < hi
    assert diff_ci(A, B, n_resamples=2000, random_state=3) == (lo, hi)
    assert diff_ci([1.0, 1.0], [0.0, 0.0]) == (1.0, 1.0)
    lo1, hi1 = diff_ci([1.0, 1.0, 1.0], B, n_resamples=2000)  # one side constant: shift the other's CI
    assert lo1 < 1 - B.mean() < hi1


def test_compare_methods_per_env_with_holm_across_envs():
    cells = synthetic_cells(seeds=4, gc=False)
    select = {"cfgrl": 3.0, "awr": {"temperature": 10.0}}
    out = compare_methods(cells, "cfgrl", "awr", select, n_resamples=1000)
    assert list(out.columns) == COMPARE_COLUMNS and len(out) == 3
    for r in out.itertuples():
        a = cells[(cells.method == "cfgrl") & (cells.env == r.env) & (cells.w == 3.0)].sort_values("seed")
        b = cells[(cells.method == "awr") & (cells.env == r.env) & (cells.temperature == 10.0)].sort_values("seed")
        ref = stats.ttest_ind(a["success"], b["success"], equal_var=False)
        assert (r.welch_t, r.welch_p) == pytest.approx((ref.statistic, ref.pvalue))
        assert r.diff == pytest.approx(a["success"].mean() - b["success"].mean())
        assert r.n_a == r.n_b == 4
    np.testing.assert_allclose(out["holm_p"], holm(out["welch_p"].to_numpy()))
    assert (out["significant"] == (out["holm_p"] < 0.05)).all()
    by_env = out.set_index("env")
    assert by_env.loc["walker-stand", "significant"]  # a 30-point gap
    assert not by_env.loc["pointmaze-large-navigate-singletask-v0", "significant"]  # no gap
    # the same call twice gives the same CIs (seeded)
    pd.testing.assert_frame_equal(out, compare_methods(cells, "cfgrl", "awr", select, n_resamples=1000))
    with pytest.raises(ValueError, match="rows for env"):
        compare_methods(cells, "cfgrl", "awr", {"awr": {"temperature": 10.0}})  # cfgrl: which w?


# ---- rliable aggregates ------------------------------------------------------------------------------------

X = np.array([[0.1, 0.5, 0.9], [0.2, 0.6, 0.7], [0.3, 0.4, 0.8], [0.0, 1.0, 0.65]])  # (4 seeds, 3 envs)


def test_iqm_point_estimate_is_the_25_percent_trimmed_mean():
    out = iqm_ci({"m": X}, reps=200, random_state=0).iloc[0]
    assert out["estimate"] == pytest.approx(stats.trim_mean(X.ravel(), 0.25))
    assert out["ci_low"] <= out["estimate"] <= out["ci_high"]
    assert (out["n_seeds"], out["n_envs"]) == (4, 3)


def test_rliable_bootstrap_is_reproducible_and_leaves_global_rng_alone():
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    a = iqm_ci({"m": X}, reps=200, random_state=5)
    after = np.random.random()
    b = iqm_ci({"m": X}, reps=200, random_state=5)
    c = iqm_ci({"m": X}, reps=200, random_state=6)
    assert after == before  # the global generator was restored
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    with seeded_numpy(1):
        x1 = np.random.random()
    with seeded_numpy(1):
        assert np.random.random() == x1


def test_probability_of_improvement():
    worse = X - 0.3
    out = probability_of_improvement({"m": X, "w": worse}, [("m", "m"), ("w", "m"), ("m", "w")], reps=200).set_index(
        ["x", "y"])
    assert out.loc[("m", "m"), "poi"] == pytest.approx(0.5)
    assert out.loc[("w", "m"), "poi"] < 0.5 < out.loc[("m", "w"), "poi"]
    assert out.loc[("w", "m"), "poi"] + out.loc[("m", "w"), "poi"] == pytest.approx(1.0)
    assert (out["ci_low"] <= out["poi"]).all() and (out["poi"] <= out["ci_high"]).all()


def test_performance_profiles_shapes_and_values():
    taus = np.linspace(0, 1, 11)
    profiles, cis = performance_profiles({"m": X}, taus, reps=100)
    assert profiles["m"].shape == (11,) and cis["m"].shape == (2, 11)
    assert profiles["m"][5] == pytest.approx(np.mean(X > 0.5))


def test_score_matrices_from_cells():
    cells = synthetic_cells(seeds=3, gc=False)
    scores, envs = score_matrices(cells, ["cfgrl", "awr"], {"cfgrl": 3.0, "awr": {"temperature": 10.0}})
    assert envs == sorted(cells["env"].unique()) and scores["cfgrl"].shape == (3, 3)
    expected = cells[(cells.method == "cfgrl") & (cells.w == 3.0) & (cells.env == envs[1])].sort_values("seed")
    np.testing.assert_allclose(scores["cfgrl"][:, 1], expected["success"])
    scaled, _ = score_matrices(cells, ["cfgrl"], {"cfgrl": 3.0}, scale={e: 2.0 for e in envs})
    np.testing.assert_allclose(scaled["cfgrl"], scores["cfgrl"] / 2)
    ragged = cells.drop(cells.index[(cells.method == "cfgrl") & (cells.seed == 2) & (cells.env == envs[0])])
    with pytest.raises(ValueError, match="seeds differ across envs"):
        score_matrices(ragged, ["cfgrl"], {"cfgrl": 3.0})
