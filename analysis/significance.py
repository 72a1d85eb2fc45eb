"""Two methods compared per env on per-seed numbers (seeds are the unit; episodes averaged within a seed first).

Seeds of different methods are different training runs, so the samples are independent (unpaired). Per env:
- `permutation_test`: the exact two-sided permutation test of the difference in means (Fisher-Pitman), every
  split of the pooled seeds into the two groups enumerated (beyond EXACT_LIMIT splits, more than 10 vs 10
  seeds, a seeded Monte Carlo over MC_PERMUTATIONS random splits). The test behind `holm_p` and `significant`:
  it is defined for any n_a, n_b >= 1 and any data, ties and zero variance included, so every compared env
  stays in the Holm family.
- `mann_whitney`: the two-sided Mann-Whitney U test, also an exact permutation test (midranks for ties), not
  the normal approximation (which is anti-conservative with ties: [0,0,0] vs [1,1,1] gave p = 0.047 where the
  exact p is 0.1).
- `welch`: Welch's t-test (no equal-variance assumption), kept as a column; undefined (NaN) when both sides
  have zero variance.
- Holm-Bonferroni over the permutation p across the envs of one table (family-wise error <= alpha), the
  difference of means with its Welch t-interval (analysis.stats.welch_diff_ci), and Hedges' g.
Exact permutation p-values are multiples of 1 / C(n_a + n_b, n_a); with equal group sizes the two extreme splits
tie, so two-sided p >= 2 / C(2n, n): 0.1 at 3 vs 3 seeds, 2/70 = 0.029 at 4 vs 4, 2/252 = 0.008 at 5 vs 5. With
3 seeds per method no comparison can be significant at 0.05, and with 4 only a single-env family can; that is
the honest answer at these sample sizes, not a defect of the test.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.selection import ALL, rows_for
from analysis.stats import mean_ci, seed_std, welch_diff_ci

EXACT_LIMIT = 200_000  # enumerate every split when C(n_a + n_b, n_a) is at most this (10 vs 10: 184,756)
MC_PERMUTATIONS = 100_000  # otherwise this many random splits
MC_SEED = 0


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Welch's t-test of mean(a) != mean(b). a (n_a,), b (n_b,) per-seed values -> (t, two-sided p).

    NaN when either side has fewer than 2 seeds or both have zero variance.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2 or (np.var(a) == 0 and np.var(b) == 0):
        return (np.nan, np.nan)
    res = stats.ttest_ind(a, b, equal_var=False)
    return (float(res.statistic), float(res.pvalue))


@functools.lru_cache(maxsize=4)
def _all_splits(n: int, k: int) -> np.ndarray:
    """Every k-subset of range(n) as rows: (C(n, k), k) int32 array, read-only (cached; 10 vs 10: 7 MB)."""
    count = math.comb(n, k)
    flat = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(n), k)), dtype=np.int32,
                       count=count * k)
    out = flat.reshape(count, k)
    out.flags.writeable = False
    return out


def _permutation_p(scores: np.ndarray, n_a: int) -> float:
    """Two-sided permutation p of the sum of the first n_a of `scores` (N,) (group a; the rest is group b).

    p = P(|S - E S| >= |s - E S|) over the splits of the pooled seeds, S the sum over the seeds assigned to a,
    s the observed one; both the Mann-Whitney U (scores: midranks) and the difference of means (scores: the
    values) are affine in S. Every split when C(N, n_a) <= EXACT_LIMIT; else MC_PERMUTATIONS random splits
    (seeded with MC_SEED), p = (1 + #{|S| >= |s|}) / (1 + MC_PERMUTATIONS).
    """
    n = len(scores)
    centre = n_a * scores.mean()
    observed = abs(scores[:n_a].sum() - centre)
    tol = 1e-9 * max(1.0, float(np.abs(scores).max()) * n)  # float error of the sums, far below any real gap
    if math.comb(n, n_a) <= EXACT_LIMIT:
        sums = scores[_all_splits(n, n_a)].sum(axis=1)
        return float(np.mean(np.abs(sums - centre) >= observed - tol))
    rng = np.random.default_rng(MC_SEED)
    hits, done = 0, 0
    while done < MC_PERMUTATIONS:
        m = min(10_000, MC_PERMUTATIONS - done)
        idx = rng.permuted(np.tile(np.arange(n), (m, 1)), axis=1)[:, :n_a]
        hits += int((np.abs(scores[idx].sum(axis=1) - centre) >= observed - tol).sum())
        done += m
    return (1 + hits) / (1 + MC_PERMUTATIONS)


def mann_whitney(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test as an exact permutation test. a (n_a,), b (n_b,) -> (U of a, p).

    U = R_a - n_a (n_a + 1) / 2 with midranks for ties (R_a: the rank sum of a in the pooled sample);
    p = P(|U - n_a n_b / 2| >= |u - n_a n_b / 2|) over every split of the pooled seeds into groups of n_a and
    n_b, the ranks kept (so ties are handled exactly, not by the normal approximation). Exact whenever
    C(n_a + n_b, n_a) <= EXACT_LIMIT (200,000: up to 10 vs 10 seeds); beyond that a Monte Carlo estimate from
    MC_PERMUTATIONS (100,000) random splits, seeded. Without ties this equals scipy's method="exact".
    Defined for n_a, n_b >= 1 (p = 1 when all values are equal); NaN if a side is empty or has a NaN.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0 or np.isnan(a).any() or np.isnan(b).any():
        return (np.nan, np.nan)
    ranks = stats.rankdata(np.concatenate([a, b]))  # midranks
    u = float(ranks[: len(a)].sum() - len(a) * (len(a) + 1) / 2)
    return (u, _permutation_p(ranks, len(a)))


def permutation_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Exact two-sided permutation test of mean(a) != mean(b) (Fisher-Pitman). a (n_a,), b (n_b,) ->
    (mean(a) - mean(b), p).

    p = P(|D| >= |d|) over every split of the pooled seeds into groups of n_a and n_b, D the difference of the
    groups' means, d the observed one (a small float tolerance counts ties in |D| as ties). Same enumeration as
    mann_whitney: exact up to C(n_a + n_b, n_a) = 200,000 splits, else a seeded Monte Carlo with 100,000.
    Defined for n_a, n_b >= 1 and any data, zero variance included (p = 1 when all values are equal); NaN if a
    side is empty or has a NaN.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0 or np.isnan(a).any() or np.isnan(b).any():
        return (np.nan, np.nan)
    return (float(a.mean() - b.mean()), _permutation_p(np.concatenate([a, b]), len(a)))


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values. pvalues (m,) -> (m,), same order; NaN entries stay NaN and are not
    counted in the family.

    Sorted ascending p_(1) <= ... <= p_(m): adjusted p_(i) = min(1, max_{j <= i} (m - j + 1) p_(j)).
    Reject H_i at family-wise level alpha iff adjusted p_i < alpha (equivalently, <=; they differ only on ties).
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = len(q)
    if m == 0:
        return out
    order = np.argsort(q, kind="stable")
    scaled = (m - np.arange(m)) * q[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    res = np.empty(m)
    res[order] = adjusted
    out[ok] = res
    return out


def hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    """Hedges' g of a - b: Cohen's d with the pooled std, times the small-sample correction J.

    a (n_a,), b (n_b,). d = (mean_a - mean_b) / s_p, s_p^2 = ((n_a-1) s_a^2 + (n_b-1) s_b^2) / (n_a + n_b - 2)
    (ddof=1 variances), J = 1 - 3 / (4 (n_a + n_b) - 9) (Hedges & Olkin 1985). NaN with fewer than 2 seeds on
    a side or zero pooled std.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return np.nan
    sp2 = ((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2)
    if sp2 == 0:
        return np.nan
    d = (a.mean() - b.mean()) / np.sqrt(sp2)
    return float(d * (1 - 3 / (4 * (na + nb) - 9)))


COMPARE_COLUMNS = ["env", "method_a", "method_b", "n_a", "n_b", "mean_a", "mean_b", "std_a", "std_b", "ci_a_low",
                   "ci_a_high", "ci_b_low", "ci_b_high", "diff", "diff_ci_low", "diff_ci_high", "welch_t",
                   "welch_p", "mwu_u", "mwu_p", "perm_p", "holm_p", "significant", "hedges_g"]


def compare_methods(cells: pd.DataFrame, method_a: str, method_b: str, select: dict[str, Any] | None = None,
                    value: str = "success", knob: str = "w", alpha: float = 0.05, ci: float = 0.95,
                    envs: list[str] | None = None) -> pd.DataFrame:
    """method_a vs method_b on every env both were run on: one row per env (COMPARE_COLUMNS).

    cells: the cells table, one row per (method, env, seed, w), `value` the per-seed mean over episodes.
    select: method -> setting compared, e.g. {"cfgrl": 3.0, "awr": None}; a setting is a `knob` value, None
    (the NaN-knob rows of an unguided method) or a dict {column: value} (e.g. {"temperature": 3.0}). A method
    absent from `select` uses all its rows, which must then be one per (env, seed): pass the output of
    analysis.selection.select_reported for both methods when the setting differs per env.
    Only `split == "test"` rows are used when the table has a `split` column. See compare_rows for the columns.
    """
    select = select or {}
    a_rows = rows_for(cells, method_a, select.get(method_a, ALL), knob)
    b_rows = rows_for(cells, method_b, select.get(method_b, ALL), knob)
    return compare_rows(a_rows, b_rows, method_a, method_b, value, alpha, ci, envs)


def compare_rows(a_rows: pd.DataFrame, b_rows: pd.DataFrame, label_a: str = "a", label_b: str = "b",
                 value: str = "success", alpha: float = 0.05, ci: float = 0.95, envs: list[str] | None = None
                 ) -> pd.DataFrame:
    """compare_methods on two already-selected tables (one row per env and seed each, columns env, seed and
    `value`), labelled label_a / label_b in method_a / method_b. One row per shared env (COMPARE_COLUMNS).

    Per env: n_a, n_b seeds; mean, std (ddof=1; NaN for one seed) and Student-t interval (mean_ci) of each side;
    diff = mean_a - mean_b with its Welch interval (welch_diff_ci); welch_t / welch_p (Welch's t-test, NaN when
    undefined), mwu_u / mwu_p (exact Mann-Whitney U), perm_p (exact permutation test of the difference in
    means). holm_p = Holm over perm_p across the envs of this call (the table's family; perm_p is defined for
    every env with data, so no env drops out of the family); significant = holm_p < alpha. No randomness.
    """
    method_a, method_b = label_a, label_b
    common = sorted(set(a_rows["env"]) & set(b_rows["env"]))
    if envs is not None:
        common = [e for e in envs if e in common]
    rows = []
    for env in common:
        a = a_rows[a_rows["env"] == env].sort_values("seed")[value].to_numpy(dtype=float)
        b = b_rows[b_rows["env"] == env].sort_values("seed")[value].to_numpy(dtype=float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            t, p = welch(a, b)
        u, pu = mann_whitney(a, b)
        _, pp = permutation_test(a, b)
        lo, hi = welch_diff_ci(a, b, ci)
        a_lo, a_hi = mean_ci(a, ci)
        b_lo, b_hi = mean_ci(b, ci)
        rows.append({"env": env, "method_a": method_a, "method_b": method_b, "n_a": len(a), "n_b": len(b),
                     "mean_a": float(a.mean()), "mean_b": float(b.mean()), "std_a": seed_std(a),
                     "std_b": seed_std(b), "ci_a_low": a_lo, "ci_a_high": a_hi, "ci_b_low": b_lo, "ci_b_high": b_hi,
                     "diff": float(a.mean() - b.mean()), "diff_ci_low": lo, "diff_ci_high": hi,
                     "welch_t": t, "welch_p": p, "mwu_u": u, "mwu_p": pu, "perm_p": pp, "hedges_g": hedges_g(a, b)})
    out = pd.DataFrame(rows, columns=[c for c in COMPARE_COLUMNS if c not in ("holm_p", "significant")])
    out["holm_p"] = holm(out["perm_p"].to_numpy(dtype=float))
    out["significant"] = out["holm_p"] < alpha  # NaN -> False
    return out[COMPARE_COLUMNS]
