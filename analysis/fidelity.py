"""The suite beside the reference on one data file: mean performance by w, and the paired w = a minus w = b
difference with its Student-t interval over seeds (docs/fidelity.md's tables).

    python -m analysis.fidelity \\
        --suite results/fidelity-pointmaze/eval/test/gc_cfgrl_40k/pointmaze-medium-navigate-v0 \\
        --reference 'refgc/flowgcbc_40000_s*.json' --metric success

Suite side: the cell files `seed<k>/w<w>.json` of one method and env (`wnone.json` for an unguided method).
`--metric kl_to_w0` (or distance_to_w0, data_distance) tabulates a cell's divergence from the w = 0 policy instead.
Reference side: the JSON files of ../shared/reference's drivers, one per seed: run_gc.py writes
{"w": {w: {"success": ...}}}, run_exorl.py {"return": {w: ...}}, bench/reference/run_exorl_awr.py {"return": x}.
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.stats import mean_ci, welch_diff_ci

# per-cell quantities (the divergences from the w = 0 policy on held-out states), not averaged over episodes
CELL_METRICS = ("distance_to_w0", "kl_to_w0", "data_distance")


def suite_runs(folder: str | Path, metric: str) -> pd.DataFrame:
    """(seed x w) table of the per-seed mean `metric` (an episode field, or one of CELL_METRICS) from a method's
    cell files; w NaN for an unguided method."""
    rows = []
    for path in sorted(Path(folder).glob("seed*/w*.json")):
        cell = json.loads(path.read_text())
        value = cell[metric] if metric in CELL_METRICS else np.mean([e[metric] for e in cell["episodes"]])
        rows.append({"seed": int(cell["seed"]), "w": np.nan if cell["w"] is None else float(cell["w"]),
                     "value": float(value)})
    if not rows:
        raise FileNotFoundError(f"no cell files under {folder}")
    return pd.DataFrame(rows).pivot(index="seed", columns="w", values="value")


def reference_runs(pattern: str, metric: str) -> pd.DataFrame:
    """(seed x w) table from the reference drivers' JSON files matching `pattern`."""
    rows = []
    for path in sorted(glob.glob(pattern)):
        run = json.loads(Path(path).read_text())
        if "w" in run and isinstance(run["w"], dict):
            by_w = {float(w): v[metric] for w, v in run["w"].items()}
        elif isinstance(run.get(metric), dict):
            by_w = {float(w): v for w, v in run[metric].items()}
        else:
            by_w = {np.nan: run[metric]}
        rows += [{"seed": int(run["seed"]), "w": w, "value": float(v)} for w, v in by_w.items()]
    if not rows:
        raise FileNotFoundError(f"no reference files match {pattern}")
    return pd.DataFrame(rows).pivot(index="seed", columns="w", values="value")


def seed_gains(table: pd.DataFrame, a: float, b: float) -> np.ndarray:
    """(n,) per-seed (w = a) - (w = b) over the seeds that have both; empty where a column is missing."""
    if a not in table.columns or b not in table.columns:
        return np.array([])
    both = table[[a, b]].dropna()
    return both[a].to_numpy() - both[b].to_numpy()


def paired(table: pd.DataFrame, a: float, b: float, ci: float = 0.95) -> dict[str, float]:
    """Mean over seeds of (w = a) - (w = b), its Student-t CI, and how many seeds have a > b."""
    diff = seed_gains(table, a, b)
    if not len(diff):
        return {"mean": np.nan, "ci_low": np.nan, "ci_high": np.nan, "better": 0, "n": 0}
    lo, hi = mean_ci(diff, ci)
    return {"mean": float(diff.mean()), "ci_low": float(lo), "ci_high": float(hi), "better": int((diff > 0).sum()),
            "n": len(diff)}


def _with_interval(mean: float, lo: float, hi: float, scale: float, sign: str = "", digits: int = 1) -> str:
    """'m [lo, hi]', or 'm' alone where one seed gives no interval."""
    text = f"{scale * mean:{sign}.{digits}f}"
    return text if not np.isfinite(lo) else f"{text} [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"


def markdown(tables: dict[str, pd.DataFrame], a: float = 1.5, b: float = 1.0, scale: float = 1.0,
             ci: float = 0.95, digits: int = 1) -> str:
    """One row per source: mean [CI] by w, and the paired a - b difference."""
    ws = sorted({w for t in tables.values() for w in t.columns if np.isfinite(w)})
    guided = bool(ws)
    head = ["source", "seeds"] + ([f"w = {w:g}" for w in ws] + [f"paired w = {a:g} minus w = {b:g} [CI]"]
                                  if guided else ["mean [CI]"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, t in tables.items():
        cols = ws if guided else list(t.columns)
        cells = []
        for w in cols:
            x = t[w].dropna().to_numpy() if w in t.columns else np.array([])
            lo, hi = mean_ci(x, ci) if len(x) > 1 else (np.nan, np.nan)
            cells.append(_with_interval(x.mean(), lo, hi, scale, digits=digits) if len(x) else "")
        if guided:
            p = paired(t, a, b, ci)
            cells.append(_with_interval(p["mean"], p["ci_low"], p["ci_high"], scale, "+", digits)
                         + f" ({p['better']} of {p['n']} seeds better)")
        lines.append("| " + " | ".join([name, str(len(t))] + cells) + " |")
    if guided and len(tables) == 2:
        lines += ["", gain_difference(*tables.items(), a=a, b=b, scale=scale, ci=ci, digits=digits)]
    return "\n".join(lines)


def gain_difference(first: tuple[str, pd.DataFrame], second: tuple[str, pd.DataFrame], a: float, b: float,
                    scale: float = 1.0, ci: float = 0.95, digits: int = 1) -> str:
    """The two sources' paired gains (w = a minus w = b per seed) compared: difference of means, Welch CI."""
    gains = [seed_gains(t, a, b) for _, t in (first, second)]
    if min(len(g) for g in gains) < 2:
        return f"Gain of w = {a:g} over w = {b:g}, {first[0]} minus {second[0]}: needs 2+ seeds on each side."
    lo, hi = welch_diff_ci(gains[0], gains[1], ci)
    text = _with_interval(gains[0].mean() - gains[1].mean(), lo, hi, scale, "+", digits)
    return (f"Gain of w = {a:g} over w = {b:g}, {first[0]} minus {second[0]}: {text} "
            f"({100 * ci:g}% Welch interval; n = {len(gains[0])} and {len(gains[1])} seeds).")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", action="append", default=[], help="a method/env cell folder (repeatable)")
    parser.add_argument("--reference", action="append", default=[], help="a glob of reference JSONs (repeatable)")
    parser.add_argument("--metric", default="success", choices=["success", "return", *CELL_METRICS],
                        help="an episode field, or a cell's divergence from w = 0 (suite files only)")
    parser.add_argument("--a", type=float, default=1.5)
    parser.add_argument("--b", type=float, default=1.0)
    args = parser.parse_args(argv)
    tables = {f"suite `{Path(s).parent.name}`": suite_runs(s, args.metric) for s in args.suite}
    tables |= {f"reference `{Path(r).name}`": reference_runs(r, args.metric) for r in args.reference}
    print(markdown(tables, args.a, args.b, 100.0 if args.metric == "success" else 1.0,
                   digits=3 if args.metric in CELL_METRICS else 1))


if __name__ == "__main__":
    main()
