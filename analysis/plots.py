"""The suite's figures beyond success_vs_w, in analysis.figures' style (STYLE, COLORS, save: PNG and PDF).

Every curve is a mean over seeds with its Student-t CI over seeds (analysis.stats.mean_ci; episodes averaged
within a seed first; no band for a single seed); only the aggregate across envs uses rliable's stratified
bootstrap. Inputs are the cells table (one row per method, env, seed, w) or the outputs of
analysis.significance / analysis.aggregate. Each function writes stem.png and stem.pdf and returns both paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.figures import COLORS, STYLE, save
from analysis.stats import summarize_by
from cfgrl.pipeline.spec import w_label


def ci_note(ci: float = 0.95) -> str:
    """The figures' one line on what the bands are."""
    return f"mean and {int(round(100 * ci))}% Student-t CI over seeds"


CI_NOTE = ci_note(0.95)


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return int(np.ceil(n / ncols)), ncols


def _band(ax: plt.Axes, s: pd.DataFrame, x: str, scale: float, color: str, label: str, marker: str = "o-"
          ) -> None:
    s = s.sort_values(x)
    ax.plot(s[x], scale * s["mean"], marker, color=color, label=label, ms=4)
    ax.fill_between(s[x], scale * s["ci_low"], scale * s["ci_high"], color=color, alpha=0.2, lw=0)


def temperature_and_w(cells: pd.DataFrame, stem: Path, awr: str, cfgrl: str, envs: Sequence[str] | None = None,
                      temperature: str = "temperature", knob: str = "w",
                      value: str = "success", scale: float = 100.0, ylabel: str = "success rate (%)",
                      ncols: int = 3, ci: float = 0.95) -> list[Path]:
    """Fig. 3 style: per env, AWR vs its temperature T (log axis) beside CFGRL vs w, on a shared y axis.

    cells: the cells table; AWR rows (method `awr`) carry T in the column `temperature`, CFGRL rows (method
    `cfgrl`) w in `knob`.
    """
    if temperature not in cells.columns:
        raise KeyError(f"cells have no {temperature!r} column: AWR rows need their temperature there")
    a_sum = summarize_by(cells[cells["method"] == awr], ["env", temperature], value, ci)
    c_sum = summarize_by(cells[cells["method"] == cfgrl], ["env", knob], value, ci)
    envs = list(envs) if envs is not None else sorted(set(a_sum["env"]) | set(c_sum["env"]))
    nrows, nenv_cols = _grid(len(envs), ncols)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(2.6 * 2 * nenv_cols + 0.6 * (nenv_cols - 1), 2.7 * nrows))
        # per env a pair of panels; a narrow empty column separates the pairs
        ratios = sum(([1, 1, 0.28] for _ in range(nenv_cols)), [])[:-1]
        gs = fig.add_gridspec(nrows, len(ratios), width_ratios=ratios, wspace=0.08, hspace=0.75)
        for k in range(nrows * nenv_cols):
            r, col = k // nenv_cols, 3 * (k % nenv_cols)
            ax_t = fig.add_subplot(gs[r, col])
            ax_w = fig.add_subplot(gs[r, col + 1])
            if k >= len(envs):
                ax_t.set_visible(False)
                ax_w.set_visible(False)
                continue
            env = envs[k]
            a, c = a_sum[a_sum["env"] == env], c_sum[c_sum["env"] == env]
            if len(a):
                _band(ax_t, a, temperature, scale, COLORS[0], "AWR")
                ax_t.set_xscale("log")
                ax_t.set_xticks(a[temperature].to_numpy(), [f"{t:g}" for t in a[temperature]])
                ax_t.minorticks_off()
            if len(c):
                _band(ax_w, c, knob, scale, COLORS[1], "CFGRL")
            shown = scale * pd.concat([a, c])[["mean", "ci_low", "ci_high"]].to_numpy(dtype=float)
            lo, hi = (np.nanmin(shown), np.nanmax(shown)) if np.isfinite(shown).any() else (0.0, 1.0)
            pad = 0.08 * max(hi - lo, 1e-9)
            for ax in (ax_t, ax_w):
                ax.set_ylim(lo - pad, hi + pad)
            ax_w.tick_params(labelleft=False)
            ax_t.set_xlabel("AWR temperature T")
            ax_w.set_xlabel("CFGRL guidance w")
            ax_t.set_ylabel(ylabel if k % nenv_cols == 0 else "")
            ax_t.set_title(env, fontsize=9, loc="left", x=0.0)
        handles = [plt.Line2D([], [], color=COLORS[0], marker="o", label=f"AWR ({awr})"),
                   plt.Line2D([], [], color=COLORS[1], marker="o", label=f"CFGRL ({cfgrl})")]
        fig.legend(handles=handles, loc="upper center", ncol=2, bbox_to_anchor=(0.5, 1.0 + 0.06 / nrows))
        fig.suptitle(f"AWR vs temperature beside CFGRL vs w ({ci_note(ci)})", y=1.0 + 0.13 / nrows, fontsize=10)
        return save(fig, stem)


def comparison_plot(comparison: pd.DataFrame, stem: Path, scale: float = 100.0, xlabel: str = "success rate (%)",
                    alpha: float = 0.05) -> list[Path]:
    """Per env, both methods' means with their Student-t CIs over seeds (horizontal, envs as rows); '*' marks
    envs where the Holm-corrected exact permutation p < alpha, with that p-value and Hedges' g written beside.

    comparison: the output of analysis.significance.compare_methods (one row per env).
    """
    comp = comparison.reset_index(drop=True)
    if comp.empty:
        raise ValueError("empty comparison: the two methods share no env")
    a_name, b_name = comp["method_a"].iloc[0], comp["method_b"].iloc[0]
    n = len(comp)
    y = np.arange(n)[::-1]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.4, 0.5 * n + 1.3))
        for side, name, color, dy in (("a", a_name, COLORS[1], 0.15), ("b", b_name, COLORS[0], -0.15)):
            m = scale * comp[f"mean_{side}"].to_numpy()
            lo, hi = scale * comp[f"ci_{side}_low"].to_numpy(), scale * comp[f"ci_{side}_high"].to_numpy()
            ax.errorbar(m, y + dy, xerr=[m - lo, hi - m], fmt="o", color=color, capsize=3, ms=5,
                        label=f"{name} (n={int(comp[f'n_{side}'].max())} seeds)")
        right = scale * np.nanmax(comp[["ci_a_high", "ci_b_high", "mean_a", "mean_b"]].to_numpy())
        left = scale * np.nanmin(comp[["ci_a_low", "ci_b_low", "mean_a", "mean_b"]].to_numpy())
        span = max(right - left, 1e-9)
        for i, r in comp.iterrows():
            text = f"p={r['holm_p']:.2g}, g={r['hedges_g']:.1f}" if not np.isnan(r["holm_p"]) else "p=n/a"
            if r["significant"]:
                text = "* " + text
            ax.text(1.02, y[i], text, va="center", fontsize=8, transform=ax.get_yaxis_transform(),
                    fontweight="bold" if r["significant"] else "normal")
        ax.set_xlim(left - 0.05 * span, right + 0.05 * span)
        ax.set_yticks(y, comp["env"])
        ax.set_ylim(-0.6, n - 0.4)
        ax.set_xlabel(xlabel)
        ax.grid(axis="y", alpha=0)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8)
        ax.set_title(f"{CI_NOTE}; * Holm-corrected permutation p < {alpha:g} (p: Holm, g: Hedges' g of "
                     f"{a_name} - {b_name})", fontsize=8, pad=24)
        return save(fig, stem)


def gc_family_vs_w(cells: pd.DataFrame, stem: Path, flat: tuple[str, Sequence[str]],
                   hierarchical: tuple[str, Sequence[str]], envs: Sequence[str] | None = None, knob: str = "w",
                   value: str = "success", scale: float = 100.0, ylabel: str = "success rate (%)", ci: float = 0.95
                   ) -> list[Path]:
    """Goal-conditioned family vs w: one row of panels for the flat family and one for the hierarchical one
    (a family whose guided method has no cells is left out), one column per env.

    flat / hierarchical: (guided method, its unguided baselines drawn as horizontal levels with CI bands), e.g.
    analysis.paper_numbers.FIG4_FAMILIES.
    The guided method's w = 0 is flow BC and w = 1 flow GCBC (HGCBC for the hierarchical row).
    """
    families = [(name, fam) for name, fam in (("flat", flat), ("hierarchical", hierarchical))
                if (cells["method"] == fam[0]).any()]
    if not families:
        raise ValueError(f"no cells of {flat[0]!r} or {hierarchical[0]!r}")
    summary = summarize_by(cells, ["method", "env", knob], value, ci)
    envs = list(envs) if envs is not None else sorted(
        summary.loc[summary["method"].isin([f[1][0] for f in families]), "env"].unique())
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(families), len(envs), figsize=(3.3 * len(envs), 2.8 * len(families)),
                                 squeeze=False, sharex=True)
        for i, (fam_name, (guided, baselines)) in enumerate(families):
            handles = {}
            for j, env in enumerate(envs):
                ax = axes[i, j]
                g = summary[(summary["method"] == guided) & (summary["env"] == env)]
                if len(g):
                    _band(ax, g, knob, scale, COLORS[1], guided)
                for k, base in enumerate(baselines):
                    b = summary[(summary["method"] == base) & (summary["env"] == env)]
                    if b.empty:
                        continue
                    c = COLORS[(k + 2) % len(COLORS)]
                    row = b.iloc[0]
                    ax.axhline(scale * row["mean"], color=c, ls="--", label=base)
                    if np.isfinite(row["ci_low"]):  # no band for a single seed
                        ax.axhspan(scale * row["ci_low"], scale * row["ci_high"], color=c, alpha=0.12, lw=0)
                for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                    handles.setdefault(lab, h)
                if i == 0:
                    ax.set_title(env, fontsize=9)
                if i == len(families) - 1:
                    ax.set_xlabel("guidance weight w")
                ax.set_ylabel(f"{fam_name}\n{ylabel}" if j == 0 else "")
            axes[i, -1].legend(handles.values(), handles.keys(), fontsize=8, loc="upper left",
                               bbox_to_anchor=(1.02, 1.0))
        fig.suptitle(f"Goal-conditioned family vs w ({ci_note(ci)})\nw = 0: flow BC, w = 1: flow GCBC (flow HGCBC "
                     "in the hierarchical row); dashed: unguided baselines", fontsize=9)
        fig.tight_layout()
        return save(fig, stem)


def gradient_concentration(norms: np.ndarray, tops: Sequence[float] = (0.01, 0.1)) -> dict[str, float]:
    """Share of the total gradient mass carried by the largest-norm samples.

    norms: (n_samples,) per-sample actor-gradient norms (>= 0). Returns {"top1%": f, "top10%": f, ...}: the sum of
    the ceil(q n) largest norms over the sum of all norms (q n rounded up, at least one sample). Uniform norms
    give ~q; AWR's exponential weights concentrate mass, so its shares are larger than CFGRL's.
    """
    x = np.sort(np.abs(np.asarray(norms, dtype=float)))[::-1]
    if len(x) == 0 or x.sum() == 0:
        return {f"top{100 * q:g}%": np.nan for q in tops}
    total = x.sum()
    return {f"top{100 * q:g}%": float(x[: max(1, int(np.ceil(q * len(x))))].sum() / total) for q in tops}


def gradient_norms_plot(norms: dict[str, np.ndarray], stem: Path, tops: Sequence[float] = (0.01, 0.1)
                        ) -> list[Path]:
    """Fig. 2 style: per-sample actor-gradient-norm distributions (histogram on log-spaced bins, log x) and
    the concentration curve (share of total gradient mass vs share of samples, largest first, log x), with
    the top-1%/10% shares in the legend. norms: method -> (n_samples,) norms."""
    with plt.rc_context(STYLE):
        fig, (ax_h, ax_c) = plt.subplots(1, 2, figsize=(9.5, 3.4))
        positive = np.concatenate([np.asarray(v, float)[np.asarray(v, float) > 0] for v in norms.values()])
        if positive.size == 0:
            raise ValueError("no positive gradient norm to plot")
        bins = np.logspace(np.log10(positive.min()), np.log10(positive.max()), 50)
        for k, (method, v) in enumerate(norms.items()):
            c = COLORS[k % len(COLORS)]
            v = np.asarray(v, dtype=float)
            shares = gradient_concentration(v, tops)
            share_txt = ", ".join(f"{k_} {100 * s:.0f}%" for k_, s in shares.items())
            ax_h.hist(v[v > 0], bins=bins, histtype="step", lw=1.5, color=c, density=False,
                      weights=np.full((v > 0).sum(), 1 / len(v)), label=method)
            x = np.sort(np.abs(v))[::-1]
            frac = np.arange(1, len(x) + 1) / len(x)
            ax_c.plot(frac, np.cumsum(x) / x.sum(), color=c, lw=1.5, label=f"{method}: {share_txt}")
        even = np.logspace(-np.log10(max(len(v) for v in norms.values())), 0, 200)
        ax_c.plot(even, even, color="grey", ls=":", lw=1, label="equal norms")
        for q in tops:
            ax_c.axvline(q, color="grey", lw=0.6, alpha=0.6)
        ax_h.set_xscale("log")
        ax_h.set_xlabel("per-sample actor gradient norm")
        ax_h.set_ylabel("fraction of samples")
        ax_h.legend(fontsize=8)
        ax_c.set_xscale("log")
        ax_c.set_xlabel("fraction of samples (largest norms first)")
        ax_c.set_ylabel("fraction of total gradient mass")
        ax_c.set_ylim(0, 1.02)
        ax_c.legend(fontsize=7, loc="upper left")
        fig.suptitle("Per-sample actor gradient norms: how much of the update a few samples carry", fontsize=10)
        fig.tight_layout()
        return save(fig, stem)


def distance_vs_w(data: pd.DataFrame, stem: Path, value: str = "success", scale: float = 100.0,
                  ylabel: str = "success rate (%)", group: str | None = None, ci: float = 0.95) -> list[Path]:
    """Distance from the data vs w beside performance vs w, and performance against distance.

    data: one row per (seed, w[, group]) with columns w, distance (mean over dataset states of
    ||a_w - a_0||^2, pi_w's action vs pi_0's from the same noise), `value` and seed (if absent, each row counts
    as its own seed). group: optional column (e.g. "env") drawn as separate lines.
    """
    d = data.copy()
    if "seed" not in d.columns:
        d["seed"] = np.arange(len(d))
    keys = ([group] if group else []) + ["w"]
    dist = summarize_by(d, keys, "distance", ci)
    perf = summarize_by(d, keys, value, ci)
    groups = list(dist[group].unique()) if group else [None]
    with plt.rc_context(STYLE):
        fig, (ax_d, ax_p, ax_x) = plt.subplots(1, 3, figsize=(11, 3.3))
        for k, gname in enumerate(groups):
            c = COLORS[k % len(COLORS)]
            sd = dist if gname is None else dist[dist[group] == gname]
            sp = perf if gname is None else perf[perf[group] == gname]
            label = "CFGRL" if gname is None else str(gname)
            _band(ax_d, sd, "w", 1.0, c, label)
            _band(ax_p, sp, "w", scale, c, label)
            sd, sp = sd.sort_values("w"), sp.sort_values("w")
            ax_x.errorbar(sd["mean"], scale * sp["mean"],
                          xerr=[sd["mean"] - sd["ci_low"], sd["ci_high"] - sd["mean"]],
                          yerr=[scale * (sp["mean"] - sp["ci_low"]), scale * (sp["ci_high"] - sp["mean"])],
                          fmt="o-", color=c, capsize=2, ms=4, label=label)
            for w, x, yv in zip(sd["w"], sd["mean"], scale * sp["mean"], strict=True):
                ax_x.annotate(f"w={w_label(w)}", (x, yv), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax_d.set_xlabel("guidance w")
        ax_d.set_ylabel(r"mean $\|a_w - a_0\|^2$ on dataset states")
        ax_p.set_xlabel("guidance w")
        ax_p.set_ylabel(ylabel)
        ax_x.set_xlabel(r"mean $\|a_w - a_0\|^2$")
        ax_x.set_ylabel(ylabel)
        ax_d.set_title("distance from the behaviour policy", fontsize=9)
        ax_p.set_title("performance", fontsize=9)
        ax_x.set_title("trade-off", fontsize=9)
        if group:
            ax_p.legend(fontsize=8)
        fig.suptitle(f"How far guidance moves the policy from the data ({ci_note(ci)})", fontsize=10)
        fig.tight_layout()
        return save(fig, stem)


def performance_vs_divergence(curves: pd.DataFrame, stem: Path, value: str = "return", scale: float = 1.0,
                              ylabel: str = "return", xlabel: str = r"mean $\|a - a_{data}\|^2$ on held-out states",
                              ncols: int = 3, ci: float = 0.95) -> list[Path]:
    """Performance against divergence, one panel per env, one curve per method: CFGRL over its w grid, AWR over
    its temperatures, any other method a single point. The trade-off at equal divergence, measured.

    curves: one row per (env, curve, setting, seed) with columns env, curve (the line's name), setting (w or T,
    annotated at each point), seed, divergence and `value`. Points are seed means with Student-t CIs over seeds
    in both directions.
    """
    envs = sorted(curves["env"].unique())
    div = summarize_by(curves, ["env", "curve", "setting"], "divergence", ci)
    perf = summarize_by(curves, ["env", "curve", "setting"], value, ci)
    names = sorted(curves["curve"].unique())
    nrows, cols = _grid(len(envs), ncols)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, cols, figsize=(3.8 * cols, 3.2 * nrows), squeeze=False)
        for k, ax in enumerate(axes.flat):
            if k >= len(envs):
                ax.set_visible(False)
                continue
            env = envs[k]
            for j, name in enumerate(names):
                d = div[(div["env"] == env) & (div["curve"] == name)].sort_values("setting")
                p = perf[(perf["env"] == env) & (perf["curve"] == name)].sort_values("setting")
                if d.empty:
                    continue
                color = COLORS[j % len(COLORS)]
                ax.errorbar(d["mean"], scale * p["mean"].to_numpy(),
                            xerr=np.nan_to_num([d["mean"] - d["ci_low"], d["ci_high"] - d["mean"]]),
                            yerr=np.nan_to_num([scale * (p["mean"] - p["ci_low"]).to_numpy(),
                                                scale * (p["ci_high"] - p["mean"]).to_numpy()]),
                            fmt="o-", color=color, capsize=2, ms=4, label=name)
                for setting, x, y in zip(d["setting"], d["mean"], scale * p["mean"], strict=True):
                    if np.isfinite(setting):
                        ax.annotate(f"{setting:g}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7,
                                    color=color)
            ax.set_title(env, fontsize=9, loc="left")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel if k % cols == 0 else "")
        axes.flat[0].legend(fontsize=7)
        fig.suptitle(f"Performance vs divergence (labels: w or T; {ci_note(ci)})", fontsize=10)
        fig.tight_layout()
        return save(fig, stem)


def aggregate_plot(iqm: pd.DataFrame, stem: Path, poi: pd.DataFrame | None = None,
                   profiles: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None,
                   taus: np.ndarray | None = None, scale: float = 100.0, xlabel: str = "IQM success rate (%)",
                   colors: dict[str, str] | None = None) -> list[Path]:
    """Aggregate view across envs: IQM per method with its stratified bootstrap CI; probability of
    improvement per pair with CI (0.5 = no difference); optionally performance profiles.

    iqm: analysis.aggregate.iqm_ci output (method, estimate, ci_low, ci_high). poi: probability_of_improvement
    output (x, y, poi, ci_low, ci_high). profiles: performance_profiles output for `taus` (n_taus,).
    colors: method -> colour (default: COLORS in row order; the report passes analysis.figures.role_colors).
    """
    from analysis.aggregate import rliable_modules

    panels = 1 + (poi is not None) + (profiles is not None)
    methods = list(iqm["method"])
    colors = colors or {m: COLORS[k % len(COLORS)] for k, m in enumerate(methods)}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, max(2.4, 0.45 * len(methods) + 1.4)),
                                 squeeze=False)
        axes = list(axes[0])
        ax = axes.pop(0)
        y = np.arange(len(methods))[::-1]
        for yi, r in zip(y, iqm.itertuples(), strict=True):
            ax.plot([scale * r.ci_low, scale * r.ci_high], [yi, yi], color=colors[r.method], lw=6, alpha=0.45,
                    solid_capstyle="butt")
            ax.plot(scale * r.estimate, yi, "|", color="k", ms=14, mew=2)
        ax.set_yticks(y, [f"{m} ({n} seeds)" for m, n in zip(methods, iqm["n_seeds"], strict=True)])
        ax.set_ylim(-0.7, len(methods) - 0.3)
        ax.set_xlabel(xlabel)
        ax.set_title("IQM, 95% stratified bootstrap CI", fontsize=9)
        if poi is not None:
            ax = axes.pop(0)
            yp = np.arange(len(poi))[::-1]
            for yi, r in zip(yp, poi.itertuples(), strict=True):
                ax.plot([r.ci_low, r.ci_high], [yi, yi], color=colors.get(r.x, COLORS[0]), lw=6, alpha=0.45,
                        solid_capstyle="butt")
                ax.plot(r.poi, yi, "|", color="k", ms=14, mew=2)
            ax.axvline(0.5, color="grey", ls="--", lw=1)
            ax.set_yticks(yp, [f"P({r.x} > {r.y})" for r in poi.itertuples()])
            ax.set_ylim(-0.7, len(poi) - 0.3)
            ax.set_xlim(min(0.0, poi["ci_low"].min()), max(1.0, poi["ci_high"].max()))
            ax.set_xlabel("probability of improvement")
            ax.set_title("P(X > Y), 95% CI (0.5: no difference)", fontsize=9)
        if profiles is not None:
            if taus is None:
                raise ValueError("profiles need their taus")
            _, _, plot_utils = rliable_modules()
            ax = axes.pop(0)
            point, cis = profiles
            plot_utils.plot_performance_profiles(point, np.asarray(taus) * scale, performance_profile_cis=cis,
                                                 ax=ax, colors={m: colors.get(m, COLORS[0]) for m in point},
                                                 xlabel=r"score threshold $\tau$",
                                                 ylabel=r"fraction of seed x env scores > $\tau$",
                                                 labelsize="medium", ticklabelsize="medium", wrect=0, hrect=0)
            for side in ("left", "bottom"):  # back to this suite's axis style
                ax.spines[side].set_linewidth(plt.rcParams["axes.linewidth"])
            ax.tick_params(length=3.5, width=0.8)
            ax.legend(fontsize=8, loc="lower left")
            ax.set_title("performance profiles, 95% CI", fontsize=9)
        fig.tight_layout()
        return save(fig, stem)


def performance_vs_step(cells: pd.DataFrame, stem: Path, value: str = "success", scale: float = 100.0,
                        ylabel: str = "success rate (%)", ci: float = 0.95) -> list[Path]:
    """Performance vs training step (the paper's learning curves): one panel per method entry, one line per w
    (mean and Student-t CI over seeds, episodes averaged within a seed). cells: one env's rows with columns
    method, seed, w, step and `value`, snapshots and final models together."""
    methods = sorted(cells["method"].unique())
    nrows, ncols = _grid(len(methods), 3)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
        for ax, method in zip(axes.flat, methods, strict=False):
            sub = cells[cells["method"] == method]
            ws = sorted(sub["w"].dropna().unique()) or [np.nan]
            for k, w in enumerate(ws):
                rows = sub if np.isnan(w) else sub[sub["w"] == w]
                s = summarize_by(rows, ["step"], value, ci)
                _band(ax, s, "step", scale, COLORS[k % len(COLORS)], "" if np.isnan(w) else f"w={w_label(w)}")
            ax.set_title(method)
            ax.set_xlabel("training step")
            ax.set_ylabel(ylabel)
            if len(ws) > 1:
                ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(methods):]:
            ax.axis("off")
        fig.suptitle(f"performance vs training step ({ci_note(ci)})", fontsize=10)
        fig.tight_layout()
        return save(fig, stem)


def training_curves(curves: pd.DataFrame, stem: Path, ci: float = 0.95) -> list[Path]:
    """Loss components vs training step, mean and Student-t band over seeds: one panel per component (training
    and, where logged, validation `val/...` lines together), one colour per method entry.
    curves: long table with columns method, seed, step, metric, value (one env)."""
    components = sorted(m for m in curves["metric"].unique() if not m.startswith("val/"))
    methods = sorted(curves["method"].unique())
    nrows, ncols = _grid(len(components), 3)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.0 * nrows), squeeze=False)
        for ax, comp in zip(axes.flat, components, strict=False):
            for k, method in enumerate(methods):
                color = COLORS[k % len(COLORS)]
                for metric, style in ((comp, "-"), (f"val/{comp}", "--")):
                    rows = curves[(curves["method"] == method) & (curves["metric"] == metric)]
                    if rows.empty:
                        continue
                    s = summarize_by(rows, ["step"], "value", ci).sort_values("step")
                    label = method + (" (validation)" if metric.startswith("val/") else "")
                    ax.plot(s["step"], s["mean"], style, color=color, label=label, lw=1.2)
                    ax.fill_between(s["step"], s["ci_low"], s["ci_high"], color=color, alpha=0.15, lw=0)
            ax.set_title(comp, fontsize=9)
            ax.set_xlabel("training step")
        for ax in list(axes.flat)[len(components):]:
            ax.axis("off")
        if components:
            axes.flat[0].legend(fontsize=7)
        fig.suptitle(f"training curves ({ci_note(ci)}; dashed: held-out validation batches)", fontsize=10)
        fig.tight_layout()
        return save(fig, stem)
