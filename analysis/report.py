"""results/<spec>/report.md: protocol, per-env tables with CIs, paired w comparisons, the reported setting of
each guided method (by the spec's pre-registered rule) with significance tests against the baselines, and the
paper's numbers where the paper has the same cell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.aggregate import iqm_ci, probability_of_improvement, score_matrices
from analysis.figures import figure_formats, role_colors, success_vs_w
from analysis.paper_numbers import FIG3_TEMPERATURE_VS_W, FIG4_FAMILIES, PAPER_TABLES, SUITE_METHOD, lookup
from analysis.plots import (
    aggregate_plot,
    comparison_plot,
    distance_vs_w,
    gc_family_vs_w,
    gradient_concentration,
    gradient_norms_plot,
    performance_vs_divergence,
    performance_vs_step,
    temperature_and_w,
    training_curves,
)
from analysis.run_record import cost_section, provenance_section
from analysis.selection import env_metric, reported_rows, rows_for, split_rows
from analysis.significance import compare_rows
from analysis.stats import paired_differences, summarize_by
from analysis.tables import markdown_table, results_table, to_latex, to_markdown
from cfgrl.envs.registry import KINDS, resolve_env
from cfgrl.io import atomic_write_text
from cfgrl.pipeline.provenance import code_version
from cfgrl.pipeline.spec import SelectRule, Spec, w_label

MAIN_HEADER = ["method", "w", "seeds", "success", "std"]


def slug(env: str) -> str:
    """An env name as one file-name component (Minari names contain '/')."""
    return env.replace("/", "_")


def pct(x: float) -> str:
    """A success fraction as a percentage with one decimal (the report's number format)."""
    return "—" if x is None or np.isnan(x) else f"{100 * x:.1f}"


def num(x: float, digits: int = 1) -> str:
    return "—" if x is None or np.isnan(x) else f"{x:.{digits}f}"


def pval(p: float) -> str:
    return "—" if p is None or np.isnan(p) else (f"{p:.3f}" if p >= 0.001 else "<0.001")


def w_text(w: float) -> str:
    """A w as everywhere else (cfgrl.pipeline.spec.w_label: exact, distinct w never print alike); '—': none."""
    return "—" if np.isnan(w) else w_label(w)


def _protocol(spec: Spec) -> str:
    a = spec.analysis
    lines = [f"- Spec: `{spec.path}` (hash `{spec.hash}`), code `{code_version()}`.",
             f"- Seeds: {list(spec.seeds)} (the unit of replication: episodes are averaged within a seed first, "
             f"then mean, std and a {int(100 * a.ci)}% Student-t interval (mean ± t s / sqrt(n), n seeds; "
             "undefined for one seed) are taken over seeds; a difference between two methods gets Welch's "
             "interval, a paired difference of two w on the same checkpoints the t-interval of the per-seed "
             "differences; only the aggregate across envs uses rliable's stratified bootstrap "
             f"({a.bootstrap_resamples} resamples))."]
    for env, entry in spec.envs.items():
        lines.append(f"- `{env}`: data {_data_text(env, dict(entry.data))}; evaluation on tasks {list(entry.tasks)} x "
                     f"{entry.episodes_per_task} episodes per cell, episode seeds from eval seed {spec.eval.seed} "
                     "and the training seed (the same episodes for every method and w of a seed).")
    for label, entry in spec.methods.items():
        cfg = entry.config
        budget = f"{cfg.steps} updates, batch {cfg.batch_size}, lr {cfg.lr}"
        if hasattr(cfg, "hidden"):
            budget += f", MLP {'x'.join(map(str, cfg.hidden))}"
        if entry.guided:
            budget += f", {cfg.flow_steps} flow steps; w grid {[float(w) for w in entry.w or ()]}"
            rule = entry.select
            if rule is None:
                budget += "; no w selected (the whole grid is reported)"
            elif rule.type == "fixed":
                budget += f"; reported w fixed in advance at {rule.value:g}"
            else:
                budget += "; reported w " + _rule_text(spec, rule)
        where = f" on {', '.join(entry.envs)}" if entry.envs != tuple(spec.envs) else ""
        lines.append(f"- `{label}`" + (f" (`{entry.registry}`)" if entry.registry != label else "")
                     + f"{where}: {budget}.")
    for name, sweep in spec.sweeps.items():
        knob, rule = sweep.knob, sweep.select
        how = f"fixed in advance at {knob} = {rule.value:g}" if rule.type == "fixed" else _rule_text(spec, rule)
        lines.append(f"- `{name}` (reported row): one of {', '.join(f'`{e}`' for e in sweep.entries)}, "
                     f"by {knob}, {how}.")
    lines.append("- No setting is ever chosen on the reported (test) episodes.")
    return "\n".join(lines)


def _data_text(env: str, data: dict[str, Any]) -> str:
    """Where an env's dataset came from, in words."""
    if data["source"] != "generate":
        return {"download": "downloaded (checksummed)"}.get(data["source"], data["source"])
    info = resolve_env(env)
    if info.exorl_domain is not None:
        return (f"ExORL-format episodes generated offline by the suite's behaviour mixture ({data['episodes']} "
                f"episodes, seed {data['seed']}; docs/datasets.md)")
    how = "plan oracles" if "play" in info.generators else "oracle"
    return (f"generated offline with OGBench's environment and {how} ({data['episodes']} episodes, noise "
            f"{data['noise']}, seed {data['seed']})")


def _rule_text(spec: Spec, rule: SelectRule) -> str:
    """A validation or budget rule in words."""
    if rule.type == "budget":
        what = {"mse": "mean ||a_w - a_0||^2", "kl": "k-NN KL(pi_w || pi_0)", "data": "mean ||a - a_data||^2"}
        return (f"the largest per env whose {what[rule.measure or 'mse']} on held-out dataset states (seed mean) is "
                f"at most {rule.divergence:g} (no returns looked at)")
    if rule.on == "seeds":
        return f"chosen per env on extra training seeds {list(rule.seeds)} (trained and evaluated, never reported)"
    return f"chosen per env on separate validation episodes (eval seed {spec.eval.validation_seed})"


def fmt(value: str, x: float) -> str:
    return pct(x) if value == "success" else num(x)


def _env_section(spec: Spec, cells: pd.DataFrame, env: str, outdir: Path) -> list[str]:
    a = spec.analysis
    sub = cells[cells["env"] == env]
    value = env_metric(env)
    summary = summarize_by(sub, ["method", "env", "w"], value, a.ci)
    with_return = resolve_env(env).kind.reports_return
    returns = summarize_by(sub, ["method", "env", "w"], "return", a.ci) if with_return else None
    normalised = "normalized_return" in sub and sub["normalized_return"].notna().any()
    if normalised:  # a Minari dataset with reference scores: the D4RL-normalised score beside the return
        with_return, returns = True, summarize_by(sub, ["method", "env", "w"], "normalized_return", a.ci)
    ci_pct = int(100 * a.ci)
    header = ["method", "w", "seeds", value, "std", f"{ci_pct}% CI"]
    extra = "normalised score" if normalised else "return"
    header += [extra, f"{extra} {ci_pct}% CI"] if with_return else []
    rows = []
    for k, r in enumerate(summary.itertuples()):
        row = [r.method, w_text(r.w), str(r.n_seeds), fmt(value, r.mean), fmt(value, r.std),
               f"[{fmt(value, r.ci_low)}, {fmt(value, r.ci_high)}]"]
        if returns is not None:
            q = returns.iloc[k]
            row += [num(q["mean"]), f"[{num(q['ci_low'])}, {num(q['ci_high'])}]"]
        rows.append(row)
    what = "Success rate (%)" if value == "success" else "Episode return"
    parts = [f"## {env}", "", f"{what}, mean over seeds of the per-seed mean over episodes"
             + (" (normalised score: minari.get_normalized_score x 100, 0 = random, 100 = expert)." if normalised
                else " (return: undiscounted episode return)." if with_return else "."), "",
             markdown_table(header, rows), ""]
    unit = "percentage points" if value == "success" else "return"
    for method in sorted(sub["method"].unique()):
        if not _is_guided(spec, method) or 1.0 not in set(sub[sub["method"] == method]["w"]):
            continue
        diffs = paired_differences(sub.assign(success=sub[value]), method, 1.0, a.ci)
        diffs = diffs[diffs["w"] != 1.0]  # w = 1 minus itself is 0 on every seed
        rows = [[w_text(r.w), fmt(value, r.mean_diff), f"[{fmt(value, r.ci_low)}, {fmt(value, r.ci_high)}]",
                 f"{r.seeds_better}/{r.seeds_worse}/{r.n_seeds}"] for r in diffs.itertuples()]
        if not rows:
            continue
        parts += [f"Paired on checkpoints: `{method}` {value}(w) - {value}(w = 1), {unit}; {ci_pct}% t-interval "
                  "of the per-seed differences.", "",
                  markdown_table(["w", "difference", f"{ci_pct}% CI", "seeds better/worse/all"], rows), ""]
    parts += _per_task_section(sub, env)
    stem = outdir / "figures" / f"{value}_vs_w_{slug(env)}"
    success_vs_w(summary, env, stem, ylabel="success rate (%)" if value == "success" else "return",
                 scale=100.0 if value == "success" else 1.0,
                 w1="flow GCBC" if resolve_env(env).goal_conditioned else "optimality-conditioned", ci=a.ci)
    parts += [f"![{value} vs w on {env}](figures/{stem.name}.png)", ""]
    return parts


def _per_task_section(sub: pd.DataFrame, env: str) -> list[str]:
    """Goal-conditioned envs: success per evaluation task (rows) and method / w (columns), mean over seeds, since
    OGBench's tasks differ a lot in difficulty."""
    if "per_task" not in sub.columns or env_metric(env) != "success" or not resolve_env(env).goal_conditioned:
        return []
    long = []
    for r in sub.itertuples():
        for task, success in json.loads(r.per_task or "{}").items():
            long.append({"method": r.method, "w": r.w, "seed": r.seed, "task": int(task), "success": success})
    if not long:
        return []
    table = pd.DataFrame(long)
    per_seed = table.groupby(["method", "w", "task", "seed"], dropna=False)["success"].mean()
    means = per_seed.groupby(["method", "w", "task"], dropna=False).agg(["mean", "count"]).reset_index()
    columns = means[["method", "w"]].drop_duplicates().itertuples(index=False)
    columns = [(m, w) for m, w in columns]
    n = int(means["count"].max())
    header = ["task"] + [f"{m}" + ("" if np.isnan(w) else f" w={w_label(w)}") for m, w in columns]
    rows = []
    for task in sorted(means["task"].unique()):
        row = [str(task)]
        for m, w in columns:
            hit = means[(means["task"] == task) & (means["method"] == m)
                        & ((means["w"] == w) | (np.isnan(w) & means["w"].isna()))]
            row.append(pct(float(hit["mean"].iloc[0])) if len(hit) else "—")
        rows.append(row)
    return [f"Success per evaluation task (%), mean over {n} seeds:", "", markdown_table(header, rows), ""]


def paper_names(registry: str, select: SelectRule | None) -> list[str]:
    """The paper's column names for a registered method (a guided one at its reported w)."""
    names = []
    for paper_name, (suite, w) in SUITE_METHOD.items():
        if suite != registry:
            continue
        if w is None or (select is not None and select.type == "fixed" and select.value == w):
            names.append(paper_name)
    return names


def _reported_label(spec: Spec, label: str, rows: pd.DataFrame, env: str) -> str:
    """A reported row's name with its setting on `env`: 'cfgrl (w=3)', 'awr (temperature=3)', 'bc'."""
    env_rows = rows[rows["env"] == env]
    if label in spec.sweeps:
        knob = spec.sweeps[label].knob
        return f"{label} ({knob}={env_rows[knob].iloc[0]:g})"
    if _is_guided(spec, label):
        return f"{label} (w={w_text(env_rows['w'].iloc[0])})"
    return label


def _paper_names(spec: Spec, label: str) -> list[str]:
    """The paper's column names for a reported label (a sweep: its entries' method; a guided entry: at the w its
    rule fixes)."""
    if label in spec.sweeps:
        return paper_names(spec.methods[spec.sweeps[label].entries[0]].registry, None)
    entry = spec.methods[label]
    return paper_names(entry.registry, entry.select)


def _is_guided(spec: Spec, label: str) -> bool:
    return label in spec.methods and spec.methods[label].guided


def _comparisons(spec: Spec, cells: pd.DataFrame, reported: dict[str, pd.DataFrame], outdir: Path
                 ) -> list[str]:
    """Every guided method at its reported w (and every sweep at its reported entry) compared with the other
    reported rows: tests per env, Holm across the envs of one comparison and metric, a figure per pair."""
    a = spec.analysis
    guided = [m for m in reported if _is_guided(spec, m)]
    if not guided:
        return []
    parts = ["## Reported settings and comparisons", "",
             "Each guided method is reported at the w its spec rule picks, each sweep (e.g. the AWR temperature) at "
             "the entry its rule picks (never the best on these episodes). Per env, over seeds (n A, n B): the "
             "exact permutation test of the difference in means (perm p; every split of the pooled seeds), with "
             "Welch's t-test and the exact Mann-Whitney U test beside it; Holm-Bonferroni over perm p across the "
             "envs of each comparison (Holm p); the difference of means with Welch's "
             f"{int(100 * a.ci)}% interval; Hedges' g. * = Holm p < 0.05. An exact permutation p cannot go below "
             "2 / C(n A + n B, n A) (0.1 with 3 vs 3 seeds, 0.029 with 4 vs 4, 0.008 with 5 vs 5) and Holm "
             "multiplies the smallest by the number of envs: with 3 seeds per method nothing can be marked, with "
             "4 only a one-env comparison.", ""]
    for label, rows in reported.items():
        if _is_guided(spec, label) or label in spec.sweeps:
            picks = rows.groupby("env")["selection"].first()
            parts += [f"- `{label}`: " + "; ".join(f"{env}: {text}" for env, text in picks.items())]
    table, figures = [], []
    for method in guided:
        chosen = reported[method]
        baselines = [(other, other, rows) for other, rows in reported.items() if not _is_guided(spec, other)]
        for w_ref in (1.0, 0.0):
            if (split_rows(cells[cells["method"] == method])["w"] == w_ref).any():
                baselines.append((f"{method} w={w_label(w_ref)}", None, rows_for(cells, method, w_ref)))
        for label, reported_label, ref in baselines:
            for value in ("success", "return"):  # one Holm family per metric: the envs reporting it
                envs = [e for e in sorted(chosen["env"].unique()) if env_metric(e) == value]
                comp = compare_rows(chosen, ref, method, label, value, 0.05, a.ci, envs=envs)
                if comp.empty:
                    continue
                for r in comp.itertuples():
                    b_text = label if reported_label is None else _reported_label(spec, label, ref, r.env)
                    table.append([r.env, value, _reported_label(spec, method, chosen, r.env), b_text,
                                  fmt(value, r.mean_a), str(r.n_a), fmt(value, r.mean_b), str(r.n_b),
                                  f"{fmt(value, r.diff)} [{fmt(value, r.diff_ci_low)}, {fmt(value, r.diff_ci_high)}]",
                                  pval(r.welch_p), pval(r.mwu_p), pval(r.perm_p),
                                  pval(r.holm_p) + (" *" if r.significant else ""), num(r.hedges_g, 2)])
                if reported_label is not None:
                    stem = outdir / "figures" / f"compare_{method}_vs_{label}_{value}"
                    comparison_plot(comp, stem, scale=100.0 if value == "success" else 1.0,
                                    xlabel="success rate (%)" if value == "success" else "return")
                    figures.append(f"![{method} vs {label} ({value})](figures/{stem.name}.png)")
    header = ["env", "metric", "A", "B", "mean A", "n A", "mean B", "n B", "A - B [CI]", "Welch p", "MWU p", "perm p",
              "Holm p", "Hedges g"]
    parts += ["", markdown_table(header, table), "", *[f + "\n" for f in figures]]
    paper = []
    for env in sorted(cells["env"].unique()):
        for label in reported:
            for paper_name in _paper_names(spec, label):
                ref = lookup(env, paper_name)
                if ref is not None:
                    spread = "" if np.isnan(ref[1]) else f" ± {ref[1]:g}"
                    paper.append([env, label, paper_name, f"{ref[0]:g}{spread}"])
    if paper:
        parts += ["The paper's numbers for the same cells (mean ± std over its seeds; success in %, return as is):",
                  "",
                  markdown_table(["env", "our entry", "paper's column", "paper"], paper), ""]
    return parts


def _aggregate_section(spec: Spec, reported: dict[str, pd.DataFrame], outdir: Path) -> list[str]:
    """Across envs with rliable: IQM with stratified bootstrap CIs and the probability that each guided method
    (at its reported setting) beats each other reported row, on normalised scores (success; dm_control return /
    1000; Minari datasets with reference scores: minari.get_normalized_score), for every group of reported rows
    run on the same envs with the same seeds."""
    a = spec.analysis
    groups: dict[tuple[str, ...], list[str]] = {}
    def comparable(env: str, rows: pd.DataFrame) -> bool:  # a common scale: success, return / 1000, D4RL score
        if resolve_env(env).kind.score_scale is not None:
            return True
        return "normalized_return" in rows and rows.loc[rows["env"] == env, "normalized_return"].notna().all()

    for label, rows in reported.items():
        envs = sorted(e for e in rows["env"].unique() if comparable(e, rows))
        if envs:
            groups.setdefault(tuple(envs), []).append(label)
    parts = []
    for k, (envs, labels) in enumerate(sorted(groups.items())):
        if len(labels) < 2:
            continue
        table = pd.concat([reported[m].assign(method=m) for m in labels], ignore_index=True)
        table = table[table["env"].isin(envs)]
        scale = table["env"].map(lambda e: resolve_env(e).kind.score_scale)  # success 1, dm_control return 1000
        success = table["env"].map(env_metric) == "success"
        table["score"] = np.where(success, table["success"], table["return"]) / scale
        if "normalized_return" in table:  # Minari datasets with reference scores: the D4RL-normalised score / 100
            normalised = scale.isna()
            table.loc[normalised, "score"] = table.loc[normalised, "normalized_return"] / 100.0
        try:
            scores, env_order = score_matrices(table, labels, value="score", envs=list(envs))
        except ValueError as err:
            parts += [f"- {', '.join(labels)}: not aggregated ({err}).", ""]
            continue
        iqm = iqm_ci(scores, a.ci, a.bootstrap_resamples, a.bootstrap_seed)
        pairs = [(x, y) for x in labels if _is_guided(spec, x) for y in labels if y != x]
        poi = (probability_of_improvement(scores, pairs, a.ci, a.bootstrap_resamples, a.bootstrap_seed)
               if pairs else None)
        stem = outdir / "figures" / f"aggregate_{k}"
        aggregate_plot(iqm, stem, poi, scale=100.0, xlabel="IQM normalised score (%)",
                       colors=role_colors([m for m in labels if _is_guided(spec, m)],
                                          [m for m in labels if not _is_guided(spec, m)]))
        rows = [[r.method, str(r.n_seeds), pct(r.estimate), f"[{pct(r.ci_low)}, {pct(r.ci_high)}]"]
                for r in iqm.itertuples()]
        parts += [f"### {len(envs)} env(s): {', '.join(env_order)}", "",
                  markdown_table(["reported row", "seeds", "IQM (%)", f"{int(100 * a.ci)}% CI"], rows), ""]
        if poi is not None:
            parts += [markdown_table(["P(X > Y)", "estimate", f"{int(100 * a.ci)}% CI"],
                             [[f"{r.x} > {r.y}", num(r.poi, 2), f"[{num(r.ci_low, 2)}, {num(r.ci_high, 2)}]"]
                              for r in poi.itertuples()]), ""]
        parts += [f"![aggregate {k}](figures/{stem.name}.png)", ""]
    if not parts:
        return []
    return ["## Aggregate across envs (rliable)", "",
            f"Interquartile mean of the seed x env scores with stratified bootstrap CIs ({a.bootstrap_resamples} "
            "resamples), and the "
            "probability of improvement P(X > Y) (0.5: no difference), on normalised scores: success rate, and "
            "dm_control return / 1000, Minari datasets' D4RL-normalised score / 100 (Minari datasets without "
            "reference scores are left out: their returns have no common scale). Every "
            "reported row at its reported setting. With few envs the IQM is mostly a trimmed mean over seeds.", "",
            *parts]


def _family_section(spec: Spec, cells: pd.DataFrame, outdir: Path) -> list[str]:
    """The paper's Figs. 4/6: the goal-conditioned family vs w, flat and hierarchical (by registered method)."""
    if "registry" not in cells.columns:
        return []
    test = split_rows(cells)
    test = test.assign(method=test["registry"].fillna(test["method"]))
    if not test["method"].isin([guided for guided, _ in FIG4_FAMILIES.values()]).any():
        return []
    a = spec.analysis
    stem = outdir / "figures" / "gc_family_vs_w"
    gc_family_vs_w(test[test["env"].map(env_metric) == "success"], stem, FIG4_FAMILIES["flat"],
                   FIG4_FAMILIES["hierarchical"], ci=a.ci)
    return ["## The goal-conditioned family vs w (paper's Figs. 4/6)", "",
            f"![goal-conditioned family vs w](figures/{stem.name}.png)", ""]


def _gradient_section(spec: Spec, outdir: Path) -> list[str]:
    """The paper's Fig. 2 diagnostic: per-sample actor-gradient norms saved at the end of training
    (train/<method>/<env>/seed<k>/grad_norms.npz) of every method that has them, pooled over seeds, per env."""
    parts = []
    for env in spec.envs:
        norms = {}
        for method in spec.methods:
            files = sorted((outdir / "train" / method / env).glob("seed*/grad_norms.npz"))
            pooled = np.concatenate([np.load(f)["norms"] for f in files]) if files else np.zeros(0)
            if len(pooled):
                norms[method] = pooled
        if len(norms) < 2:
            continue
        stem = outdir / "figures" / f"grad_norms_{slug(env)}"
        gradient_norms_plot(norms, stem)
        rows = [[m, str(len(v)), *(pct(x) for x in gradient_concentration(v).values())] for m, v in norms.items()]
        parts += [f"### Per-sample actor-gradient norms on {env} (paper's Fig. 2)", "",
                  "Share of the total gradient mass carried by the largest-norm samples of one batch per seed "
                  "(uniform norms would give 1% and 10%).", "",
                  markdown_table(["method", "samples", "top 1% share (%)", "top 10% share (%)"], rows), "",
                  f"![gradient norms on {env}](figures/{stem.name}.png)", ""]
    return parts


def _distance_section(cells: pd.DataFrame, outdir: Path) -> list[str]:
    """The reviewers' question: how far pi_w moves from pi_0 (mean ||a_w - a_0||^2 on dataset states,
    same noise) as w grows, beside performance, per guided method and env."""
    if "distance_to_w0" not in cells.columns:
        return []
    test = split_rows(cells)
    test = test[test["distance_to_w0"].notna()]
    parts = []
    for (method, env), group in test.groupby(["method", "env"]):
        value = env_metric(env)
        stem = outdir / "figures" / f"distance_vs_w_{method}_{slug(env)}"
        distance_vs_w(group.rename(columns={"distance_to_w0": "distance"}), stem, value=value,
                      scale=100.0 if value == "success" else 1.0,
                      ylabel="success rate (%)" if value == "success" else "return")
        means = group.groupby("w")["distance_to_w0"].mean()
        kls = group.groupby("w")["kl_to_w0"].mean() if "kl_to_w0" in group.columns else pd.Series(dtype=float)
        parts += [f"- `{method}` on {env} (n = {group['seed'].nunique()} seeds): mean ||a_w - a_0||^2 "
                  + ("[k-NN KL(pi_w || pi_0)] " if kls.notna().any() else "") + "by w: "
                  + ", ".join(f"w={w_label(w)}: {d:.3f}"
                              + (f" [{kls[w]:.2f}]" if w in kls and np.isfinite(kls[w]) else "")
                              for w, d in means.items()),
                  "", f"![distance from pi_0 vs w, {method} on {env}](figures/{stem.name}.png)", ""]
    if not parts:
        return []
    return ["## How far guidance moves the policy from the data", "",
            "Mean squared distance between actions of pi_w and pi_0 (w = 0: the flow behaviour policy) on 512 held-out "
            "states of the dataset (its validation file), drawn from the same noise, per seed; in brackets the k-NN "
            "estimate of KL(pi_w || pi_0) (Wang, Kulkarni and Verdu 2009, k = 3, 64 actions of each policy on each "
            "of 64 states; it orders policies by divergence but shrinks large KLs); next to performance.", "",
            *parts]


def divergence_curves(spec: Spec, cells: pd.DataFrame) -> pd.DataFrame:
    """Rows for the performance-vs-divergence figure: every test cell with a measured data distance, as
    (env, curve, setting, seed, divergence, success, return). A guided method's curve runs over its w; a sweep's
    entries (AWR's temperatures) form one curve over their knob; any other method is a point."""
    test = split_rows(cells)
    if "data_distance" not in test.columns:
        return pd.DataFrame()
    test = test[test["data_distance"].notna()]
    curve = test["method"].copy()
    setting = test["w"].astype(float) if "w" in test.columns else pd.Series(np.nan, test.index)
    for name, sweep in spec.sweeps.items():
        member = test["method"].isin(sweep.values)
        curve[member] = name
        setting[member] = test.loc[member, "method"].map(dict(sweep.values))
    return test.assign(curve=curve, setting=setting, divergence=test["data_distance"])[
        ["env", "curve", "setting", "seed", "divergence", "success", "return"]]


def _divergence_section(spec: Spec, cells: pd.DataFrame, outdir: Path) -> list[str]:
    """Performance against the distance from the data's actions, every method on one axis (CFGRL over w, AWR
    over T), and the table behind it with both divergences from pi_0."""
    curves = divergence_curves(spec, cells)
    if curves.empty or curves["curve"].nunique() < 2 and curves["setting"].nunique() < 2:
        return []
    a = spec.analysis
    parts = ["## Performance at equal divergence", "",
             "x: mean ||a - a_data||^2 between the policy's action and the dataset's on held-out (validation-file) "
             "states, per seed; y: performance. A guided method's curve runs over w, AWR's over its temperature T; "
             "comparing at equal x is the trade-off the paper argues about. The budget select rule "
             "(`select: {type: budget}`) picks on these divergences without looking at any return.", ""]
    for value in ("success", "return"):
        sub = curves[[env_metric(e) == value for e in curves["env"]]]
        if sub.empty:
            continue
        scale, label = (100.0, "success rate (%)") if value == "success" else (1.0, "return")
        stem = outdir / "figures" / f"performance_vs_divergence_{value}"
        performance_vs_divergence(sub, stem, value=value, scale=scale, ylabel=label, ci=a.ci)
        parts += [f"![performance vs divergence ({value})](figures/{stem.name}.png)", ""]
    test = split_rows(cells)
    rows = []
    for (env, name, setting), g in curves.groupby(["env", "curve", "setting"], dropna=False):
        value = env_metric(env)
        ids = g.index
        m, lo, hi = (summarize_by(g.assign(k=0), ["k"], value, a.ci).iloc[0][["mean", "ci_low", "ci_high"]])
        mse = test.loc[ids, "distance_to_w0"].mean() if "distance_to_w0" in test.columns else np.nan
        kl = test.loc[ids, "kl_to_w0"].mean() if "kl_to_w0" in test.columns else np.nan
        rows.append([env, name, "" if not np.isfinite(setting) else f"{setting:g}", str(len(g)),
                     f"{g['divergence'].mean():.3f}", "" if not np.isfinite(mse) else f"{mse:.3f}",
                     "" if not np.isfinite(kl) else f"{kl:.2f}",
                     f"{fmt(value, m)} [{fmt(value, lo)}, {fmt(value, hi)}]"])
    parts += [markdown_table(["env", "method", "w or T", "n seeds", "||a - a_data||^2", "||a_w - a_0||^2",
                      "KL(pi_w || pi_0) (k-NN)", f"performance, mean [{int(100 * a.ci)}% CI]"], rows), ""]
    return parts


def _temperature_section(cells: pd.DataFrame, outdir: Path) -> list[str]:
    """The paper's Fig. 3: AWR vs its temperature T (one spec entry per T) beside CFGRL vs w, per env."""
    if "registry" not in cells.columns:
        return []
    test = split_rows(cells)
    awr_name, cfgrl_name = FIG3_TEMPERATURE_VS_W
    awr = test[test["registry"] == awr_name].assign(method=awr_name)
    cfg = test[test["registry"] == cfgrl_name].assign(method=cfgrl_name)
    parts = []
    for value in ("success", "return"):
        envs = sorted(e for e in set(awr["env"]) & set(cfg["env"]) if env_metric(e) == value)
        if not envs:
            continue
        stem = outdir / "figures" / f"awr_temperature_vs_cfgrl_w_{value}"
        temperature_and_w(pd.concat([awr, cfg]), stem, awr_name, cfgrl_name, envs=envs, value=value,
                          scale=100.0 if value == "success" else 1.0,
                          ylabel="success rate (%)" if value == "success" else "return")
        parts += [f"![AWR vs T beside CFGRL vs w ({value})](figures/{stem.name}.png)", ""]
    return (["## AWR temperature vs CFGRL guidance (paper's Fig. 3)", "", *parts]) if parts else []


def _paper_tables(spec: Spec, cells: pd.DataFrame, reported: dict[str, pd.DataFrame], outdir: Path
                  ) -> list[str]:
    """Tables in the paper's layout (rows = envs, columns = reported rows: guided methods at their reported w,
    sweeps at their reported entry, unguided entries; the paper's number beside ours, bold by the paper's
    >= 95%-of-best rule, * = significant guided vs unguided by the Holm-corrected exact permutation test), for
    the envs the paper has numbers for;
    also written as LaTeX to tables/table<N>.tex."""
    a = spec.analysis
    parts = []
    for kind, table_id in PAPER_TABLES.items():
        envs = sorted(e for e in split_rows(cells)["env"].unique() if resolve_env(e).kind.name == kind)
        present = [m for m in reported if reported[m]["env"].isin(envs).any()]  # columns: rows run on these envs
        paper = {label: names[0] for label in present if (names := _paper_names(spec, label))}
        if not envs or not any(lookup(e, name, table_id) for e in envs for name in paper.values()):
            continue
        guided = [m for m in present if _is_guided(spec, m)]
        unguided = [m for m in present if not _is_guided(spec, m)]
        value = KINDS[kind].metric  # the kind's own number: return (dm_control), success (OGBench)
        table = results_table(pd.concat([reported[m] for m in guided + unguided]),
                              {label: label for label in guided + unguided}, value=value,
                              envs=envs, paper=paper, paper_table=table_id,
                              comparisons=[(g, u) for g in guided for u in unguided],
                              ci=a.ci)
        scale, unit = (1.0, "episode return") if value == "return" else (100.0, "success rate (%)")
        latex = to_latex(table, scale=scale, unit=unit, ci=a.ci, caption=f"{spec.name}: paper Table {table_id}",
                         label=f"tab:{spec.name}-{table_id}")
        atomic_write_text(outdir / "tables" / f"table{table_id}.tex", latex)
        parts += [f"### In the layout of the paper's Table {table_id[0]}", "",
                  to_markdown(table, scale=scale, unit=unit, ci=a.ci),
                  f"LaTeX: `tables/table{table_id}.tex`.", ""]
    return (["## The paper's tables", "", *parts]) if parts else []


def _steps_section(spec: Spec, cells: pd.DataFrame, snapshots: pd.DataFrame, outdir: Path) -> list[str]:
    """Performance over training steps (eval.at_steps snapshots and the final model), per env and method."""
    if snapshots.empty:
        return []
    parts = ["## Performance over training steps", "",
             "Snapshots saved during training (eval.at_steps) evaluated on the reported episodes, beside the final "
             "model. Every table and comparison above reports the final model (the last step, fixed in advance), "
             "never the best step.", ""]
    both = pd.concat([split_rows(cells), snapshots], ignore_index=True)
    for env in sorted(snapshots["env"].unique()):
        sub = both[(both["env"] == env) & both["method"].isin(snapshots["method"].unique())]
        value = env_metric(env)
        stem = outdir / "figures" / f"{value}_vs_step_{slug(env)}"
        performance_vs_step(sub, stem, value=value, scale=100.0 if value == "success" else 1.0,
                            ylabel="success rate (%)" if value == "success" else "return", ci=spec.analysis.ci)
        parts += [f"![{value} vs training step on {env}](figures/{stem.name}.png)", ""]
    return parts


def _curves_section(spec: Spec, outdir: Path) -> list[str]:
    """Training curves from every reported run's metrics.csv: loss components (and validation losses) vs step."""
    parts = []
    for env in spec.envs:
        long = []
        for label, entry in spec.methods.items():
            if env not in entry.envs:
                continue
            for seed in spec.seeds:
                path = outdir / "train" / label / env / f"seed{seed}" / "metrics.csv"
                if not path.exists() or path.stat().st_size == 0:
                    continue
                rows = pd.read_csv(path)
                value_cols = [c for c in rows.columns if "/" in c]
                melted = rows.melt(id_vars=["step"], value_vars=value_cols, var_name="metric", value_name="value")
                long.append(melted.assign(method=label, seed=seed))
        if not long:
            continue
        stem = outdir / "figures" / f"training_curves_{slug(env)}"
        training_curves(pd.concat(long, ignore_index=True), stem, ci=spec.analysis.ci)
        parts += [f"![training curves on {env}](figures/{stem.name}.png)", ""]
    return ["## Training curves", "", *parts] if parts else []


def write_report(spec: Spec, cells_path: str | Path, outdir: str | Path) -> Path:
    """Compute statistics from the cells table, draw figures (in the spec's analysis.figure_formats), write
    stats.csv and report.md into outdir."""
    with figure_formats(spec.analysis.figure_formats):
        return _write_report(spec, cells_path, outdir)


def _write_report(spec: Spec, cells_path: str | Path, outdir: str | Path) -> Path:
    outdir = Path(outdir)
    for folder in ("figures", "tables"):  # outputs of the report rule even when nothing is drawn in them
        (outdir / folder).mkdir(parents=True, exist_ok=True)
    cells = pd.read_csv(cells_path)
    snapshot = cells["snapshot"].astype(bool) if "snapshot" in cells.columns else pd.Series(False, cells.index)
    cells, snapshots = cells[~snapshot], cells[snapshot]
    a = spec.analysis
    test = split_rows(cells)
    summary = pd.concat([summarize_by(test, ["method", "env", "w"], value, a.ci).assign(metric=value)
                         for value in ("success", "return")])
    atomic_write_text(outdir / "stats.csv", summary.to_csv(index=False))
    parts = [f"# Report: {spec.name}", "", "## Protocol", "", _protocol(spec), ""]
    for env in sorted(test["env"].unique()):
        parts += _env_section(spec, test, env, outdir)
    reported = reported_rows(spec, cells)  # what the spec reports, by its selection rules
    parts += _comparisons(spec, cells, reported, outdir)
    parts += _aggregate_section(spec, reported, outdir)
    parts += _paper_tables(spec, cells, reported, outdir)
    parts += _family_section(spec, cells, outdir)
    parts += _distance_section(cells, outdir)
    parts += _temperature_section(cells, outdir)
    parts += _divergence_section(spec, cells, outdir)
    parts += _gradient_section(spec, outdir)
    parts += _steps_section(spec, cells, snapshots, outdir)
    parts += _curves_section(spec, outdir)
    parts += provenance_section(cells, outdir)
    parts += cost_section(outdir)
    parts += ["Files: `cells.csv` (one row per cell; `split` = test or validation), `stats.csv` (the test-split "
              f"tables), `figures/` ({', '.join(f.upper() for f in a.figure_formats)}).", ""]
    path = outdir / "report.md"
    atomic_write_text(path, "\n".join(parts))
    return path
