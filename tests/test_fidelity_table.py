"""analysis.fidelity: the suite's cell files and the reference drivers' JSONs read into one seed x w table each,
and the markdown row of docs/fidelity.md computed from them."""

import json

import numpy as np
import pytest

from analysis.fidelity import markdown, reference_runs, suite_runs


def write_cells(root, values):
    """values: {seed: {w: [episode successes]}} as evaluation cell files seed<k>/w<w>.json."""
    for seed, by_w in values.items():
        folder = root / f"seed{seed}"
        folder.mkdir(parents=True)
        for w, successes in by_w.items():
            cell = {"seed": seed, "w": w, "episodes": [{"success": s, "return": 10.0 * s} for s in successes]}
            (folder / f"w{w:g}.json").write_text(json.dumps(cell))


def test_suite_and_reference_tables_give_the_paired_difference_per_seed(tmp_path):
    write_cells(tmp_path / "suite", {0: {1.0: [0, 1], 1.5: [1, 1]}, 1: {1.0: [0, 0], 1.5: [0, 1]},
                                     2: {1.0: [1, 1], 1.5: [0, 1]}})
    for seed, (w1, w15) in enumerate([(0.4, 0.6), (0.5, 0.5), (0.2, 0.5)]):
        (tmp_path / f"ref_s{seed}.json").write_text(json.dumps(
            {"seed": seed, "w": {"1": {"success": w1}, "1.5": {"success": w15}}}))
    suite = suite_runs(tmp_path / "suite", "success")
    reference = reference_runs(str(tmp_path / "ref_s*.json"), "success")
    assert suite.loc[0, 1.5] == 1.0 and suite.loc[2, 1.0] == 1.0
    assert list(reference[1.0]) == pytest.approx([0.4, 0.5, 0.2])
    text = markdown({"suite": suite, "reference": reference}, scale=100.0)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()[2:]}
    # suite diffs 50, 50, -50 -> mean +16.7 with 2 of 3 better; reference 20, 0, 30 -> +16.7, 2 of 3 (0 is no gain)
    assert "+16.7 [" in rows["suite"] and "(2 of 3 seeds better)" in rows["suite"]
    diff = np.array([20.0, 0.0, 30.0])
    half = 4.302652729911275 * diff.std(ddof=1) / np.sqrt(3)  # t(0.975, 2)
    assert f"+16.7 [{diff.mean() - half:.1f}, {diff.mean() + half:.1f}]" in rows["reference"]


def test_one_seed_prints_its_value_without_an_interval(tmp_path):
    write_cells(tmp_path / "suite", {0: {1.0: [0, 1], 1.5: [1, 1]}})
    row = markdown({"suite": suite_runs(tmp_path / "suite", "success")}, scale=100.0).splitlines()[2]
    assert "nan" not in row and "| 50.0 | 100.0 | +50.0 (1 of 1 seeds better) |" in row


def test_unguided_reference_has_one_column(tmp_path):
    for seed, value in enumerate([19.0, 25.0]):
        (tmp_path / f"awr_s{seed}.json").write_text(json.dumps({"seed": seed, "return": value}))
    text = markdown({"awr": reference_runs(str(tmp_path / "awr_s*.json"), "return")})
    assert text.splitlines()[0] == "| source | seeds | mean [CI] |" and "| awr | 2 | 22.0 [" in text


def test_a_cell_level_divergence_is_read_from_the_cell_not_its_episodes(tmp_path):
    folder = tmp_path / "seed0"
    folder.mkdir()
    for w, kl in [(0.0, 0.0), (1.0, 0.25), (1.5, 0.5)]:
        (folder / f"w{w:g}.json").write_text(json.dumps({"seed": 0, "w": w, "kl_to_w0": kl, "episodes": []}))
    table = suite_runs(tmp_path, "kl_to_w0")
    assert list(table.loc[0]) == [0.0, 0.25, 0.5]
    assert "| 0.000 | 0.250 | 0.500 | +0.250 (1 of 1 seeds better) |" in markdown({"s": table}, digits=3)


def test_two_sources_compare_their_paired_gains_with_welch(tmp_path):
    from analysis.stats import welch_diff_ci

    write_cells(tmp_path / "a", {0: {1.0: [0, 0], 1.5: [1, 1]}, 1: {1.0: [0, 1], 1.5: [1, 1]}})
    write_cells(tmp_path / "b", {0: {1.0: [1, 1], 1.5: [1, 1]}, 1: {1.0: [0, 0], 1.5: [0, 1]},
                                 2: {1.0: [1, 0], 1.5: [0, 0]}})
    tables = {"A": suite_runs(tmp_path / "a", "success"), "B": suite_runs(tmp_path / "b", "success")}
    line = markdown(tables, scale=100.0).splitlines()[-1]
    gain_a, gain_b = np.array([100.0, 50.0]), np.array([0.0, 50.0, -50.0])
    lo, hi = welch_diff_ci(gain_a, gain_b)
    assert line == (f"Gain of w = 1.5 over w = 1, A minus B: +75.0 [{lo:.1f}, {hi:.1f}] "
                    "(95% Welch interval; n = 2 and 3 seeds).")
