"""report.md sections built from a synthetic cells table (no training): the paper-layout tables."""

import pandas as pd
import pytest
import yaml

from analysis.report import write_report
from cfgrl.pipeline.spec import load_spec
from tests.synthetic import synthetic_cells


def test_paper_layout_tables_from_synthetic_cells(tmp_path):
    cells = synthetic_cells(seeds=4, gc=False)
    cells = cells[(cells["method"] == "cfgrl") | (cells["temperature"] == 10.0)]  # one AWR run per seed
    cells = cells.assign(registry=cells["method"], **{"return": cells["success"] * 1000})
    spec_path = tmp_path / "s.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "synth", "seeds": [0, 1, 2, 3],
        "envs": {env: {"data": {"source": "download"}} for env in sorted(cells["env"].unique())},
        "methods": {"awr": {}, "cfgrl": {"w": [0, 1, 1.5, 2, 3, 5], "select": {"type": "fixed", "value": 3}}}}))
    cells.to_csv(tmp_path / "cells.csv", index=False)
    report = write_report(load_spec(spec_path), tmp_path / "cells.csv", tmp_path).read_text()
    assert "### In the layout of the paper's Table 1" in report and "### In the layout of the paper's Table 2" in report
    table1 = report[report.index("### In the layout of the paper's Table 1"):]
    row = next(line for line in table1.splitlines() if line.startswith("| walker-stand |"))
    assert "782 ± 8" in row and "603 ± 8" in row  # the paper's CFGRL and AWR walker-stand numbers beside ours
    latex = (tmp_path / "tables" / "table1.tex").read_text()
    assert latex.count("{") == latex.count("}") and r"\toprule" in latex and "walker-stand" in latex
    stats = pd.read_csv(tmp_path / "stats.csv")
    assert {"method", "env", "w", "metric", "n_seeds", "mean", "ci_low", "ci_high"} <= set(stats.columns)
    row = stats[(stats["method"] == "cfgrl") & (stats["w"] == 3) & (stats["env"] == "walker-stand")
                & (stats["metric"] == "return")].iloc[0]
    walker = cells[(cells["method"] == "cfgrl") & (cells["w"] == 3) & (cells["env"] == "walker-stand")]
    assert row["n_seeds"] == 4 and row["mean"] == pytest.approx(walker["return"].mean())
    assert row["ci_low"] < row["mean"] < row["ci_high"]
