"""Tables in the paper's layout: rows = envs, columns = methods; each method shows our mean ± std over seeds,
its Student-t CI over seeds (analysis.stats.mean_ci) and the paper's number beside ours; the notes line gives
the number of seeds n.

Rules, as in the paper: a cell is bold when its mean is >= 95% of the best mean in its row (ours and the paper's
numbers are bolded separately, each among its own). A '*' follows the better method of a compared pair when
the exact permutation test of the difference in means, Holm-corrected across the table's envs, gives
p < alpha (analysis.significance).

`results_table` computes the numbers (a long DataFrame, one row per env and column); `to_markdown` and
`to_latex` only format it, so both show the same numbers. All pure functions: DataFrames in, strings out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.paper_numbers import paper_key, reference_table
from analysis.selection import ALL, rows_for
from analysis.significance import compare_rows
from analysis.stats import mean_ci, seed_std

BOLD_FRACTION = 0.95
TABLE_COLUMNS = ["env", "label", "n_seeds", "mean", "std", "ci_low", "ci_high", "paper_mean", "paper_std",
                 "paper_approximate", "bold", "paper_bold", "mark", "holm_p"]


def bold_mask(means: Sequence[float], fraction: float = BOLD_FRACTION) -> np.ndarray:
    """The paper's rule: bold where mean >= fraction * best of the row. means (k,) -> bool (k,); NaN never bold.

    With a best <= 0 (e.g. all zero) only the entries equal to the best are bold.
    """
    m = np.asarray(means, dtype=float)
    out = np.zeros(len(m), dtype=bool)
    if np.all(np.isnan(m)):
        return out
    best = np.nanmax(m)
    ok = ~np.isnan(m)
    out[ok] = m[ok] >= fraction * best if best > 0 else m[ok] == best
    return out


def results_table(cells: pd.DataFrame, columns: dict[str, Any], value: str = "success", knob: str = "w",
                  envs: Sequence[str] | None = None, paper: dict[str, str] | None = None,
                  paper_table: str | None = None, comparisons: Sequence[tuple[str, str]] = (), alpha: float = 0.05,
                  ci: float = 0.95) -> pd.DataFrame:
    """The numbers of one table, long format: one row per (env, column label), TABLE_COLUMNS.

    cells: the cells table (per-seed `value`). columns: label -> method (all its rows, already one per env and
    seed, e.g. from select_reported) or label -> (method, setting) with setting as in analysis.selection.rows_for
    (e.g. {"AWR": ("awr", None), "CFGRL": ("cfgrl", 3.0)}). paper: label -> the paper's method name in
    analysis.paper_numbers (e.g. {"AWR": "AWR"}), looked up in paper_table ("1", "2", "3-flat", "3-hier").
    comparisons: pairs of labels; the better one's `mark` is "*" on envs where the Holm-corrected exact
    permutation p < alpha (holm_p holds that p on both cells of the pair; with several pairs per label, the
    smallest). Values are as in `cells` (fractions for success); paper numbers are in the paper's unit (use
    `scale` when formatting). CIs: Student-t over seeds; std and CI are NaN (printed "—") for a single seed.
    """
    selected = {}
    for label, spec in columns.items():
        method, setting = (spec, ALL) if isinstance(spec, str) else spec
        selected[label] = rows_for(cells, method, setting, knob)
    if envs is None:
        envs = sorted(set().union(*[set(r["env"]) for r in selected.values()]))
    ref = reference_table()
    if paper_table is not None:
        ref = ref[ref["table"] == paper_table]
    rows = []
    for env in envs:
        for label, r in selected.items():
            x = r[r["env"] == env].sort_values("seed")[value].to_numpy(dtype=float)
            lo, hi = mean_ci(x, ci)
            pm = ps = np.nan
            approx = False
            if paper and label in paper:
                hit = ref[(ref["paper_key"] == paper_key(env)) & (ref["method"] == paper[label])]
                if len(hit):
                    pm, ps, approx = float(hit["mean"].iloc[0]), float(hit["std"].iloc[0]), bool(
                        hit["approximate"].iloc[0])
            rows.append({"env": env, "label": label, "n_seeds": len(x), "mean": float(x.mean()) if len(x) else np.nan,
                         "std": seed_std(x),
                         "ci_low": lo, "ci_high": hi, "paper_mean": pm, "paper_std": ps, "paper_approximate": approx,
                         "bold": False, "paper_bold": False, "mark": "", "holm_p": np.nan})
    out = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    for _, idx in out.groupby("env", sort=False).groups.items():
        out.loc[idx, "bold"] = bold_mask(out.loc[idx, "mean"])
        out.loc[idx, "paper_bold"] = bold_mask(out.loc[idx, "paper_mean"])
    for la, lb in comparisons:
        comp = compare_rows(selected[la], selected[lb], la, lb, value, alpha, ci, list(envs))
        for c in comp.itertuples():
            for label in (la, lb):
                i = out.index[(out["env"] == c.env) & (out["label"] == label)]
                out.loc[i, "holm_p"] = np.fmin(out.loc[i, "holm_p"], c.holm_p)
            if c.significant:
                winner = la if c.diff > 0 else lb
                i = out.index[(out["env"] == c.env) & (out["label"] == winner)]
                out.loc[i, "mark"] = "*"
    return out


def _num(x: float, digits: int) -> str:
    return "—" if x is None or np.isnan(x) else f"{x:.{digits}f}"


def _cells_text(t: pd.DataFrame, scale: float, digits: int, paper_digits: int, latex: bool
                ) -> tuple[list[str], list[list[str]]]:
    labels = list(dict.fromkeys(t["label"]))
    has_paper = t["paper_mean"].notna().any()
    pm = r"$\pm$" if latex else "±"
    rows = []
    for env in dict.fromkeys(t["env"]):
        row = [latex_escape(env) if latex else env]
        for label in labels:
            c = t[(t["env"] == env) & (t["label"] == label)].iloc[0]
            ours = f"{_num(scale * c['mean'], digits)} {pm} {_num(scale * c['std'], digits)}"
            if np.isnan(c["mean"]):
                ours = "—"
            elif c["bold"]:
                ours = rf"\textbf{{{ours}}}" if latex else f"**{ours}**"
            if c["mark"]:
                ours += "$^{*}$" if latex else r"\*"
            ci = "—" if np.isnan(c["ci_low"]) else \
                f"[{_num(scale * c['ci_low'], digits)}, {_num(scale * c['ci_high'], digits)}]"
            row += [ours, ci]
            if has_paper:
                if np.isnan(c["paper_mean"]):
                    paper = "—"
                else:
                    paper = _num(c["paper_mean"], paper_digits)
                    if not np.isnan(c["paper_std"]):
                        paper += f" {pm} {_num(c['paper_std'], paper_digits)}"
                    if c["paper_approximate"]:
                        paper = (r"$\approx$" if latex else "≈") + paper
                    if c["paper_bold"]:
                        paper = rf"\textbf{{{paper}}}" if latex else f"**{paper}**"
                row.append(paper)
        rows.append(row)
    return labels, rows


def _notes(t: pd.DataFrame, unit: str, ci: float, alpha: float, star: str) -> str:
    n = sorted(set(int(v) for v in t["n_seeds"] if v > 0)) or [0]
    seeds = ", ".join(map(str, n))
    text = (f"{unit}: mean ± std over seeds (n = {seeds}; episodes averaged within each seed), "
            f"{int(round(100 * ci))}% Student-t CI over seeds (undefined for a single seed). "
            f"Bold: within {int(100 * BOLD_FRACTION)}% of the row's best (ours and the paper's separately).")
    if (t["holm_p"].notna()).any():
        text += (f" {star}: the better of a compared pair, exact permutation test of the difference in means "
                 f"over seeds, Holm-corrected across the table's envs, p < {alpha:g}.")
    if t["paper_approximate"].any():
        text += " ≈: paper number from third-party notes (approximate)."
    return text


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table of already formatted cells: header (n_columns,), rows (n_rows, n_columns)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(table: pd.DataFrame, scale: float = 100.0, digits: int = 1, paper_digits: int = 0,
                unit: str = "success rate (%)", ci: float = 0.95, alpha: float = 0.05) -> str:
    """A results_table as a Markdown table plus a notes line. scale multiplies our values (100: fraction -> %);
    the paper's numbers are printed as stored (already in the paper's unit)."""
    labels, rows = _cells_text(table, scale, digits, paper_digits, latex=False)
    has_paper = table["paper_mean"].notna().any()
    ci_head = f"{int(round(100 * ci))}% CI"
    header = ["env"]
    for label in labels:
        header += [label, f"{label} {ci_head}"] + ([f"{label} (paper)"] if has_paper else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n\n" + _notes(table, unit, ci, alpha, r"\*") + "\n"


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text (env names, labels, notes)."""
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in text)


def to_latex(table: pd.DataFrame, scale: float = 100.0, digits: int = 1, paper_digits: int = 0,
             unit: str = "success rate (%)", ci: float = 0.95, alpha: float = 0.05, caption: str = "",
             label: str = "") -> str:
    """A results_table as a LaTeX table (booktabs: \\toprule, \\midrule, \\cmidrule; needs \\usepackage{booktabs}).

    Per method a group of columns: ours (mean $\\pm$ std), the CI, and the paper's number when there is one.
    """
    labels, rows = _cells_text(table, scale, digits, paper_digits, latex=True)
    rows = [[c.replace("—", "--") for c in r] for r in rows]
    has_paper = table["paper_mean"].notna().any()
    per = 3 if has_paper else 2
    ci_head = f"{int(round(100 * ci))}\\% CI"
    lines = [r"\begin{table}[t]", r"\centering", r"\small", r"\begin{tabular}{l" + "r" * (per * len(labels)) + "}",
             r"\toprule"]
    groups = ["env"] + [rf"\multicolumn{{{per}}}{{c}}{{{latex_escape(lab)}}}" for lab in labels]
    lines.append(" & ".join(groups) + r" \\")
    lines.append(" ".join(rf"\cmidrule(lr){{{2 + k * per}-{1 + (k + 1) * per}}}" for k in range(len(labels))))
    sub = [""]
    for _ in labels:
        sub += ["ours", ci_head] + (["paper"] if has_paper else [])
    lines.append(" & ".join(sub) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(r) + r" \\" for r in rows]
    lines.append(r"\bottomrule")
    lines.append(r"\end{tabular}")
    notes = latex_escape(_notes(table, unit, ci, alpha, "STAR")).replace("±", r"$\pm$").replace("≈", r"$\approx$")
    notes = notes.replace("STAR", r"$^{*}$").replace(" < ", " $<$ ")
    head = latex_escape(caption.rstrip(".")) + ". " if caption else ""
    lines.append(rf"\caption{{{head}{notes}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
