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
        "methods": {"awr": {}, "cfgrl": {"w": [0, 1, 1.5, 2, 3, 5], "select": {"type": "fixed", "value": 3}}},
        "analysis": {"bootstrap_resamples": 500}}))
    cells.to_csv(tmp_path / "cells.csv", index=False)
    report = write_report(load_spec(spec_path), tmp_path / "cells.csv", tmp_path).read_text()
    pngs, pdfs = ({p.stem for p in (tmp_path / "figures").glob(f"*.{fmt}")} for fmt in ("png", "pdf"))
    assert pngs and pngs == pdfs  # analysis.figure_formats by default: every figure as PNG and PDF
    assert "Files: `cells.csv`" in report and "`figures/` (PNG, PDF)" in report
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


def test_report_text_says_what_is_computed(tmp_path):
    cells = synthetic_cells(seeds=4, gc=False)
    cells = cells[(cells["method"] == "cfgrl") | (cells["temperature"] == 10.0)]
    cells = cells.assign(registry=cells["method"], **{"return": cells["success"] * 1000})
    spec_path = tmp_path / "s.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "synth", "seeds": [0, 1, 2, 3],
        "envs": {env: {"data": {"source": "download"}} for env in sorted(cells["env"].unique())},
        "methods": {"awr": {}, "cfgrl": {"w": [0, 1, 3], "select": {"type": "fixed", "value": 3}}},
        "analysis": {"bootstrap_resamples": 300}}))
    cells.to_csv(tmp_path / "cells.csv", index=False)
    report = write_report(load_spec(spec_path), tmp_path / "cells.csv", tmp_path).read_text()
    assert "percentile bootstrap" not in report and "bootstrap CI (" not in report
    protocol = report[report.index("## Protocol"):report.index("\n## ", report.index("## Protocol") + 1)]
    assert "Student-t interval" in protocol and "Welch's interval" in protocol
    assert "stratified bootstrap (300 resamples)" in protocol  # the spec's resamples feed the rliable aggregate
    assert "stratified bootstrap CIs (300 resamples)" in report
    # the paired table has no w = 1 - (w = 1) row
    paired = report[report.index("Paired on checkpoints"):]
    paired = paired[:paired.index("\n\n", paired.index("|---"))]
    ws = [line.split(" | ")[0].strip("| ") for line in paired.splitlines() if line.startswith("| ")][1:]
    assert ws == ["0", "1.5", "2", "3", "5"]  # the cells have the whole grid; w = 1 left out
    # the comparison table: n beside each mean, the permutation p next to Welch's and the MWU p, Holm over it
    comp = report[report.index("## Reported settings and comparisons"):]
    header = next(line for line in comp.splitlines() if line.startswith("| env | metric |"))
    assert header == ("| env | metric | A | B | mean A | n A | mean B | n B | A - B [CI] | Welch p | MWU p | perm p "
                      "| Holm p | Hedges g |")
    assert "Holm-Bonferroni over perm p" in comp and "exact permutation test" in comp
    row = next(line for line in comp.splitlines() if line.startswith("| walker-stand | return | cfgrl (w=3) | awr |"))
    cells_ = row.strip("| ").split(" | ")
    assert cells_[5] == "4" and cells_[7] == "4"
    assert cells_[11] == "0.029"  # 4 vs 4, every cfgrl seed above every awr seed: exact p = 2/70



def test_budget_rule_and_performance_vs_divergence_in_the_report(tmp_path):
    """AWR over T (a sweep of entries) and CFGRL over w on one divergence axis; the budget rule's choice and its
    words in the report."""
    cells = synthetic_cells(seeds=4, gc=False, envs=["cheetah-run"])
    awr = cells[cells["method"] == "awr"]
    awr = awr.assign(method="awr_t" + awr["temperature"].map("{:g}".format), registry="awr")
    cfg = cells[cells["method"] == "cfgrl"].assign(registry="cfgrl")
    cfg = cfg.assign(distance_to_w0=0.1 * cfg["w"], kl_to_w0=0.3 * cfg["w"], data_distance=0.5 + 0.1 * cfg["w"])
    awr = awr.assign(data_distance=0.5 + 0.05 * awr["temperature"])
    cells = pd.concat([cfg, awr], ignore_index=True)
    cells["return"] = cells["success"] * 1000
    spec_path = tmp_path / "s.yaml"
    entries = {f"awr_t{t:g}": {"method": "awr", "config": {"temperature": t}} for t in (1.0, 3.0, 10.0, 30.0)}
    spec_path.write_text(yaml.safe_dump({
        "name": "synth", "seeds": [0, 1, 2, 3], "envs": {"cheetah-run": {"data": {"source": "generate"}}},
        "methods": {"cfgrl": {"w": [0, 1, 1.5, 2, 3, 5], "select": {"type": "budget", "divergence": 0.25}},
                    **entries},
        "sweeps": {"awr": {"entries": list(entries), "select": {"type": "budget", "divergence": 0.75,
                                                                  "measure": "data"}}},
        "analysis": {"bootstrap_resamples": 200}}))
    cells.to_csv(tmp_path / "cells.csv", index=False)
    report = write_report(load_spec(spec_path), tmp_path / "cells.csv", tmp_path).read_text()
    assert "the largest per env whose mean ||a_w - a_0||^2 on held-out dataset states" in report
    comp = report[report.index("## Reported settings and comparisons"):]
    assert "cfgrl (w=2)" in comp  # 0.1 w <= 0.25: w = 2 (w = 3 is above the budget)
    section = report[report.index("## Performance at equal divergence"):]
    assert "![performance vs divergence (return)](figures/performance_vs_divergence_return.png)" in section
    assert (tmp_path / "figures" / "performance_vs_divergence_return.png").stat().st_size > 10_000
    row = next(line for line in section.splitlines() if line.startswith("| cheetah-run | awr | 10 |"))
    assert "| 4 | 1.000 |" in row  # n seeds and the data distance 0.5 + 0.05 * 10
    row = next(line for line in section.splitlines() if line.startswith("| cheetah-run | cfgrl | 3 |"))
    assert "| 4 | 0.800 | 0.300 | 0.90 |" in row


def test_the_package_versions_line_finds_the_first_cell_from_another_folder(tmp_path, monkeypatch):
    """cells.csv paths are relative to the folder the workflow ran in; the report finds the cell under its
    results folder when it runs from elsewhere."""
    import json

    import pandas as pd

    from analysis.run_record import provenance_section

    outdir = tmp_path / "run" / "results" / "demo"
    cell = outdir / "eval" / "test" / "gcbc" / "env" / "seed0" / "wnone.json"
    cell.parent.mkdir(parents=True)
    cell.write_text(json.dumps({"provenance": {"packages": {"torch": "2.13.0", "numpy": "2.3.1"}}}))
    cells = pd.DataFrame({"env": ["env"], "path": ["results/demo/eval/test/gcbc/env/seed0/wnone.json"]})
    monkeypatch.chdir(tmp_path)  # not the folder the workflow ran in
    line = [p for p in provenance_section(cells, outdir) if "package versions" in p]
    assert line == ["- package versions (first cell): torch 2.13.0, numpy 2.3.1."]
    assert not [p for p in provenance_section(cells) if "package versions" in p]  # without the folder: not found


def test_cost_table_seconds_keep_a_decimal_below_ten():
    from analysis.run_record import seconds

    assert [seconds(x) for x in (0.04, 0.26, 9.94, 10.2, 1234.5)] == ["0.0", "0.3", "9.9", "10", "1234"]
    assert seconds(float("nan")) == "nan"
