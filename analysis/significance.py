"""Two methods compared per env on per-seed numbers (seeds are the unit; episodes averaged within a seed first).

Seeds of different methods are different training runs, so the samples are independent (unpaired):
Welch's t-test (no equal-variance assumption), the two-sided Mann-Whitney U test (no normality assumption),
Holm-Bonferroni across the envs of one table (family-wise error <= alpha), the difference of means with a
bootstrap CI (each method's seeds resampled independently, seeded), and Hedges' g.
With 4 seeds per method the Mann-Whitney test cannot reach p < 0.05 two-sided (its smallest exact p is
2/70 = 0.029 only with 4 vs 4 and no ties; with 3 vs 3 it is 0.1): read it as a check on Welch, not a verdict.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.selection import ALL, rows_for
from analysis.stats import bootstrap_ci


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Welch's t-test of mean(a) != mean(b). a (n_a,), b (n_b,) per-seed values -> (t, two-sided p).

    NaN when either side has fewer than 2 seeds or both have zero variance.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2 or (np.var(a) == 0 and np.var(b) == 0):
        return (np.nan, np.nan)
    res = stats.ttest_ind(a, b, equal_var=False)
    return (float(res.statistic), float(res.pvalue))


def mann_whitney(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test. a (n_a,), b (n_b,) -> (U of a, p). NaN if a side is empty or all equal."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0 or np.all(np.concatenate([a, b]) == a[0]):
        return (np.nan, np.nan)
    res = stats.mannwhitneyu(a, b, alternative="two-sided")
    return (float(res.statistic), float(res.pvalue))


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


def diff_ci(a: np.ndarray, b: np.ndarray, ci: float = 0.95, n_resamples: int = 10_000, random_state: int = 0
            ) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(a) - mean(b), each side's seeds resampled independently.

    a (n_a,), b (n_b,) per-seed values -> (low, high). Collapses to the difference when neither side varies.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return (np.nan, np.nan)
    d = float(a.mean() - b.mean())
    if (len(a) == 1 or np.all(a == a[0])) and (len(b) == 1 or np.all(b == b[0])):
        return (d, d)
    if len(a) == 1 or np.all(a == a[0]):  # scipy cannot resample a degenerate sample; shift the other
        lo, hi = bootstrap_ci(b, ci, n_resamples, random_state)
        return (float(a[0] - hi), float(a[0] - lo))
    if len(b) == 1 or np.all(b == b[0]):
        lo, hi = bootstrap_ci(a, ci, n_resamples, random_state)
        return (float(lo - b[0]), float(hi - b[0]))

    def stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    res = stats.bootstrap((a, b), stat, confidence_level=ci, n_resamples=n_resamples, method="percentile",
                          random_state=np.random.default_rng(random_state), vectorized=True, paired=False)
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


COMPARE_COLUMNS = ["env", "method_a", "method_b", "n_a", "n_b", "mean_a", "mean_b", "std_a", "std_b", "ci_a_low",
                   "ci_a_high", "ci_b_low", "ci_b_high", "diff", "diff_ci_low", "diff_ci_high", "welch_t",
                   "welch_p", "mwu_u", "mwu_p", "holm_p", "significant", "hedges_g"]


def compare_methods(cells: pd.DataFrame, method_a: str, method_b: str, select: dict[str, Any] | None = None,
                    value: str = "success", knob: str = "w", alpha: float = 0.05, ci: float = 0.95,
                    n_resamples: int = 10_000, random_state: int = 0, envs: list[str] | None = None
                    ) -> pd.DataFrame:
    """method_a vs method_b on every env both were run on: one row per env (COMPARE_COLUMNS).

    cells: the cells table, one row per (method, env, seed, w), `value` the per-seed mean over episodes.
    select: method -> setting compared, e.g. {"cfgrl": 3.0, "awr": None}; a setting is a `knob` value, None
    (the NaN-knob rows of an unguided method) or a dict {column: value} (e.g. {"temperature": 3.0}). A method
    absent from `select` uses all its rows, which must then be one per (env, seed): pass the output of
    analysis.selection.select_reported for both methods when the setting differs per env.
    Only `split == "test"` rows are used when the table has a `split` column.
    diff = mean_a - mean_b; holm_p corrects welch_p across the envs of this call (the table's family);
    significant = holm_p < alpha. Bootstrap CIs are seeded with `random_state`.
    """
    select = select or {}
    a_rows = rows_for(cells, method_a, select.get(method_a, ALL), knob)
    b_rows = rows_for(cells, method_b, select.get(method_b, ALL), knob)
    return compare_rows(a_rows, b_rows, method_a, method_b, value, alpha, ci, n_resamples, random_state, envs)


def compare_rows(a_rows: pd.DataFrame, b_rows: pd.DataFrame, label_a: str = "a", label_b: str = "b",
                 value: str = "success", alpha: float = 0.05, ci: float = 0.95, n_resamples: int = 10_000,
                 random_state: int = 0, envs: list[str] | None = None) -> pd.DataFrame:
    """compare_methods on two already-selected tables (one row per env and seed each, columns env, seed and
    `value`), labelled label_a / label_b in method_a / method_b. One row per shared env (COMPARE_COLUMNS)."""
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
        lo, hi = diff_ci(a, b, ci, n_resamples, random_state)
        a_lo, a_hi = bootstrap_ci(a, ci, n_resamples, random_state)
        b_lo, b_hi = bootstrap_ci(b, ci, n_resamples, random_state)
        rows.append({"env": env, "method_a": method_a, "method_b": method_b, "n_a": len(a), "n_b": len(b),
                     "mean_a": float(a.mean()), "mean_b": float(b.mean()),
                     "std_a": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
                     "std_b": float(b.std(ddof=1)) if len(b) > 1 else 0.0,
                     "ci_a_low": a_lo, "ci_a_high": a_hi, "ci_b_low": b_lo, "ci_b_high": b_hi,
                     "diff": float(a.mean() - b.mean()), "diff_ci_low": lo, "diff_ci_high": hi,
                     "welch_t": t, "welch_p": p, "mwu_u": u, "mwu_p": pu, "hedges_g": hedges_g(a, b)})
    out = pd.DataFrame(rows, columns=[c for c in COMPARE_COLUMNS if c not in ("holm_p", "significant")])
    out["holm_p"] = holm(out["welch_p"].to_numpy(dtype=float))
    out["significant"] = out["holm_p"] < alpha  # NaN -> False
    return out[COMPARE_COLUMNS]
