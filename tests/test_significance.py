"""Per-env tests (exact permutation, exact Mann-Whitney, Welch, Holm, Hedges' g) and rliable aggregates."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import significance
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
    compare_rows,
    hedges_g,
    holm,
    mann_whitney,
    permutation_test,
    welch,
)
from analysis.stats import mean_ci, welch_diff_ci
from tests.synthetic import synthetic_cells

A = np.array([0.62, 0.71, 0.55, 0.68])
B = np.array([0.41, 0.50, 0.47, 0.39, 0.52])


def test_welch_is_scipys():
    t, p = welch(A, B)
    ref = stats.ttest_ind(A, B, equal_var=False)
    assert (t, p) == pytest.approx((ref.statistic, ref.pvalue))
    # degenerate inputs give NaN rather than a misleading number
    assert np.isnan(welch([0.0, 0.0], [0.0, 0.0])[1]) and np.isnan(welch([1.0], B)[1])
    assert np.isnan(welch([1.0, 1.0, 1.0], [0.0, 0.0, 0.0])[1])  # zero variance on both sides: undefined


def test_mann_whitney_without_ties_is_scipys_exact():
    rng = np.random.default_rng(0)
    for a, b in [(A, B), (rng.normal(size=10), rng.normal(0.5, 1, size=10)), (rng.random(7), rng.random(6)),
                 (np.array([3.0]), np.array([1.0, 2.0, 4.0]))]:
        ref = stats.mannwhitneyu(a, b, alternative="two-sided", method="exact")
        assert mann_whitney(a, b) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-12)
    assert mann_whitney(A, B)[0] == 20.0  # every a beats every b: U = n_a n_b
    assert mann_whitney(A, B)[1] == pytest.approx(2 / 126)  # the two extreme splits of C(9, 4) = 126


def test_mann_whitney_with_ties_is_exact():
    u, p = mann_whitney([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    # midranks 2 and 5; U = 0; only the 2 extreme splits of C(6, 3) = 20 are as far from n_a n_b / 2 = 4.5
    assert u == 0.0 and p == 0.1
    assert stats.mannwhitneyu([0, 0, 0], [1, 1, 1]).pvalue < 0.05  # the normal approximation we no longer use
    # ties in general: the same as scipy's exhaustive permutation test of U on the midranks
    a, b = np.array([0.0, 0.0, 1.0, 2.0]), np.array([1.0, 1.0, 2.0, 3.0, 3.0])

    def u_stat(x, y, axis=-1):
        ranks = stats.rankdata(np.concatenate([x, y], axis=axis), axis=axis)
        u = ranks[..., : x.shape[axis]].sum(axis=axis) - 4 * 5 / 2  # U of a (n_a = 4)
        return np.abs(u - 4 * 5 / 2)  # |U - n_a n_b / 2|

    ref = stats.permutation_test((a, b), u_stat, permutation_type="independent", n_resamples=np.inf,
                                 alternative="greater", vectorized=True)
    assert mann_whitney(a, b)[1] == pytest.approx(ref.pvalue)
    assert mann_whitney([1.0, 1.0], [1.0, 1.0]) == (2.0, 1.0)  # all equal: U = n_a n_b / 2, p = 1
    assert mann_whitney([1.0], [2.0]) == (0.0, 1.0)
    assert np.isnan(mann_whitney([], B)[1]) and np.isnan(mann_whitney([np.nan, 1.0], B)[1])


def test_permutation_test_by_hand():
    # pooled [1, 2, 3, 5]; the 6 choices of a's two values give mean_a - mean_b =
    # {1,2}: -2.5, {1,3}: -1.5, {1,5}: 0.5, {2,3}: -0.5, {2,5}: 1.5, {3,5}: 2.5 -> |d| >= 2.5 in 2 of 6
    assert permutation_test([1.0, 2.0], [3.0, 5.0]) == pytest.approx((-2.5, 1 / 3))
    assert permutation_test([2.0, 3.0], [1.0, 5.0]) == pytest.approx((-0.5, 1.0))  # |d| >= 0.5: all 6
    assert permutation_test([1.0, 5.0], [2.0, 3.0]) == pytest.approx((0.5, 1.0))
    assert permutation_test([2.0, 5.0], [1.0, 3.0]) == pytest.approx((1.5, 4 / 6))
    # ties and zero variance: [0, 0] vs [1, 1] -> d = -1 only for the 2 extreme splits of 6
    assert permutation_test([0.0, 0.0], [1.0, 1.0]) == pytest.approx((-1.0, 1 / 3))
    assert permutation_test([1.0, 1.0, 1.0], [0.0, 0.0, 0.0]) == pytest.approx((1.0, 0.1))
    assert permutation_test([0.4, 0.4], [0.4, 0.4, 0.4]) == pytest.approx((0.0, 1.0))  # all equal: p = 1
    assert permutation_test([1.0], [2.0]) == pytest.approx((-1.0, 1.0))
    assert np.isnan(permutation_test([], [1.0])[1]) and np.isnan(permutation_test([np.nan], [1.0])[1])


def test_permutation_test_is_scipys_exhaustive_one():
    rng = np.random.default_rng(3)
    for na, nb in [(3, 3), (6, 5), (8, 7)]:
        a, b = rng.random(na), rng.random(nb) + 0.2
        # two-sided as P(|D| >= |d|) (scipy's default doubles the smaller tail instead, which differs when
        # n_a != n_b: D's permutation distribution need not be symmetric)
        ref = stats.permutation_test((a, b), lambda x, y, axis=-1: np.abs(x.mean(axis=axis) - y.mean(axis=axis)),
                                     permutation_type="independent", n_resamples=np.inf, vectorized=True,
                                     alternative="greater")
        assert permutation_test(a, b)[1] == pytest.approx(ref.pvalue)


def test_monte_carlo_beyond_the_exact_limit(monkeypatch):
    rng = np.random.default_rng(4)
    a, b = rng.random(7), rng.random(6) + 0.15
    exact = permutation_test(a, b)[1], mann_whitney(a, b)[1]
    monkeypatch.setattr(significance, "EXACT_LIMIT", 100)  # C(13, 7) = 1716 splits: now Monte Carlo
    monkeypatch.setattr(significance, "MC_PERMUTATIONS", 20_000)
    mc = permutation_test(a, b)[1], mann_whitney(a, b)[1]
    assert mc == pytest.approx(exact, abs=0.01) and mc != exact
    assert (permutation_test(a, b)[1], mann_whitney(a, b)[1]) == mc  # seeded


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


def test_compare_methods_per_env_with_holm_across_envs():
    cells = synthetic_cells(seeds=6, gc=False)  # 6 vs 6: the smallest exact p is 2/924, small enough for Holm
    select = {"cfgrl": 3.0, "awr": {"temperature": 10.0}}
    out = compare_methods(cells, "cfgrl", "awr", select)
    assert list(out.columns) == COMPARE_COLUMNS and len(out) == 3
    for r in out.itertuples():
        a = cells[(cells.method == "cfgrl") & (cells.env == r.env) & (cells.w == 3.0)].sort_values("seed")["success"]
        b = cells[(cells.method == "awr") & (cells.env == r.env) & (cells.temperature == 10.0)].sort_values("seed")[
            "success"]
        ref = stats.ttest_ind(a, b, equal_var=False)
        assert (r.welch_t, r.welch_p) == pytest.approx((ref.statistic, ref.pvalue))
        ci = ref.confidence_interval(0.95)
        assert (r.diff_ci_low, r.diff_ci_high) == pytest.approx((ci.low, ci.high))
        assert (r.diff_ci_low, r.diff_ci_high) == pytest.approx(welch_diff_ci(a, b))
        assert (r.ci_a_low, r.ci_a_high) == pytest.approx(mean_ci(a.to_numpy()))
        assert r.perm_p == pytest.approx(permutation_test(a, b)[1])
        assert (r.mwu_u, r.mwu_p) == pytest.approx(mann_whitney(a, b))
        assert r.diff == pytest.approx(a.mean() - b.mean())
        assert r.n_a == r.n_b == 6
    np.testing.assert_allclose(out["holm_p"], holm(out["perm_p"].to_numpy()))
    assert (out["significant"] == (out["holm_p"] < 0.05)).all()
    by_env = out.set_index("env")
    assert by_env.loc["walker-stand", "significant"]  # a 30-point gap
    assert not by_env.loc["pointmaze-large-navigate-singletask-v0", "significant"]  # no gap
    pd.testing.assert_frame_equal(out, compare_methods(cells, "cfgrl", "awr", select))  # nothing random
    with pytest.raises(ValueError, match="rows for env"):
        compare_methods(cells, "cfgrl", "awr", {"awr": {"temperature": 10.0}})  # cfgrl: which w?


def test_holm_family_keeps_a_zero_variance_pair():
    def rows(values):
        return pd.DataFrame([{"env": e, "seed": s, "success": v} for e, vals in values.items()
                             for s, v in enumerate(vals)])

    a = rows({"const": [1.0] * 5, "gap": [0.9, 0.8, 0.85, 0.95, 0.88], "none": [0.5, 0.6, 0.4, 0.55, 0.45]})
    b = rows({"const": [0.0] * 5, "gap": [0.1, 0.2, 0.15, 0.12, 0.18], "none": [0.52, 0.48, 0.58, 0.42, 0.5]})
    out = compare_rows(a, b).set_index("env")
    assert np.isnan(out.loc["const", "welch_p"])  # Welch is undefined here ...
    assert out.loc["const", "perm_p"] == pytest.approx(2 / 252)  # ... the permutation test is not
    assert out.loc["gap", "perm_p"] == pytest.approx(2 / 252)
    perm = out["perm_p"].to_numpy()
    np.testing.assert_allclose(out["holm_p"], holm(perm))  # all three in the family
    assert out.loc["gap", "holm_p"] == pytest.approx(3 * 2 / 252)  # m = 3, not 2
    assert out.loc["gap", "holm_p"] != pytest.approx(holm(perm[1:])[0])  # what dropping "const" would give
    assert out.loc["const", "significant"] and out.loc["gap", "significant"] and not out.loc["none", "significant"]
    assert out.loc["const", ["std_a", "std_b"]].tolist() == [0.0, 0.0]
    assert (out.loc["const", "ci_a_low"], out.loc["const", "diff_ci_low"]) == (1.0, 1.0)


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
