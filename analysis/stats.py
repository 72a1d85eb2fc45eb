"""Seed-level statistics. Seeds are the unit of replication: every input array here holds one number per
seed (episodes already averaged within the seed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def bootstrap_ci(per_seed: np.ndarray, ci: float = 0.95, n_resamples: int = 10_000,
                 random_state: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over seeds. per_seed (n_seeds,) -> (low, high).

    With one seed, or all seeds equal, the interval collapses to the mean; a NaN value (a metric the env does not
    have, e.g. success on dm_control) gives a NaN interval, like the mean.
    """
    x = np.asarray(per_seed, dtype=float)
    if len(x) == 0 or np.isnan(x).any():
        return (np.nan, np.nan)
    if len(x) == 1 or np.all(x == x[0]):
        return (float(x.mean()), float(x.mean()))
    res = stats.bootstrap((x,), np.mean, confidence_level=ci, n_resamples=n_resamples, method="percentile",
                          random_state=np.random.default_rng(random_state), vectorized=True)
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def summarize(cells: pd.DataFrame, ci: float = 0.95, n_resamples: int = 10_000, random_state: int = 0
              ) -> pd.DataFrame:
    """Per (method, env, w): n_seeds, mean, std (ddof=1), ci_low, ci_high of the per-seed success.

    cells: the cells table (one row per method, env, seed, w).
    """
    return summarize_by(cells, ["method", "env", "w"], "success", ci, n_resamples, random_state)


def paired_differences(cells: pd.DataFrame, method: str, reference_w: float, ci: float = 0.95,
                       n_resamples: int = 10_000, random_state: int = 0) -> pd.DataFrame:
    """For a guided method: per (env, w), the per-seed difference success(w) - success(reference_w) on the
    same checkpoints, with its mean and bootstrap CI over seeds. Paired on seed."""
    sub = cells[cells["method"] == method]
    rows = []
    for env, env_cells in sub.groupby("env"):
        ref = env_cells[env_cells["w"] == reference_w].set_index("seed")["success"]
        for w, group in env_cells.groupby("w"):
            cur = group.set_index("seed")["success"]
            common = ref.index.intersection(cur.index)
            d = (cur.loc[common] - ref.loc[common]).sort_index().to_numpy()
            lo, hi = bootstrap_ci(d, ci, n_resamples, random_state)
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


def summarize_by(cells: pd.DataFrame, keys: list[str], value: str = "success", ci: float = 0.95,
                 n_resamples: int = 10_000, random_state: int = 0) -> pd.DataFrame:
    """Like `summarize`, grouped by any columns `keys` (e.g. ["method", "env", "temperature"]).

    cells: one row per (group, seed) with the per-seed `value`. Returns per group: n_seeds, mean, std (ddof=1),
    ci_low, ci_high (percentile bootstrap over seeds, seeded with `random_state`).
    """
    rows = []
    for key, group in cells.groupby(keys, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        x = group.sort_values("seed")[value].to_numpy(dtype=float)
        lo, hi = bootstrap_ci(x, ci, n_resamples, random_state)
        rows.append({**dict(zip(keys, key, strict=True)), "n_seeds": len(x), "mean": float(x.mean()),
                     "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=[*keys, "n_seeds", "mean", "std", "ci_low", "ci_high"])
