"""The paper's reference numbers as data (Frans et al. 2025, arXiv 2505.23458), transcribed from
shared/docs/paper.md section 3.

Env ids (the suite's naming scheme):
- ExORL (Table 1): "<domain>-<task>" with the dm_control task name's underscores as hyphens:
  walker-stand, walker-walk, walker-run, quadruped-walk, quadruped-run, cheetah-run, cheetah-run-backward,
  jaco-reach-top-right, jaco-reach-top-left. Unit: episode return (max 1000), 4 seeds, "±" = std.
- OGBench single-task (Table 2): the OGBench environment name with the single-task suffix (the default task),
  "<name>-singletask-v0", e.g. pointmaze-large-navigate-singletask-v0. Unit: success rate in %, 4 seeds.
- OGBench goal-conditioned (Table 3): "<name>-oraclerep-v0" (goal = OGBench's oracle goal representation), with
  the dataset's full name, e.g. antmaze-medium-navigate-oraclerep-v0, cube-double-play-oraclerep-v0,
  visual-cube-single-play-oraclerep-v0. Unit: success rate in %; means only. APPROXIMATE: these cells come from
  third-party notes on the PDF, not from the paper's text (approximate=True in the table).
`paper_key` maps any of these ids, or a plain OGBench dataset name such as pointmaze-large-navigate-v0, to the
paper's row name, so lookups work whichever suffix a spec uses.

Methods: the paper's column names, with the suite method and w each corresponds to in SUITE_METHOD (Flow GCBC is
goal-conditioned CFGRL at w = 1; the paper's GC CFGRL uses w = 3 for every task). The AWR / CFGRL / hierarchical
suite method names are the names this module expects the registry to use; change SUITE_METHOD if they differ.
The paper's figures and tables are data here too (FIG3_TEMPERATURE_VS_W, FIG4_FAMILIES, PAPER_TABLES): this is the
one analysis module that names registered methods and env kinds; the report and the plots take them from here.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

SOURCE_TEXT = "paper text (shared/docs/paper.md section 3)"
SOURCE_NOTES = "third-party notes on the PDF (approximate)"

# (paper method) -> (suite method, w or None). None: unguided, or the method's reported setting.
SUITE_METHOD: dict[str, tuple[str, float | None]] = {
    "AWR": ("awr", None),
    "CFGRL": ("cfgrl", None),
    "Flow GCBC": ("gc_cfgrl", 1.0),
    "GC CFGRL": ("gc_cfgrl", 3.0),
    "Flow HGCBC": ("flow_hgcbc", None),
    "HCFGRL": ("hcfgrl", 3.0),
}

# Fig. 3: AWR vs its temperature T beside CFGRL vs w, by registered method (one spec entry per T for AWR)
FIG3_TEMPERATURE_VS_W: tuple[str, str] = ("awr", "cfgrl")
# Figs. 4/6: the goal-conditioned families vs w, by registered method: (guided method, its unguided baselines)
FIG4_FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "flat": ("gc_cfgrl", ("bc", "flow_bc", "gcbc", "flow_gcbc")),
    "hierarchical": ("hcfgrl", ("hgcbc", "flow_hgcbc")),
}
# env kind (cfgrl.envs.registry) -> the paper's table of its envs
PAPER_TABLES: dict[str, str] = {"dmc": "1", "ogbench-single": "2", "ogbench-goal": "3-flat"}

# Table 1, ExORL: env -> {method: (mean, std)}; episode return.
TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "walker-stand": {"AWR": (603, 8), "CFGRL": (782, 8)},
    "walker-walk": {"AWR": (444, 4), "CFGRL": (608, 32)},
    "walker-run": {"AWR": (247, 10), "CFGRL": (282, 6)},
    "quadruped-walk": {"AWR": (776, 15), "CFGRL": (762, 25)},
    "quadruped-run": {"AWR": (485, 7), "CFGRL": (571, 25)},
    "cheetah-run": {"AWR": (168, 7), "CFGRL": (216, 15)},
    "cheetah-run-backward": {"AWR": (146, 8), "CFGRL": (262, 26)},
    "jaco-reach-top-right": {"AWR": (33, 2), "CFGRL": (72, 6)},
    "jaco-reach-top-left": {"AWR": (30, 8), "CFGRL": (46, 6)},
}

# Table 2, OGBench single-task: env -> {method: (mean, std)}; success rate %.
TABLE2: dict[str, dict[str, tuple[float, float]]] = {
    "pointmaze-large-navigate-singletask-v0": {"AWR": (70, 25), "CFGRL": (100, 0)},
    "pointmaze-teleport-navigate-singletask-v0": {"AWR": (3, 7), "CFGRL": (57, 7)},
    "antmaze-large-navigate-singletask-v0": {"AWR": (50, 9), "CFGRL": (20, 9)},
    "antmaze-teleport-navigate-singletask-v0": {"AWR": (22, 19), "CFGRL": (30, 22)},
    "humanoidmaze-large-navigate-singletask-v0": {"AWR": (3, 4), "CFGRL": (0, 0)},
    "antsoccer-arena-navigate-singletask-v0": {"AWR": (7, 0), "CFGRL": (20, 5)},
    "cube-single-play-singletask-v0": {"AWR": (85, 8), "CFGRL": (82, 3)},
    "scene-play-singletask-v0": {"AWR": (18, 3), "CFGRL": (17, 9)},
    "puzzle-3x3-play-singletask-v0": {"AWR": (3, 7), "CFGRL": (3, 4)},
}

# Table 3 (partial, APPROXIMATE), goal-conditioned: env -> {method: mean}; success rate %, std not transcribed.
TABLE3_FLAT: dict[str, dict[str, float]] = {
    "pointmaze-large-navigate-oraclerep-v0": {"Flow GCBC": 74, "GC CFGRL": 77},
    "pointmaze-giant-navigate-oraclerep-v0": {"Flow GCBC": 4, "GC CFGRL": 30},
    "antmaze-medium-navigate-oraclerep-v0": {"Flow GCBC": 42, "GC CFGRL": 53},
    "antmaze-giant-navigate-oraclerep-v0": {"Flow GCBC": 0, "GC CFGRL": 1},
    "humanoidmaze-medium-navigate-oraclerep-v0": {"Flow GCBC": 8, "GC CFGRL": 19},
    "humanoidmaze-large-navigate-oraclerep-v0": {"Flow GCBC": 1, "GC CFGRL": 3},
    "cube-double-play-oraclerep-v0": {"Flow GCBC": 3, "GC CFGRL": 2},
    "visual-cube-single-play-oraclerep-v0": {"Flow GCBC": 13, "GC CFGRL": 37},
    "visual-scene-play-oraclerep-v0": {"Flow GCBC": 25, "GC CFGRL": 40},
}
TABLE3_HIER: dict[str, dict[str, float]] = {
    "antmaze-medium-navigate-oraclerep-v0": {"Flow HGCBC": 67, "HCFGRL": 90},
    "antmaze-large-navigate-oraclerep-v0": {"Flow HGCBC": 61, "HCFGRL": 78},
    "antmaze-giant-navigate-oraclerep-v0": {"Flow HGCBC": 14, "HCFGRL": 38},
    "humanoidmaze-large-navigate-oraclerep-v0": {"Flow HGCBC": 11, "HCFGRL": 38},
    "cube-double-play-oraclerep-v0": {"Flow HGCBC": 21, "HCFGRL": 42},
}

REFERENCE_COLUMNS = ["table", "env", "paper_key", "method", "suite_method", "suite_w", "mean", "std", "unit",
                     "n_seeds", "approximate", "source"]


def paper_key(env: str) -> str:
    """Any suite env id -> the paper's row name: strips '-v0', '-singletask[-taskN]', '-oraclerep'.

    'pointmaze-large-navigate-singletask-v0' -> 'pointmaze-large-navigate'; 'walker-stand' -> 'walker-stand'.
    """
    key = re.sub(r"-v\d+$", "", env)
    key = re.sub(r"-singletask(-task\d+)?$", "", key)
    return re.sub(r"-oraclerep$", "", key)


def reference_table() -> pd.DataFrame:
    """All reference numbers, one row per (table, env, paper method): REFERENCE_COLUMNS.

    mean/std are in the paper's unit (`unit`: 'return' or 'success %'); std is NaN where not transcribed.
    """
    rows = []
    for table, data, unit, seeds in (("1", TABLE1, "return", 4), ("2", TABLE2, "success %", 4)):
        for env, cells in data.items():
            for method, (mean, std) in cells.items():
                rows.append({"table": table, "env": env, "method": method, "mean": float(mean), "std": float(std),
                             "unit": unit, "n_seeds": seeds, "approximate": False, "source": SOURCE_TEXT})
    for table, data in (("3-flat", TABLE3_FLAT), ("3-hier", TABLE3_HIER)):
        for env, cells in data.items():
            for method, mean in cells.items():
                seeds = 4 if env.startswith("visual-") else 8
                rows.append({"table": table, "env": env, "method": method, "mean": float(mean), "std": np.nan,
                             "unit": "success %", "n_seeds": seeds, "approximate": True, "source": SOURCE_NOTES})
    out = pd.DataFrame(rows)
    out["paper_key"] = out["env"].map(paper_key)
    out["suite_method"] = out["method"].map(lambda m: SUITE_METHOD[m][0])
    out["suite_w"] = out["method"].map(lambda m: SUITE_METHOD[m][1])
    return out[REFERENCE_COLUMNS]


def lookup(env: str, method: str, table: str | None = None) -> tuple[float, float] | None:
    """(mean, std) of the paper's `method` (paper column name) on `env` (any suite id of it), or None.

    table: restrict to "1", "2", "3-flat" or "3-hier" (needed for envs in both Table 3 halves).
    """
    ref = reference_table()
    hit = ref[(ref["paper_key"] == paper_key(env)) & (ref["method"] == method)]
    if table is not None:
        hit = hit[hit["table"] == table]
    if hit.empty:
        return None
    row = hit.iloc[0]
    return (float(row["mean"]), float(row["std"]))
