"""Which w (or AWR temperature) is reported: a rule fixed before looking at the reported cells.

The authors' code logs the maximum over w of the evaluation return, i.e. it picks w on the very episodes it
reports. That is an oracle choice and is refused here (see MAX_OVER_TEST_IS_BIASED). Two honest rules:

- {"type": "fixed", "value": 3}: the same w for every env, written in the spec before any result exists.
- {"type": "validation", "on": "seeds" | "episodes"}: per env (or, with "scope": "global", one w for all envs)
  the w with the best mean on the cells whose `split` is "validation", reporting that w's "test" cells.
  "seeds": validation cells come from training seeds disjoint from the test seeds (checked).
  "episodes": validation cells are the same checkpoints evaluated on separate episodes (checked through the
  result-file `path`, when the table has it). Ties go to the smallest w (closest to the behaviour policy).

Cells tables: one row per (method, env, seed, w[, split]) with the per-seed value (episodes already averaged).
A table without a `split` column counts as all "test".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

ALL = "all"  # setting sentinel for rows_for: every row of the method

MAX_OVER_TEST_IS_BIASED = (
    "selecting w (or the AWR temperature) by the best result on the reported (test) cells is biased upward: "
    "the maximum of several noisy estimates overestimates the performance of the setting it picks (winner's "
    "curse), the bias grows with the number of settings tried (so it favours the method with the larger grid), "
    "and the reported CI no longer covers the selected setting's true performance. Fix w in advance "
    '({"type": "fixed", "value": ...}) or choose it on held-out cells '
    '({"type": "validation", "on": "seeds" | "episodes"}).')


def _match(column: pd.Series, value: Any) -> pd.Series:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return column.isna()
    if isinstance(value, int | float | np.number):
        return pd.Series(np.isclose(column.to_numpy(dtype=float), float(value)), index=column.index)
    return column == value


def split_rows(cells: pd.DataFrame, split: str | None = "test") -> pd.DataFrame:
    """The rows of `split` ("test" by default; a table without a `split` column is all test). None: all rows."""
    if split is None or "split" not in cells.columns:
        return cells
    return cells[cells["split"] == split]


def rows_for(cells: pd.DataFrame, method: str, setting: Any = ALL, knob: str = "w", split: str | None = "test"
             ) -> pd.DataFrame:
    """The cells of one method at one setting, at most one row per (env, seed).

    setting: ALL (every row of the method: the table must already hold one setting per env), None (rows whose
    `knob` is NaN: an unguided method), a number (rows whose `knob` equals it), or a dict {column: value} for
    any columns (e.g. {"temperature": 3.0}). split: which `split` rows to use ("test"; None for all).
    Raises ValueError if the selection is ambiguous (several rows for one env and seed).
    """
    sub = split_rows(cells[cells["method"] == method], split)
    if isinstance(setting, dict):
        for col, val in setting.items():
            sub = sub[_match(sub[col], val)]
    elif not (isinstance(setting, str) and setting == ALL):
        if knob not in sub.columns:
            raise KeyError(f"cells have no column {knob!r} to select {method} at {setting!r}")
        sub = sub[_match(sub[knob], setting)]
    dup = sub.duplicated(["env", "seed"])
    if dup.any():
        env, seed = sub.loc[dup, ["env", "seed"]].iloc[0]
        raise ValueError(f"{method}: {int(dup.sum()) + 1}+ rows for env {env!r} seed {seed} at setting "
                         f"{setting!r}; select one {knob} per method (or apply select_reported first)")
    return sub


def _validation_choice(val: pd.DataFrame, test: pd.DataFrame, knob: str, value: str, scope: str
                       ) -> dict[str, tuple[float, float]]:
    """env -> (chosen knob value, its validation mean). Per env, or one value for all envs (scope 'global')."""
    val = val[val[knob].notna()]
    if scope == "env":
        out = {}
        for env, v in val.groupby("env"):
            means = v.groupby(knob)[value].mean()
            means = means[means.index.isin(test.loc[test["env"] == env, knob].dropna().unique())]
            if means.empty:
                raise ValueError(f"env {env!r}: no {knob} has both validation and test cells")
            best = means[means == means.max()].index.min()  # ties -> smallest w
            out[env] = (float(best), float(means.loc[best]))
        return out
    if scope == "global":
        per_env = val.groupby(["env", knob])[value].mean().unstack(knob)
        per_env = per_env.dropna(axis=1)  # a w must be there for every env
        means = per_env.mean(axis=0)
        if means.empty:
            raise ValueError(f"no {knob} has validation cells in every env")
        best = means[means == means.max()].index.min()
        return {env: (float(best), float(means.loc[best])) for env in per_env.index}
    raise ValueError(f"scope must be 'env' or 'global', not {scope!r}")


def select_reported(cells: pd.DataFrame, method: str, rule: dict[str, Any], value: str = "success",
                    knob: str = "w") -> pd.DataFrame:
    """The test cells of `method` at the setting that `rule` picks, one row per (env, seed).

    cells: the cells table (one row per method, env, seed, knob value[, split]; `value` is the per-seed mean).
    rule: {"type": "fixed", "value": v} or {"type": "validation", "on": "seeds" | "episodes"[, "scope": "env" |
    "global"]} (see the module docstring). Any rule that selects on the reported cells ("max", "best", "oracle",
    "test", or validation "on": "test") raises ValueError: MAX_OVER_TEST_IS_BIASED says why.
    Returns the selected test rows with two added columns: `selection` (the rule, in words) and
    `validation_mean` (the mean that chose the setting; NaN for a fixed rule).
    """
    kind = rule.get("type")
    if kind in ("max", "best", "oracle", "test", "max_over_test"):
        raise ValueError(f"rule {rule!r} refused: {MAX_OVER_TEST_IS_BIASED}")
    sub = cells[cells["method"] == method]
    if sub.empty:
        raise ValueError(f"no cells of method {method!r}")
    if kind == "fixed":
        if "value" not in rule:
            raise ValueError('a fixed rule needs a value: {"type": "fixed", "value": 3}')
        out = rows_for(cells, method, rule["value"], knob).copy()
        envs = set(sub["env"])
        if set(out["env"]) != envs:
            raise ValueError(f"{method}: {knob} = {rule['value']!r} was not evaluated on envs "
                             f"{sorted(envs - set(out['env']))}")
        out["selection"] = f"fixed {knob} = {rule['value']}"
        out["validation_mean"] = np.nan
        return out
    if kind != "validation":
        raise ValueError(f"unknown rule type {kind!r}: use 'fixed' or 'validation'")
    on = rule.get("on")
    if on in ("test", "evaluation", "reported"):
        raise ValueError(f"rule {rule!r} refused: {MAX_OVER_TEST_IS_BIASED}")
    if on not in ("seeds", "episodes"):
        raise ValueError(f"validation rule needs 'on': 'seeds' or 'episodes', not {on!r}")
    if "split" not in sub.columns or not (sub["split"] == "validation").any():
        raise ValueError(f"{method}: a validation rule needs cells with split == 'validation' (none found)")
    val, test = sub[sub["split"] == "validation"], sub[sub["split"] == "test"]
    for env, t in test.groupby("env"):
        v = val[val["env"] == env]
        if on == "seeds":
            shared = set(v["seed"]) & set(t["seed"])
            if shared:
                raise ValueError(f"{method} {env}: validation 'on': 'seeds' but seeds {sorted(shared)} are in "
                                 "both splits; use disjoint validation seeds (or 'on': 'episodes')")
        elif "path" in sub.columns and set(v["path"]) & set(t["path"]):
            raise ValueError(f"{method} {env}: validation and test cells share result files; 'on': 'episodes' "
                             "needs separate validation episodes")
    scope = rule.get("scope", "env")
    choice = _validation_choice(val, test, knob, value, scope)
    parts = []
    for env in sorted(test["env"].unique()):
        if env not in choice:
            raise ValueError(f"{method} {env}: no validation cells to choose {knob}")
        best, vmean = choice[env]
        rows = rows_for(test[test["env"] == env], method, best, knob).copy()
        rows["selection"] = f"{knob} = {best:g} chosen on validation {on} ({scope})"
        rows["validation_mean"] = vmean
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


def env_metric(env: str) -> str:
    """The reported value of an env: 'success' (OGBench) or 'return' (dm_control, Minari)."""
    from cfgrl.envs import resolve_env

    return "return" if resolve_env(env).kind in ("dmc", "minari") else "success"


def _select_per_metric(cells: pd.DataFrame, method: str, rule: dict[str, Any], knob: str) -> pd.DataFrame:
    """select_reported, with each env's setting chosen on that env's own metric (success or return)."""
    sub = cells[cells["method"] == method]
    parts = []
    for value in ("success", "return"):
        envs = [e for e in sub["env"].unique() if env_metric(e) == value]
        if envs:
            parts.append(select_reported(sub[sub["env"].isin(envs)], method, rule, value, knob))
    return pd.concat(parts, ignore_index=True)


def reported_rows(spec: dict[str, Any], cells: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """What a spec reports: label -> the test rows at the reported setting, one row per (env, seed).

    Labels: every unguided method entry that is not part of a sweep (its only setting); every guided entry with
    a `select` rule (at the w the rule picks); every sweep (rows of the entry the rule picks per env, with the
    chosen entry in column `entry` and its knob value in the knob column). Added columns: `selection` (the rule
    in words) and `validation_mean`.
    """
    from cfgrl.spec import knob_value

    sweeps = spec.get("sweeps", {})
    swept = {e for sweep in sweeps.values() for e in sweep["entries"]}
    out: dict[str, pd.DataFrame] = {}
    for label, entry in spec["methods"].items():
        if label in swept or not (cells["method"] == label).any():
            continue
        if "w" in entry:
            if "select" in entry:
                out[label] = _select_per_metric(cells, label, entry["select"], "w")
            continue
        rows = rows_for(cells, label, None).copy()
        out[label] = rows.assign(selection="its only setting", validation_mean=np.nan)
    for name, sweep in sweeps.items():
        knob = sweep.get("knob", "temperature")
        values = {e: knob_value(spec, e, knob) for e in sweep["entries"]}
        sub = cells[cells["method"].isin(values)].copy()
        if sub.empty:
            continue
        sub[knob] = sub["method"].map(values)
        sub = sub.assign(entry=sub["method"], method=name)
        out[name] = _select_per_metric(sub, name, sweep["select"], knob)
    return out
