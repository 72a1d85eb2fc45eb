"""Figures in one style (matplotlib; PNG and PDF unless a report asks for other formats)."""

from __future__ import annotations

import contextlib
import contextvars
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cfgrl.io import atomic_write

STYLE = {"figure.dpi": 120, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
         "axes.spines.right": False, "font.size": 10, "legend.frameon": False}
_FORMATS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("figure_formats", default=("png", "pdf"))
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def role_colors(guided: list[str], unguided: list[str]) -> dict[str, str]:
    """One colour convention for every figure: guided methods (the CFGRL family) in red first, then purple and
    brown; unguided baselines in blue first, then green, orange, cyan. Past those, every further method takes a
    colour no other method of the figure has (tab10's unused pink, grey and olive first, then tab20's and tab20b's
    lighter ones: 40 methods before one repeats)."""
    warm, cool = COLORS[1::2], COLORS[0::2]
    others = dict.fromkeys(c for name in ("tab10", "tab20", "tab20b") for c in _hex_colors(name) if c not in COLORS)
    spare = itertools.cycle(others)
    out = {m: warm[k] if k < len(warm) else next(spare) for k, m in enumerate(guided)}
    out.update({m: cool[k] if k < len(cool) else next(spare) for k, m in enumerate(unguided)})
    return out


def _hex_colors(colormap: str) -> list[str]:
    return [mcolors.to_hex(c) for c in plt.get_cmap(colormap).colors]


@contextlib.contextmanager
def figure_formats(formats: Sequence[str]) -> Iterator[None]:
    """Within the block, save() writes each figure as these file types (e.g. ("png",): no PDFs)."""
    token = _FORMATS.set(tuple(formats))
    try:
        yield
    finally:
        _FORMATS.reset(token)


def save(fig: plt.Figure, stem: Path) -> list[Path]:
    """Write stem.png and stem.pdf (or the formats of an enclosing figure_formats block), each atomically (a killed
    report leaves no half-written figure); return the paths."""
    paths = [stem.with_suffix(f".{fmt}") for fmt in _FORMATS.get()]
    for p in paths:
        atomic_write(p, lambda f, fmt=p.suffix[1:]: fig.savefig(f, format=fmt, bbox_inches="tight"))
    plt.close(fig)
    return paths


def success_vs_w(summary: pd.DataFrame, env: str, stem: Path, ylabel: str = "success rate (%)",
                 scale: float = 100.0, w1: str = "flow GCBC", ci: float = 0.95) -> list[Path]:
    """Guided methods as lines over w with CI bands; unguided methods as horizontal levels with bands.

    summary: rows of analysis.stats.summarize (mean, ci_low, ci_high: Student-t interval over seeds at level
    `ci`), plotted times `scale`; no band where the interval is NaN (one seed). w1: what w = 1 is
    (goal-conditioned: flow GCBC; offline RL: the optimality-conditioned policy).
    """
    sub = summary[summary["env"] == env]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.2, 3.4))
        guided = sub[sub["w"].notna()]
        unguided = sub[sub["w"].isna()]
        ws = np.sort(guided["w"].unique()) if len(guided) else np.array([0.0, 1.0])
        colors = role_colors(sorted(guided["method"].unique()), list(unguided["method"]))
        for method, g in guided.groupby("method"):
            g = g.sort_values("w")
            c = colors[method]
            ax.plot(g["w"], scale * g["mean"], "o-", color=c, label=f"{method} (n={g['n_seeds'].max()} seeds)")
            ax.fill_between(g["w"], scale * g["ci_low"], scale * g["ci_high"], color=c, alpha=0.2)
        for row in unguided.itertuples():
            c = colors[row.method]
            ax.axhline(scale * row.mean, color=c, ls="--", label=f"{row.method} (n={row.n_seeds} seeds)")
            if np.isfinite(row.ci_low):
                ax.axhspan(scale * row.ci_low, scale * row.ci_high, color=c, alpha=0.12)
        ax.set_xlim(ws.min() - 0.1, ws.max() + 0.1)
        ax.set_xlabel(f"guidance weight w  (w=0: flow BC, w=1: {w1})")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{env}: mean and {int(round(100 * ci))}% Student-t CI over seeds", fontsize=9)
        ax.legend(fontsize=8, loc="best")
        return save(fig, stem)
