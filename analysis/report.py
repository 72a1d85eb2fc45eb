"""results/<spec>/report.md: protocol, tables with CIs, paired w comparisons and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.figures import success_vs_w
from analysis.stats import paired_differences, summarize
from cfgrl.io import atomic_write_text
from cfgrl.methods import method_class
from cfgrl.provenance import code_version
from cfgrl.spec import method_config


def pct(x: float) -> str:
    """A success fraction as a percentage with one decimal (the report's number format)."""
    return "—" if x is None or np.isnan(x) else f"{100 * x:.1f}"


def w_text(w: float) -> str:
    return "—" if np.isnan(w) else f"{w:g}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _protocol(spec: dict[str, Any], cells: pd.DataFrame) -> str:
    lines = [f"- Spec: `{spec['_path']}` (hash `{spec['_hash']}`), code `{code_version()}`.",
             f"- Seeds: {spec['seeds']} (the unit of replication: episodes are averaged within a seed first, "
             f"then mean, std and a {int(100 * spec['analysis']['ci'])}% percentile bootstrap CI "
             f"({spec['analysis']['bootstrap_resamples']} resamples) are taken over seeds)."]
    for env, env_spec in spec["envs"].items():
        d, e = env_spec["data"], env_spec["eval"]
        src = ("generated offline with OGBench's environment and oracle "
               f"({d['episodes']} episodes, noise {d['noise']}, seed {d['seed']})") if d["source"] == "generate" \
            else d["source"]
        lines.append(f"- `{env}`: data {src}; evaluation on tasks {e['tasks']} x {e['episodes_per_task']} "
                     f"episodes per cell, episode seeds from eval seed {spec['eval']['seed']} and the training "
                     "seed (the same episodes for every method and w of a seed).")
    for method, entry in spec["methods"].items():
        cfg = method_config(spec, method)
        budget = f"{cfg.steps} updates, batch {cfg.batch_size}, lr {cfg.lr}"
        if hasattr(cfg, "hidden"):
            budget += f", MLP {'x'.join(map(str, cfg.hidden))}"
        if method_class(method).guided:
            budget += f", {cfg.flow_steps} flow steps; w grid {entry['w']}"
        lines.append(f"- `{method}`: {budget}.")
    lines.append("- Selection rule: none; every w of the grid is reported (no w is picked on these episodes).")
    return "\n".join(lines)


def write_report(spec: dict[str, Any], cells_path: str | Path, outdir: str | Path) -> Path:
    """Compute statistics from the cells table, draw figures, write stats.csv and report.md into outdir."""
    outdir = Path(outdir)
    cells = pd.read_csv(cells_path)
    a = spec["analysis"]
    summary = summarize(cells, a["ci"], a["bootstrap_resamples"], a["bootstrap_seed"])
    atomic_write_text(outdir / "stats.csv", summary.to_csv(index=False))

    parts = [f"# Report: {spec['name']}", "", "## Protocol", "", _protocol(spec, cells), ""]
    ci_pct = int(100 * a["ci"])
    for env in sorted(cells["env"].unique()):
        sub = summary[summary["env"] == env]
        rows = [[r.method, w_text(r.w), str(r.n_seeds), pct(r.mean), pct(r.std),
                 f"[{pct(r.ci_low)}, {pct(r.ci_high)}]"] for r in sub.itertuples()]
        parts += [f"## {env}", "", "Success rate (%), mean over seeds of the per-seed mean over episodes.", "",
                  _table(["method", "w", "seeds", "success", "std", f"{ci_pct}% CI"], rows), ""]
        for method in sorted(sub["method"].unique()):
            if not method_class(method).guided or 1.0 not in set(sub[sub["method"] == method]["w"]):
                continue
            diffs = paired_differences(cells[cells["env"] == env], method, 1.0, a["ci"], a["bootstrap_resamples"],
                                       a["bootstrap_seed"])
            rows = [[w_text(r.w), pct(r.mean_diff), f"[{pct(r.ci_low)}, {pct(r.ci_high)}]",
                     f"{r.seeds_better}/{r.seeds_worse}/{r.n_seeds}"] for r in diffs.itertuples()]
            parts += [f"Paired on checkpoints: `{method}` success(w) - success(w = 1), percentage points.", "",
                      _table(["w", "difference", f"{ci_pct}% CI", "seeds better/worse/all"], rows), ""]
        stem = outdir / "figures" / f"success_vs_w_{env}"
        success_vs_w(summary, env, stem)
        parts += [f"![success vs w on {env}](figures/{stem.name}.png)", ""]
    parts += ["Files: `cells.csv` (one row per cell), `stats.csv` (the table above), `figures/` (PNG and PDF).", ""]
    path = outdir / "report.md"
    atomic_write_text(path, "\n".join(parts))
    return path
