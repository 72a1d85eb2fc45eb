"""Which w (or AWR temperature) is reported: a rule fixed before looking at the reported cells.

The authors' code logs the maximum over w of the evaluation return, i.e. it picks w on the very episodes it
reports. That is an oracle choice and is refused here (see MAX_OVER_TEST_IS_BIASED). Two honest rules:

- {"type": "fixed", "value": 3}: the same w for every env, written in the spec before any result exists.
- {"type": "validation", "on": "seeds" | "episodes"}: per env the w with the best mean on the cells whose `split`
  is "validation", reporting that w's "test" cells.
  "seeds": validation cells come from training seeds disjoint from the test seeds (checked).
  "episodes": validation cells are the same checkpoints evaluated on separate episodes (checked through the
  result-file `path`, when the table has it). Ties go to the smallest w (closest to the behaviour policy).
- {"type": "budget", "divergence": 0.2, "measure": "mse" | "kl" | "data"}: per env the largest w (or
  temperature) whose divergence, averaged over the reported seeds, is at most the budget. The divergences are
  measured on held-out dataset states, not on episodes (cfgrl.pipeline.evaluate.divergences): "mse" is
  mean ||a_w - a_0||^2, "kl" a k-NN estimate of KL(pi_w || pi_0), "data" mean ||a - a_data||^2 (the one that
  also exists for an AWR temperature). No return is looked at, so the rule is as fair as a fixed w.

Cells tables: one row per (method, env, seed, w[, split]) with the per-seed value (episodes already averaged).
A table without a `split` column counts as all "test".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cfgrl.pipeline.spec import (  # noqa: F401  (MAX_OVER_TEST_IS_BIASED: the refusal's reason)
    DIVERGENCE_COLUMNS,
    MAX_OVER_TEST_IS_BIASED,
    SelectRule,
    Spec,
)

ALL = "all"  # setting sentinel for rows_for: every row of the method


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


def _validation_choice(val: pd.DataFrame, test: pd.DataFrame, knob: str, value: str
                       ) -> dict[str, tuple[float, float]]:
    """env -> (chosen knob value, its validation mean), per env; ties go to the smallest value."""
    val = val[val[knob].notna()]
    out = {}
    for env, v in val.groupby("env"):
        means = v.groupby(knob)[value].mean()
        means = means[means.index.isin(test.loc[test["env"] == env, knob].dropna().unique())]
        if means.empty:
            raise ValueError(f"env {env!r}: no {knob} has both validation and test cells")
        best = means[means == means.max()].index.min()  # ties -> smallest w
        out[env] = (float(best), float(means.loc[best]))
    return out


def _budget_choice(test: pd.DataFrame, method: str, rule: SelectRule, knob: str) -> dict[str, tuple[float, float]]:
    """env -> (the largest knob value whose seed-mean divergence is within the budget, that mean)."""
    column = DIVERGENCE_COLUMNS[rule.measure or "mse"]
    if column not in test.columns:
        raise ValueError(f"{method}: a budget rule needs the cells column {column!r} (re-run the evaluations)")
    out = {}
    for env, t in test[test[knob].notna()].groupby("env"):
        means = t.groupby(knob)[column].mean()
        if means.isna().all():
            raise ValueError(f"{method} {env}: no {column!r} measured (evaluations without --data?)")
        within = means[means <= rule.divergence]
        if within.empty:
            raise ValueError(f"{method} {env}: no {knob} keeps the mean {rule.measure} divergence within the budget "
                             f"{rule.divergence:g} (smallest: {means.min():.3g} at {knob} = {means.idxmin():g}); "
                             "raise `divergence`")
        out[env] = (float(within.index.max()), float(within.loc[within.index.max()]))
    return out


def select_reported(cells: pd.DataFrame, method: str, rule: SelectRule | dict[str, Any], value: str = "success",
                    knob: str = "w") -> pd.DataFrame:
    """The test cells of `method` at the setting that `rule` picks, one row per (env, seed).

    cells: the cells table (one row per method, env, seed, knob value[, split]; `value` is the per-seed mean).
    rule: a SelectRule or its spec mapping, {"type": "fixed", "value": v} or {"type": "validation", "on": "seeds" |
    "episodes"} (see the module docstring); a rule choosing on the reported cells raises ValueError
    (cfgrl.pipeline.spec.select_problem, the one check of these rules, says why).
    Returns the selected test rows with two added columns: `selection` (the rule, in words) and
    `validation_mean` (the mean that chose the setting; NaN for fixed and budget rules).
    """
    rule = SelectRule.parse(rule, knob=knob)
    sub = cells[cells["method"] == method]
    if sub.empty:
        raise ValueError(f"no cells of method {method!r}")
    if rule.type == "fixed":
        out = rows_for(cells, method, rule.value, knob).copy()
        envs = set(sub["env"])
        if set(out["env"]) != envs:
            raise ValueError(f"{method}: {knob} = {rule.value!r} was not evaluated on envs "
                             f"{sorted(envs - set(out['env']))}")
        out["selection"] = f"fixed {knob} = {rule.value:g}"
        out["validation_mean"] = np.nan
        return out
    if rule.type == "budget":
        test = split_rows(sub)
        parts = []
        for env, (chosen, divergence) in sorted(_budget_choice(test, method, rule, knob).items()):
            rows = rows_for(test[test["env"] == env], method, chosen, knob).copy()
            rows["selection"] = f"{knob} = {chosen:g}: the largest with mean {rule.measure} divergence " \
                                f"{divergence:.3g} <= {rule.divergence:g}"
            rows["validation_mean"] = np.nan
            parts.append(rows)
        return pd.concat(parts, ignore_index=True)
    if "split" not in sub.columns or not (sub["split"] == "validation").any():
        raise ValueError(f"{method}: a validation rule needs cells with split == 'validation' (none found)")
    val, test = sub[sub["split"] == "validation"], sub[sub["split"] == "test"]
    for env, t in test.groupby("env"):
        v = val[val["env"] == env]
        if rule.on == "seeds":
            shared = set(v["seed"]) & set(t["seed"])
            if shared:
                raise ValueError(f"{method} {env}: validation 'on': 'seeds' but seeds {sorted(shared)} are in "
                                 "both splits; use disjoint validation seeds (or 'on': 'episodes')")
        elif "path" in sub.columns and set(v["path"]) & set(t["path"]):
            raise ValueError(f"{method} {env}: validation and test cells share result files; 'on': 'episodes' "
                             "needs separate validation episodes")
    choice = _validation_choice(val, test, knob, value)
    parts = []
    for env in sorted(test["env"].unique()):
        if env not in choice:
            raise ValueError(f"{method} {env}: no validation cells to choose {knob}")
        best, vmean = choice[env]
        rows = rows_for(test[test["env"] == env], method, best, knob).copy()
        rows["selection"] = f"{knob} = {best:g} chosen on validation {rule.on}"
        rows["validation_mean"] = vmean
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


def env_metric(env: str) -> str:
    """The reported value of an env: 'success' (OGBench) or 'return' (dm_control, Minari)."""
    from cfgrl.envs.registry import resolve_env

    return resolve_env(env).metric


def _select_per_metric(cells: pd.DataFrame, method: str, rule: SelectRule, knob: str) -> pd.DataFrame:
    """select_reported, with each env's setting chosen on that env's own metric (success or return)."""
    sub = cells[cells["method"] == method]
    parts = []
    for value in ("success", "return"):
        envs = [e for e in sub["env"].unique() if env_metric(e) == value]
        if envs:
            parts.append(select_reported(sub[sub["env"].isin(envs)], method, rule, value, knob))
    return pd.concat(parts, ignore_index=True)


def reported_rows(spec: Spec, cells: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """What a spec reports: label -> the test rows at the reported setting, one row per (env, seed).

    Labels: every unguided method entry that is not part of a sweep (its only setting); every guided entry with
    a `select` rule (at the w the rule picks); every sweep (rows of the entry the rule picks per env, with the
    chosen entry in column `entry` and its knob value in the knob column). Added columns: `selection` (the rule
    in words) and `validation_mean`.
    """
    out: dict[str, pd.DataFrame] = {}
    for label, entry in spec.methods.items():
        if spec.sweep_of(label) is not None or not (cells["method"] == label).any():
            continue
        if entry.guided:
            if entry.select is not None:
                out[label] = _select_per_metric(cells, label, entry.select, "w")
            continue
        rows = rows_for(cells, label, None).copy()
        out[label] = rows.assign(selection="its only setting", validation_mean=np.nan)
    for name, sweep in spec.sweeps.items():
        sub = cells[cells["method"].isin(sweep.values)].copy()
        if sub.empty:
            continue
        sub[sweep.knob] = sub["method"].map(dict(sweep.values))
        sub = sub.assign(entry=sub["method"], method=name)
        out[name] = _select_per_metric(sub, name, sweep.select, sweep.knob)
    return out
