"""Across envs with rliable (Agarwal et al. 2021): IQM with stratified bootstrap CIs, probability of
improvement, performance profiles.

Input everywhere: scores, a dict method -> (n_seeds, n_envs) matrix of per-seed values (episodes averaged
within a seed first), the envs in one column order shared by all methods (`score_matrices` builds it from the
cells table). Scores should be on a common scale across envs (success fractions are; returns need `scale`).

Two facts about rliable 1.2 handled here:
- Its stratified bootstrap draws indices with the global `np.random.choice`, so the `random_state` it accepts
  does not make the CIs reproducible. Every call below runs inside `seeded_numpy(random_state)`, which seeds the
  global NumPy generator and restores its previous state afterwards; random_state is also passed to rliable.
- It requires arch < 8, and arch 7.x fails to import under pandas >= 3, hence the project's pin pandas < 3.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from analysis.selection import ALL, rows_for


@functools.cache
def rliable_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """(rliable.library, rliable.metrics, rliable.plot_utils), imported once (rliable is slow to import)."""
    from rliable import library, metrics, plot_utils

    return library, metrics, plot_utils


@contextlib.contextmanager
def seeded_numpy(seed: int) -> Iterator[np.random.RandomState]:
    """Seed NumPy's global generator (which rliable's bootstrap uses) for the block; restore it afterwards.

    Yields a RandomState(seed) to pass on as rliable's random_state.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)
            yield np.random.RandomState(seed)
    finally:
        np.random.set_state(state)


def score_matrices(cells: pd.DataFrame, methods: Sequence[str], select: dict[str, Any] | None = None,
                   value: str = "success", knob: str = "w", envs: Sequence[str] | None = None,
                   scale: float | dict[str, float] | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Cells table -> ({method: (n_seeds, n_envs) matrix}, env order).

    select: method -> setting as in analysis.significance.compare_methods (absent: all rows, one per env and
    seed). envs: the columns (default: envs every method has). scale: divide each env's values by this (one
    number, or env -> number, e.g. 1000 for ExORL returns) to put envs on one scale.
    Raises ValueError when a method's seeds differ across envs (the matrix would not be rectangular; rliable's
    stratified bootstrap resamples runs within each env column and needs the same runs in every column).
    """
    select = select or {}
    rows = {m: rows_for(cells, m, select.get(m, ALL), knob) for m in methods}
    if envs is None:
        sets = [set(r["env"]) for r in rows.values()]
        envs = sorted(set.intersection(*sets)) if sets else []
    envs = list(envs)
    if not envs:
        raise ValueError(f"no env shared by methods {list(methods)}")
    out = {}
    for method, r in rows.items():
        table = r.pivot(index="seed", columns="env", values=value)
        missing_envs = [e for e in envs if e not in table.columns]
        if missing_envs:
            raise ValueError(f"{method}: no cells for envs {missing_envs}")
        table = table[envs]
        if table.isna().any().any():
            seeds = {e: sorted(table.index[table[e].notna()].tolist()) for e in envs}
            raise ValueError(f"{method}: seeds differ across envs ({seeds}); aggregate over the seeds every env "
                             "has, or run the missing cells")
        m = table.to_numpy(dtype=float)
        if scale is not None:
            m = m / (np.array([scale[e] for e in envs]) if isinstance(scale, dict) else float(scale))
        out[method] = m
    return out, envs


AGGREGATES = {"iqm": "aggregate_iqm", "mean": "aggregate_mean", "median": "aggregate_median",
              "optimality_gap": "aggregate_optimality_gap"}


def aggregate_ci(scores: dict[str, np.ndarray], aggregates: Sequence[str] = ("iqm",), ci: float = 0.95,
                 reps: int = 2000, random_state: int = 0) -> pd.DataFrame:
    """rliable aggregates with stratified-bootstrap percentile CIs (over seeds within each env).

    scores: method -> (n_seeds, n_envs). aggregates: names from AGGREGATES ("iqm": 25% trimmed mean of all
    seed x env scores). Returns one row per (method, aggregate): estimate, ci_low, ci_high.
    """
    rly, metrics, _ = rliable_modules()
    funcs = [getattr(metrics, AGGREGATES[a]) for a in aggregates]

    def func(x: np.ndarray) -> np.ndarray:
        return np.array([f(x) for f in funcs])

    with seeded_numpy(random_state) as rs:
        points, intervals = rly.get_interval_estimates(scores, func, reps=reps, confidence_interval_size=ci,
                                                       random_state=rs)
    rows = [{"method": m, "aggregate": a, "estimate": float(points[m][k]), "ci_low": float(intervals[m][0, k]),
             "ci_high": float(intervals[m][1, k]), "n_seeds": scores[m].shape[0], "n_envs": scores[m].shape[1]}
            for m in scores for k, a in enumerate(aggregates)]
    return pd.DataFrame(rows)


def iqm_ci(scores: dict[str, np.ndarray], ci: float = 0.95, reps: int = 2000, random_state: int = 0
           ) -> pd.DataFrame:
    """IQM per method with a stratified bootstrap CI: aggregate_ci(scores, ("iqm",)) -> method, estimate,
    ci_low, ci_high, n_seeds, n_envs."""
    return aggregate_ci(scores, ("iqm",), ci, reps, random_state).drop(columns="aggregate")


def probability_of_improvement(scores: dict[str, np.ndarray], pairs: Sequence[tuple[str, str]], ci: float = 0.95,
                               reps: int = 2000, random_state: int = 0) -> pd.DataFrame:
    """P(X > Y): for each (x, y) in pairs, the probability that a random seed of x beats a random seed of y on
    an env (Mann-Whitney U / (n_x n_y), ties 1/2), averaged over envs; CI by resampling each method's seeds
    independently within envs. scores: method -> (n_seeds, n_envs), same env order for both.
    Returns one row per pair: x, y, poi, ci_low, ci_high. 0.5 = no difference.
    """
    rly, metrics, _ = rliable_modules()
    pair_scores = {f"{x},{y}": (scores[x], scores[y]) for x, y in pairs}
    with seeded_numpy(random_state) as rs:
        points, intervals = rly.get_interval_estimates(pair_scores, metrics.probability_of_improvement, reps=reps,
                                                       confidence_interval_size=ci, random_state=rs)
    rows = []
    for x, y in pairs:
        key = f"{x},{y}"
        iv = np.asarray(intervals[key]).ravel()
        rows.append({"x": x, "y": y, "poi": float(points[key]), "ci_low": float(iv[0]), "ci_high": float(iv[1])})
    return pd.DataFrame(rows)


def performance_profiles(scores: dict[str, np.ndarray], taus: np.ndarray, ci: float = 0.95, reps: int = 2000,
                         random_state: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Score distributions: for each tau in taus (n_taus,), the fraction of seed x env scores above tau.

    scores: method -> (n_seeds, n_envs). Returns (profiles: method -> (n_taus,), cis: method -> (2, n_taus)),
    as rliable.library.create_performance_profile with a seeded stratified bootstrap.
    """
    rly, _, _ = rliable_modules()
    with seeded_numpy(random_state):
        return rly.create_performance_profile(scores, np.asarray(taus, dtype=float), reps=reps,
                                              confidence_interval_size=ci)
