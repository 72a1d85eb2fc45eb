"""Seed-level statistics. Seeds are the unit of replication: every input array here holds one number per
seed (episodes already averaged within the seed).

Intervals are Student-t intervals over seeds (tests/test_coverage.py measures their coverage at 3-10 seeds):
`mean_ci` for one cell's mean, `welch_diff_ci` for the difference of two independent groups of seeds (two
methods), `paired_diff_ci` for per-seed differences on the same checkpoints (w vs w = 1). The percentile
bootstrap they replace undercovered badly at these sample sizes (about 75% at 3 seeds for a nominal 95%).
rliable's stratified bootstrap is used only for aggregates across envs (analysis.aggregate).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


def _out(x: np.ndarray) -> Any:
    """A 0-d result as a Python float, anything else as it is."""
    return float(x) if np.ndim(x) == 0 else x


def mean_ci(per_seed: np.ndarray, ci: float = 0.95) -> tuple[Any, Any]:
    """Student-t interval of the mean over seeds: mean ± t_{n-1, (1+ci)/2} s / sqrt(n), s the ddof=1 std.

    per_seed (n_seeds,) -> (low, high) floats; (..., n_seeds) -> (low, high) arrays of shape (...), one interval
    per leading index (the coverage test uses this).
    NaN interval with fewer than 2 seeds or any NaN value (a metric the env does not have, e.g. success on
    dm_control), never a zero-width one. A sample with zero variance and n >= 2 gives the degenerate interval
    [m, m]: with 3 seeds all at 0 success, the interval is [0, 0].

    Coverage of the true mean at ci = 0.95, measured on 1000 simulated datasets per setting at 3 / 5 / 10 seeds
    (tests/test_coverage.py; the percentile bootstrap this replaced in brackets): normal per-seed values
    0.949 / 0.945 / 0.953 (0.745 / 0.828 / 0.898); success rates, per seed Binomial(50, p_seed) / 50 with
    p_seed ~ Beta of mean p and concentration 20, p = 0.3: 0.946 / 0.947 / 0.945 (0.789 / 0.837 / 0.891),
    p = 0.6: 0.949 / 0.954 / 0.942 (0.775 / 0.853 / 0.887).
    Where it falls short: rare successes, whose per-seed values are skewed and often exactly 0. p = 0.05:
    0.886 / 0.895 / 0.898 (28% of the seeds at 0); p = 0.01: 0.552 / 0.698 / 0.799 (77% of the seeds at 0,
    45% of the 3-seed datasets all 0, so the interval is [0, 0]). Treat the interval of a success rate near 0
    (or, by symmetry, near 1) as too narrow.
    """
    x = np.asarray(per_seed, dtype=float)
    n = x.shape[-1]
    if n < 2:
        nan = np.full(x.shape[:-1], np.nan)
        return _out(nan), _out(nan.copy())
    m = x.mean(axis=-1)
    half = stats.t.ppf((1 + ci) / 2, n - 1) * x.std(axis=-1, ddof=1) / np.sqrt(n)  # NaN wherever x has a NaN
    return _out(m - half), _out(m + half)


def welch_diff_ci(a: np.ndarray, b: np.ndarray, ci: float = 0.95) -> tuple[Any, Any]:
    """Welch interval of mean(a) - mean(b) for two independent groups of seeds (e.g. two methods):
    diff ± t_{df, (1+ci)/2} sqrt(s_a^2/n_a + s_b^2/n_b), df the Welch-Satterthwaite
    (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1)) (ddof=1 variances).

    a (n_a,), b (n_b,) -> (low, high) floats; a (..., n_a), b (..., n_b) with broadcastable leading shapes ->
    arrays. NaN when either side has fewer than 2 seeds or a NaN value. Zero variance on both sides gives the
    degenerate interval [diff, diff]; zero variance on one side gives the other side's t-interval, shifted.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    na, nb = a.shape[-1], b.shape[-1]
    shape = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    if na < 2 or nb < 2:
        nan = np.full(shape, np.nan)
        return _out(nan), _out(nan.copy())
    d = a.mean(axis=-1) - b.mean(axis=-1)
    va, vb = a.var(axis=-1, ddof=1) / na, b.var(axis=-1, ddof=1) / nb
    se2 = va + vb
    with np.errstate(invalid="ignore", divide="ignore"):
        df = se2 ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    df = np.where(se2 == 0, 1.0, df)  # any df: the half-width is 0 there
    half = np.broadcast_to(stats.t.ppf((1 + ci) / 2, df) * np.sqrt(se2), shape)
    d = np.broadcast_to(d, shape)
    return _out(d - half), _out(d + half)


def paired_diff_ci(a: np.ndarray, b: np.ndarray, ci: float = 0.95) -> tuple[Any, Any]:
    """One-sample Student-t interval of the per-seed differences a - b (paired on seed: the same checkpoints,
    e.g. success at w vs at w = 1): mean_ci(a - b, ci).

    a, b (n_seeds,) aligned by seed -> (low, high) floats; (..., n_seeds) -> arrays. Edge cases as mean_ci
    (NaN below 2 seeds; identical differences on every seed give [d, d]).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"paired samples differ in length: {a.shape[-1]} vs {b.shape[-1]}")
    return mean_ci(a - b, ci)


def seed_std(per_seed: np.ndarray) -> float:
    """Std over seeds (ddof=1). per_seed (n_seeds,) -> float; NaN with fewer than 2 seeds or a NaN value."""
    x = np.asarray(per_seed, dtype=float)
    return float(x.std(ddof=1)) if len(x) > 1 else np.nan


def summarize(cells: pd.DataFrame, ci: float = 0.95) -> pd.DataFrame:
    """Per (method, env, w): n_seeds, mean, std (ddof=1), ci_low, ci_high (mean_ci) of the per-seed success.

    cells: the cells table (one row per method, env, seed, w).
    """
    return summarize_by(cells, ["method", "env", "w"], "success", ci)


def paired_differences(cells: pd.DataFrame, method: str, reference_w: float, ci: float = 0.95) -> pd.DataFrame:
    """For a guided method: per (env, w), the per-seed difference success(w) - success(reference_w) on the
    same checkpoints, with its mean and paired t-interval over seeds (paired_diff_ci). Paired on seed; the row
    w = reference_w (all differences 0) is included."""
    sub = cells[cells["method"] == method]
    rows = []
    for env, env_cells in sub.groupby("env"):
        ref = env_cells[env_cells["w"] == reference_w].set_index("seed")["success"]
        for w, group in env_cells.groupby("w"):
            cur = group.set_index("seed")["success"]
            common = ref.index.intersection(cur.index).sort_values()
            x, r = cur.loc[common].to_numpy(dtype=float), ref.loc[common].to_numpy(dtype=float)
            d = x - r
            lo, hi = paired_diff_ci(x, r, ci)
            rows.append({"method": method, "env": env, "w": w, "reference_w": reference_w, "n_seeds": len(d),
                         "mean_diff": float(d.mean()) if len(d) else np.nan, "ci_low": lo, "ci_high": hi,
                         "seeds_better": int((d > 0).sum()), "seeds_worse": int((d < 0).sum())})
    return pd.DataFrame(rows)


CELL_KEYS = ("method", "env", "seed", "w")


def per_seed_means(episodes: pd.DataFrame, value: str = "success", keys: tuple[str, ...] = CELL_KEYS
                   ) -> pd.DataFrame:
    """Episode-level table -> one row per seed: the mean of `value` over the seed's episodes.

    episodes: one row per evaluation episode, with the columns `keys` and `value`.
    Returns one row per distinct `keys` (NaN keys, e.g. w of an unguided method, kept as a group) with `value`
    (the within-seed mean) and `episodes` (how many episodes it averages). Every statistic in analysis/ takes
    these per-seed numbers as its unit: a seed with 2 episodes weighs as much as a seed with 200.
    """
    missing = [k for k in (*keys, value) if k not in episodes.columns]
    if missing:
        raise KeyError(f"episode table lacks columns {missing}")
    grouped = episodes.groupby(list(keys), dropna=False, sort=True)[value]
    out = grouped.agg(["mean", "size"]).reset_index().rename(columns={"mean": value, "size": "episodes"})
    return out


def summarize_by(cells: pd.DataFrame, keys: list[str], value: str = "success", ci: float = 0.95) -> pd.DataFrame:
    """Like `summarize`, grouped by any columns `keys` (e.g. ["method", "env", "temperature"]).

    cells: one row per (group, seed) with the per-seed `value`. Returns per group: n_seeds, mean, std (ddof=1),
    ci_low, ci_high (Student-t interval over seeds, mean_ci); std and interval are NaN for a single seed.
    """
    rows = []
    for key, group in cells.groupby(keys, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        x = group.sort_values("seed")[value].to_numpy(dtype=float)
        lo, hi = mean_ci(x, ci)
        rows.append({**dict(zip(keys, key, strict=True)), "n_seeds": len(x), "mean": float(x.mean()),
                     "std": seed_std(x), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=[*keys, "n_seeds", "mean", "std", "ci_low", "ci_high"])
