"""Sweeps (a reported row chosen among training configurations, e.g. the AWR temperature) and validation on
extra training seeds: spec checks, the cells they add, and the report built from a synthetic cells table."""

import numpy as np
import pytest

from analysis.report import write_report
from analysis.selection import reported_rows
from cfgrl.pipeline.spec import SpecError, load_spec
from tests.conftest import assert_spec_error, mutated
from tests.conftest import write_spec as write
from tests.synthetic import TEMPERATURES, synthetic_cells

ENV = "pointmaze-medium-navigate-singletask-v0"
AWR = {f"awr_t{t:g}": {"method": "awr", "config": {"steps": 10, "temperature": t}} for t in TEMPERATURES}
SPEC = {
    "name": "sw",
    "seeds": [0, 1],
    "envs": {ENV: {"data": {"source": "generate", "episodes": 2}}},
    "methods": {**AWR, "cfgrl": {"w": [0, 1, 3], "select": {"type": "fixed", "value": 3}, "config": {"steps": 10}},
                "bc": {"config": {"steps": 10}}},
    "sweeps": {"awr": {"entries": list(AWR), "select": {"type": "validation", "on": "episodes"}}},
}


def mutated_spec(change):
    return mutated(SPEC, change)


def test_sweep_on_episodes_adds_validation_cells_of_its_entries_only(tmp_path):
    cells = load_spec(write(tmp_path, SPEC)).cells()
    validation = [c for c in cells if c[0] == "validation"]
    assert {c[1] for c in validation} == set(AWR)
    assert len(validation) == len(AWR) * 2  # 4 entries x 2 seeds, no w
    assert len(cells) - len(validation) == len(AWR) * 2 + 3 * 2 + 2


def test_validation_on_seeds_trains_extra_seeds_that_are_never_reported(tmp_path):
    spec = mutated_spec(lambda s: s["methods"]["cfgrl"].__setitem__("select", {"type": "validation", "on": "seeds",
                                                                           "seeds": [7, 8]}))
    cells = load_spec(write(tmp_path, spec)).cells()
    cfg = [c for c in cells if c[1] == "cfgrl"]
    assert {c[3] for c in cfg if c[0] == "validation"} == {7, 8}
    assert {c[3] for c in cfg if c[0] == "test"} == {0, 1}
    assert len(cfg) == 2 * 3 * 2


SWEEP_CASES = [
    ("name clash", lambda s: s["sweeps"].__setitem__("bc", s["sweeps"].pop("awr")), "sweeps.bc", "clashes"),
    ("unknown entry", lambda s: s["sweeps"]["awr"]["entries"].append("awr_t99"), "sweeps.awr.entries",
     "unknown method entry 'awr_t99'"),
    ("mixed methods", lambda s: s["sweeps"]["awr"]["entries"].append("bc"), "sweeps.awr.entries",
     "entries of one method only"),
    ("guided entries", lambda s: (s["methods"].__setitem__("cfgrl2", {"method": "cfgrl", "w": [1]}),
                                  s["sweeps"]["awr"].__setitem__("entries", ["cfgrl", "cfgrl2"])),
     "sweeps.awr.entries", "use the entry's own `select`"),
    ("same temperature twice", lambda s: s["methods"]["awr_t1"]["config"].__setitem__("temperature", 3.0),
     "sweeps.awr.entries", "share temperature"),
    ("fixed value not swept", lambda s: s["sweeps"]["awr"].__setitem__("select", {"type": "fixed", "value": 5}),
     "sweeps.awr.select.value", "not among the temperature values"),
    ("max over test", lambda s: s["sweeps"]["awr"].__setitem__("select", {"type": "best"}),
     "sweeps.awr.select.type", "biased upward"),
    ("unknown knob", lambda s: s["sweeps"]["awr"].__setitem__("knob", "temprature"), "sweeps.awr.knob",
     "not a config field"),
    ("validation seeds reported", lambda s: s["sweeps"]["awr"].__setitem__(
        "select", {"type": "validation", "on": "seeds", "seeds": [1, 2]}), "sweeps.awr.select.seeds",
     "[1] are reported seeds"),
    ("validation seeds missing", lambda s: s["sweeps"]["awr"].__setitem__(
        "select", {"type": "validation", "on": "seeds"}), "sweeps.awr.select.seeds", "needs the extra"),
    ("entry in two sweeps", lambda s: s["sweeps"].__setitem__("awr_low", {"entries": ["awr_t1", "awr_t3"],
                                                                          "select": {"type": "fixed", "value": 1}}),
     "sweeps.awr_low.entries", "'awr_t1' is already in sweep 'awr'"),
    ("select on an unguided entry", lambda s: s["methods"]["bc"].__setitem__("select", {"type": "fixed", "value": 1}),
     "methods.bc.select", "`sweeps` entry"),
]


@pytest.mark.parametrize("label, change, field, fragment", SWEEP_CASES, ids=[c[0] for c in SWEEP_CASES])
def test_bad_sweep_is_rejected_with_one_line(tmp_path, label, change, field, fragment):
    assert_spec_error(write(tmp_path, mutated_spec(change)), field, fragment)


def test_default_temperature_counts_as_the_std_modes_default(tmp_path):
    # AWR's temperature None means 10 with the fixed std: a sweep holding None and 10 has the same T twice
    spec = mutated_spec(lambda s: s["methods"]["awr_t1"]["config"].pop("temperature"))
    with pytest.raises(SpecError, match="share temperature"):
        load_spec(write(tmp_path, spec))


def _sweep_cells():
    """Synthetic cells: AWR T grid as entries awr_t<T>, seeds 0-3 test, 4-5 validation seeds."""
    cells = synthetic_cells(seeds=4, validation_seeds=2, gc=False, envs=["walker-stand", "cheetah-run"])
    awr = cells["method"] == "awr"
    cells.loc[awr, "method"] = [f"awr_t{t:g}" for t in cells.loc[awr, "temperature"]]
    cells["registry"] = np.where(awr, "awr", "cfgrl")
    cells["return"] = 1000 * cells["success"]
    return cells


def test_sweep_reports_the_entry_chosen_on_validation_seeds(tmp_path):
    cells = _sweep_cells()
    rule = {"type": "validation", "on": "seeds", "seeds": [4, 5]}
    spec_path = write(tmp_path, {
        "name": "sw", "seeds": [0, 1, 2, 3],
        "envs": {env: {"data": {"source": "download"}} for env in sorted(cells["env"].unique())},
        "methods": {**AWR, "cfgrl": {"w": [0, 1, 1.5, 2, 3, 5], "select": rule}},
        "sweeps": {"awr": {"entries": list(AWR), "select": rule}},
        # the rliable aggregate's resamples (default 10,000: slow); PNG figures only
        "analysis": {"bootstrap_resamples": 1000, "figure_formats": ["png"]}})
    spec = load_spec(spec_path)
    reported = reported_rows(spec, cells)
    assert set(reported) == {"awr", "cfgrl"}
    for env in ("walker-stand", "cheetah-run"):
        val = cells[(cells["split"] == "validation") & (cells["env"] == env)]
        best_t = val[val["registry"] == "awr"].groupby("temperature")["return"].mean().idxmax()
        got = reported["awr"][reported["awr"]["env"] == env]
        assert set(got["temperature"]) == {best_t} and set(got["entry"]) == {f"awr_t{best_t:g}"}
        assert sorted(got["seed"]) == [0, 1, 2, 3]  # reported on the test seeds only
        best_w = val[val["registry"] == "cfgrl"].groupby("w")["return"].mean().idxmax()
        assert set(reported["cfgrl"][reported["cfgrl"]["env"] == env]["w"]) == {best_w}
    cells.to_csv(tmp_path / "cells.csv", index=False)
    report = write_report(spec, tmp_path / "cells.csv", tmp_path).read_text()
    assert "- `awr`: cheetah-run: temperature = " in report and "chosen on validation seeds" in report
    table1 = report[report.index("### In the layout of the paper's Table 1"):]
    row = next(line for line in table1.splitlines() if line.startswith("| walker-stand |"))
    assert "603 ± 8" in row  # the sweep is the paper's AWR column
    assert "## Aggregate across envs (rliable)" in report and "| cfgrl > awr |" in report
    assert (tmp_path / "figures" / "compare_cfgrl_vs_awr_return.png").stat().st_size > 10_000
    assert (tmp_path / "figures" / "aggregate_0.png").stat().st_size > 10_000
