"""The paper's numbers as data, Markdown/LaTeX tables (bold rule, significance marks, LaTeX syntax), figures."""

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from analysis import plots
from analysis.aggregate import iqm_ci, performance_profiles, probability_of_improvement, score_matrices
from analysis.figures import figure_formats, role_colors
from analysis.paper_numbers import FIG3_TEMPERATURE_VS_W, FIG4_FAMILIES, lookup, paper_key, reference_table
from analysis.significance import compare_methods
from analysis.tables import bold_mask, latex_escape, results_table, to_latex, to_markdown
from tests.synthetic import synthetic_cells


def test_reference_numbers_transcribed_and_keyed():
    ref = reference_table()
    assert len(ref) == 18 + 18 + 18 + 10
    assert lookup("walker-stand", "CFGRL") == (782.0, 8.0)
    assert lookup("jaco-reach-top-left", "AWR") == (30.0, 8.0)
    assert lookup("pointmaze-teleport-navigate-singletask-v0", "CFGRL") == (57.0, 7.0)
    assert lookup("pointmaze-teleport-navigate-v0", "CFGRL") == (57.0, 7.0)  # any suffix finds the row
    mean, std = lookup("antmaze-giant-navigate-oraclerep-v0", "HCFGRL")
    assert mean == 38.0 and np.isnan(std)
    assert ref.loc[ref["table"].str.startswith("3"), "approximate"].all()
    assert not ref.loc[ref["table"].isin(["1", "2"]), "approximate"].any()
    assert paper_key("cube-single-play-singletask-task2-v0") == "cube-single-play"
    assert set(ref.loc[ref["table"] == "1", "unit"]) == {"return"}


def fixed_cells(means: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """Cells with exact per-seed values: {method: {env: [value per seed]}} (w NaN: one setting per method)."""
    return pd.DataFrame([{"method": m, "env": e, "seed": s, "w": np.nan, "success": v}
                         for m, envs in means.items() for e, vals in envs.items() for s, v in enumerate(vals)])


def test_bold_rule_is_95_percent_of_the_row_best():
    np.testing.assert_array_equal(bold_mask([1.0, 0.96, 0.94, np.nan]), [True, True, False, False])
    np.testing.assert_array_equal(bold_mask([0.0, 0.0]), [True, True])
    cells = fixed_cells({"best": {"e": [1.0] * 3}, "near": {"e": [0.96] * 3}, "far": {"e": [0.94] * 3}})
    table = results_table(cells, {"best": "best", "near": "near", "far": "far"})
    assert table.set_index("label")["bold"].to_dict() == {"best": True, "near": True, "far": False}
    md = to_markdown(table)
    assert "**100.0 ± 0.0**" in md and "**96.0 ± 0.0**" in md and "| 94.0 ± 0.0 |" in md
    assert r"\textbf{96.0 $\pm$ 0.0}" in to_latex(table) and r"\textbf{94.0" not in to_latex(table)


def test_significance_marks_only_where_holm_corrected_p_is_small():
    # 5 vs 5 seeds: the exact permutation p of big_gap is 2/252, 2/252 * 2 < 0.05 after Holm over the 2 envs
    cells = fixed_cells({
        "cfgrl": {"big_gap": [0.90, 0.92, 0.88, 0.91, 0.89], "no_gap": [0.50, 0.55, 0.45, 0.52, 0.48]},
        "awr": {"big_gap": [0.40, 0.42, 0.38, 0.41, 0.39], "no_gap": [0.51, 0.47, 0.53, 0.49, 0.50]},
    })
    table = results_table(cells, {"AWR": "awr", "CFGRL": "cfgrl"}, comparisons=[("CFGRL", "AWR")])
    marks = table.set_index(["env", "label"])["mark"].to_dict()
    assert marks == {("big_gap", "AWR"): "", ("big_gap", "CFGRL"): "*", ("no_gap", "AWR"): "",
                     ("no_gap", "CFGRL"): ""}
    holm_p = table.set_index(["env", "label"])["holm_p"]
    assert holm_p[("big_gap", "CFGRL")] == pytest.approx(2 * 2 / 252)
    md = to_markdown(table)
    assert md.count(r"\*") == 2  # the marked cell and the note explaining it
    assert "exact permutation test" in md and "Holm-corrected" in md and "Student-t CI" in md
    assert "Welch" not in md and "bootstrap" not in md
    assert "$^{*}$" in to_latex(table)
    unmarked = results_table(cells, {"AWR": "awr", "CFGRL": "cfgrl"})
    assert "*" not in to_markdown(unmarked).replace("**", "")


def test_marks_need_enough_seeds():
    # 4 vs 4 with complete separation: exact p = 2/70 = 0.029, but Holm over 2 envs makes it 0.057: no mark
    cells = fixed_cells({"cfgrl": {"e1": [0.9, 0.92, 0.88, 0.91], "e2": [0.9, 0.92, 0.88, 0.91]},
                         "awr": {"e1": [0.4, 0.42, 0.38, 0.41], "e2": [0.4, 0.42, 0.38, 0.41]}})
    table = results_table(cells, {"AWR": "awr", "CFGRL": "cfgrl"}, comparisons=[("CFGRL", "AWR")])
    assert (table["mark"] == "").all() and table["holm_p"].to_numpy() == pytest.approx([4 / 70] * 4)


def test_one_seed_prints_no_std_and_no_interval():
    cells = fixed_cells({"one": {"e": [0.5]}, "three": {"e": [0.2, 0.4, 0.6]}})
    table = results_table(cells, {"one": "one", "three": "three"}).set_index("label")
    assert np.isnan(table.loc["one", "std"]) and np.isnan(table.loc["one", "ci_low"])
    lo, hi = table.loc["three", ["ci_low", "ci_high"]]
    assert (lo, hi) == pytest.approx((0.4 - 4.302653 * 0.2 / np.sqrt(3), 0.4 + 4.302653 * 0.2 / np.sqrt(3)))
    md = to_markdown(table.reset_index())
    row = next(line for line in md.splitlines() if line.startswith("| e |"))
    assert row.split(" | ")[1:3] == ["**50.0 ± —**", "—"]  # bold: the row's best
    assert "n = 1, 3" in md


def paper_table() -> pd.DataFrame:
    cells = synthetic_cells(seeds=3, envs=["walker-stand", "cheetah-run-backward"], gc=False)
    cells["method"] = cells["method"].replace({"cfgrl": "cfg_rl"})  # an underscore to escape
    return results_table(cells, {"AWR": ("awr", {"temperature": 3.0}), "CFG_RL": ("cfg_rl", 3.0)},
                         paper={"AWR": "AWR", "CFG_RL": "CFGRL"}, paper_table="1",
                         comparisons=[("CFG_RL", "AWR")])


def test_tables_show_the_paper_number_beside_ours():
    table = paper_table()
    md = to_markdown(table)
    assert "| AWR (paper) |" in md and "603 ± 8" in md and "**782 ± 8**" in md
    header, rule, *rows = md.split("\n\n")[0].splitlines()
    assert all(r.count("|") == header.count("|") for r in [rule, *rows]) and len(rows) == 2


def test_latex_is_syntactically_sound():
    tex = to_latex(paper_table(), caption="ExORL: AWR vs CFG_RL", label="tab:exorl")
    assert tex.count("{") == tex.count("}")
    depth = 0
    for ch in tex:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert not re.search(r"(?<!\\)[_%&#]", tex.replace(" & ", " ")), "unescaped special character"
    assert "CFG\\_RL" in tex and "±" not in tex and "—" not in tex
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    spec = re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1)
    body = tex[tex.index(r"\midrule"):tex.index(r"\bottomrule")].splitlines()[1:]
    assert body and all(line.count(" & ") == len(spec) - 1 and line.endswith(r"\\") for line in body)
    assert latex_escape("a_b & 50% #1") == r"a\_b \& 50\% \#1"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex here")
def test_latex_compiles(tmp_path):
    doc = ("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + to_latex(paper_table())
           + "\\end{document}\n")
    (tmp_path / "t.tex").write_text(doc)
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:]


# ---- figures -----------------------------------------------------------------------------------------------


def assert_written(paths, colors=("#1f77b4", "#d62728")):
    """Both files written, the PNG has something drawn on it, in the suite's colours (data, not just axes)."""
    import matplotlib.colors as mcolors
    import matplotlib.image as mimage

    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert paths[1].read_bytes().startswith(b"%PDF") and paths[1].stat().st_size > 1000
    img = mimage.imread(paths[0])[..., :3]
    assert (img < 0.95).any(axis=-1).mean() > 0.02, "the figure is (nearly) blank"
    for color in colors:  # the lines or bars of the data: pixels of the method colours
        rgb = np.asarray(mcolors.to_rgb(color))
        assert (np.abs(img - rgb).max(axis=-1) < 0.08).sum() > 20, f"no {color} drawn"


@pytest.fixture(scope="module")
def cells():
    return synthetic_cells(seeds=3)


def test_fig_temperature_and_w(cells, tmp_path):
    assert_written(plots.temperature_and_w(cells, tmp_path / "a", *FIG3_TEMPERATURE_VS_W))


def test_figure_formats_block_chooses_the_files_written(cells, tmp_path):
    with figure_formats(("png", "svg")):
        paths = plots.temperature_and_w(cells, tmp_path / "a", *FIG3_TEMPERATURE_VS_W)
    assert [p.suffix for p in paths] == [".png", ".svg"] and b"<svg" in paths[1].read_bytes()[:500]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.svg"]
    after = plots.temperature_and_w(cells, tmp_path / "b", *FIG3_TEMPERATURE_VS_W)
    assert [p.suffix for p in after] == [".png", ".pdf"]  # the block left


def test_fig_comparison(cells, tmp_path):
    comp = compare_methods(cells, "cfgrl", "awr", {"cfgrl": 3.0, "awr": {"temperature": 10.0}})
    assert_written(plots.comparison_plot(comp, tmp_path / "b"))


def test_fig_gc_family(cells, tmp_path):
    family = ("#d62728", "#2ca02c")  # the guided method red, the first baseline green
    families = FIG4_FAMILIES["flat"], FIG4_FAMILIES["hierarchical"]
    assert_written(plots.gc_family_vs_w(cells, tmp_path / "c", *families), family)
    flat_only = cells[~cells["method"].isin(["hcfgrl", "hgcbc"])]
    assert_written(plots.gc_family_vs_w(flat_only, tmp_path / "c_flat", *families), family)


def test_gradient_concentration_and_figure(tmp_path):
    shares = plots.gradient_concentration(np.array([10.0] + [1.0] * 99))
    assert shares == pytest.approx({"top1%": 10 / 109, "top10%": 19 / 109})
    assert plots.gradient_concentration(np.ones(1000)) == pytest.approx({"top1%": 0.01, "top10%": 0.1})
    rng = np.random.default_rng(0)
    norms = {"AWR": np.exp(rng.normal(0, 2, 2000)), "CFGRL": np.abs(rng.normal(1, 0.3, 2000))}
    assert plots.gradient_concentration(norms["AWR"])["top1%"] > plots.gradient_concentration(norms["CFGRL"])["top1%"]
    assert_written(plots.gradient_norms_plot(norms, tmp_path / "d"))


def test_fig_distance_vs_w(tmp_path):
    rng = np.random.default_rng(0)
    data = pd.DataFrame([{"seed": s, "w": w, "distance": 0.02 * w ** 2 + 0.01 * rng.random(),
                          "success": 0.3 + 0.05 * w + 0.02 * rng.normal()} for s in range(3) for w in (0, 1, 2, 3)])
    assert_written(plots.distance_vs_w(data, tmp_path / "e"), ("#1f77b4",))


def test_fig_aggregate(cells, tmp_path):
    scores, _ = score_matrices(cells, ["cfgrl", "awr"], {"cfgrl": 3.0, "awr": {"temperature": 10.0}})
    taus = np.linspace(0, 1, 21)
    assert_written(plots.aggregate_plot(iqm_ci(scores, reps=100), tmp_path / "f",
                                        poi=probability_of_improvement(scores, [("cfgrl", "awr")], reps=100),
                                        profiles=performance_profiles(scores, taus, reps=100), taus=taus))


def test_every_method_of_a_figure_has_its_own_colour():
    """Four label schemes (the ablation spec) and five baselines: nine colours, roles kept (red CFGRL, blue AWR)."""
    guided = ["cfgrl_dropout", "cfgrl_filtered", "cfgrl_quantile", "cfgrl_return"]
    unguided = ["awr", "bc", "idql", "fql", "flow_bc"]
    colors = role_colors(guided, unguided)
    assert len(set(colors.values())) == 9
    assert colors["cfgrl_dropout"] == "#d62728" and colors["awr"] == "#1f77b4"
    many = role_colors([f"g{k}" for k in range(20)], [f"u{k}" for k in range(20)])
    assert len(set(many.values())) == 40
