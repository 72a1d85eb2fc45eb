import subprocess
import sys

import pytest
import yaml

from cfgrl.pipeline.spec import SelectRule, load_spec
from tests.conftest import REPO, assert_spec_error, mutated
from tests.conftest import write_spec as write

GOOD = {
    "name": "t",
    "seeds": [0, 1],
    "envs": {"pointmaze-medium-navigate-v0": {"data": {"source": "generate", "episodes": 2}}},
    "methods": {"gcbc": {"config": {"steps": 10}}, "gc_cfgrl": {"w": [0, 1, 2.5], "config": {"steps": 10}}},
}


def test_good_spec_loads_with_defaults(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.envs["pointmaze-medium-navigate-v0"].episodes_per_task == 10
    assert spec.envs["pointmaze-medium-navigate-v0"].data["noise"] == 0.2
    cells = spec.cells()
    assert len(cells) == 2 * 1 + 2 * 3
    assert ("test", "gc_cfgrl", "pointmaze-medium-navigate-v0", 1, "2.5") in cells
    assert ("test", "gcbc", "pointmaze-medium-navigate-v0", 0, "none") in cells


def test_w_keeps_full_precision_from_the_spec_to_the_cell_label(tmp_path):
    """One exact form: a w's label reads back as the same float, distinct w never share a label (the old `:g`
    labels made 1.2345678 into '1.23457' and 1 and 1.0000001 into one cell file)."""
    from cfgrl.pipeline.spec import w_label

    grid = [0, 1, 1.0000001, 1.2345678, 2.5, 1e-7, -0.0 + 3]
    spec = load_spec(write(tmp_path, mutated(GOOD, lambda s: s["methods"]["gc_cfgrl"].__setitem__("w", grid))))
    entry = spec.methods["gc_cfgrl"]
    assert entry.w == tuple(float(w) for w in grid)
    assert entry.cell_labels == ("0", "1", "1.0000001", "1.2345678", "2.5", "1e-07", "3")
    assert all(float(label) == w for label, w in zip(entry.cell_labels, entry.w, strict=True))
    assert w_label(-0.0 + 0.0) == "0" and spec.methods["gcbc"].cell_labels == ("none",)


def test_training_hash_is_taken_over_the_resolved_config(tmp_path, monkeypatch):
    """An override equal to the default changes no hash; another value does; so does a changed default."""
    import dataclasses

    from cfgrl.methods import method_class

    def train_hash(spec_dict, name):
        (tmp_path / name).mkdir()
        return load_spec(write(tmp_path / name, spec_dict)).job_hashes()["train"]["gcbc|pointmaze-medium-navigate-v0"]

    gcbc = method_class("gcbc")
    default_lr = gcbc.Config().lr
    plain = train_hash(GOOD, "a")
    assert train_hash(mutated(GOOD, lambda s: s["methods"]["gcbc"]["config"].__setitem__("lr", default_lr)), "b") \
        == plain
    assert train_hash(mutated(GOOD, lambda s: s["methods"]["gcbc"]["config"].__setitem__("lr", default_lr / 2)),
                      "c") != plain
    changed = dataclasses.make_dataclass("Changed", [("lr", float, dataclasses.field(default=default_lr / 2))],
                                         bases=(gcbc.Config,))
    monkeypatch.setattr(gcbc, "Config", changed)
    assert train_hash(GOOD, "d") != plain


def test_every_numeric_config_field_declares_its_range_beside_it():
    """Each int / float field of every registered method's config has a Range in its class hierarchy's RANGES
    (a new field without one fails here), and a value just outside it is refused with that range."""
    import types
    import typing
    from dataclasses import fields

    from cfgrl.methods import METHODS

    for name, cls in METHODS.items():
        hints = typing.get_type_hints(cls.Config)
        ranges = cls.Config.ranges()
        for f in fields(cls.Config):
            hint = hints[f.name]
            kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)  # int | None: both
            if int in kinds or float in kinds:
                assert f.name in ranges, f"{name}: config field {f.name!r} has no Range in its class's RANGES"
        assert set(ranges) <= {f.name for f in fields(cls.Config)}, f"{name}: a Range names no field"
    flow_steps = METHODS["gc_cfgrl"].Config.ranges()["flow_steps"]
    assert flow_steps.text() == "[1, 10000]" and 1 in flow_steps and 0 not in flow_steps
    expectile = METHODS["cfgrl"].Config.ranges()["expectile"]
    assert expectile.text() == "(0, 1)" and 0.5 in expectile and 1 not in expectile and 0 not in expectile


def _mutated(change):
    return mutated(GOOD, change)


CASES = [
    ("unknown method", lambda s: s["methods"].__setitem__("cfgrl_turbo", {}), "methods.cfgrl_turbo",
     "unknown method 'cfgrl_turbo'"),
    ("unknown env", lambda s: s["envs"].__setitem__("pointmaze-tiny-navigate-v0", {"data": {"source": "generate"}}),
     "envs.pointmaze-tiny-navigate-v0", "unknown env"),
    ("misspelt top-level key", lambda s: s.__setitem__("seed", [0]), "seed", "unknown key 'seed'"),
    ("misspelt nested key", lambda s: s["envs"]["pointmaze-medium-navigate-v0"]["data"].__setitem__("episods", 3),
     "envs.pointmaze-medium-navigate-v0.data.episods", "unknown key 'episods'"),
    ("misspelt config field", lambda s: s["methods"]["gcbc"]["config"].__setitem__("stepz", 3),
     "methods.gcbc.config.stepz", "unknown field"),
    ("non-numeric w", lambda s: s["methods"]["gc_cfgrl"].__setitem__("w", [0, 1, "high"]), "methods.gc_cfgrl.w[2]",
     "must be a number, got 'high'"),
    ("empty seed list", lambda s: s.__setitem__("seeds", []), "seeds", "must not be empty"),
    ("wrong config type", lambda s: s["methods"]["gcbc"]["config"].__setitem__("steps", "many"),
     "methods.gcbc.config.steps", "must be an integer"),
    ("w on unguided method", lambda s: s["methods"]["gcbc"].__setitem__("w", [1]), "methods.gcbc.w",
     "takes no guidance weight"),
    ("max over test refused", lambda s: s["methods"]["gc_cfgrl"].__setitem__("select", {"type": "max"}),
     "methods.gc_cfgrl.select.type", "biased upward"),
    ("fixed w outside the grid", lambda s: s["methods"]["gc_cfgrl"].__setitem__(
        "select", {"type": "fixed", "value": 7}), "methods.gc_cfgrl.select.value", "not among the w values"),
    ("unknown registry method", lambda s: s["methods"].__setitem__("awr_t3", {"method": "awrr"}),
     "methods.awr_t3.method", "unknown method 'awrr'"),
    ("method env not in the spec", lambda s: s["methods"]["gcbc"].__setitem__("envs", ["cheetah-run"]),
     "methods.gcbc.envs", "'cheetah-run' is not one of the spec's envs"),
    ("goal-conditioned method on a reward env", lambda s: s["envs"].__setitem__(
        "cheetah-run", {"data": {"source": "generate", "episodes": 2}}), "methods.gc_cfgrl",
     "cannot train on 'cheetah-run'"),
]


def test_method_envs_restrict_training_and_evaluation(tmp_path):
    def change(s):
        s["envs"]["cheetah-run"] = {"data": {"source": "generate", "episodes": 2}}
        for entry in s["methods"].values():
            entry["envs"] = ["pointmaze-medium-navigate-v0"]
        s["methods"]["awr"] = {"envs": ["cheetah-run"], "config": {"steps": 10}}
    cells = load_spec(write(tmp_path, _mutated(change))).cells()
    assert {(c[1], c[2]) for c in cells} == {("gcbc", "pointmaze-medium-navigate-v0"),
                                             ("gc_cfgrl", "pointmaze-medium-navigate-v0"), ("awr", "cheetah-run")}
    assert len(cells) == 2 * (1 + 3 + 1)


def test_validation_rule_adds_validation_cells(tmp_path):
    spec = _mutated(lambda s: s["methods"]["gc_cfgrl"].__setitem__("select", {"type": "validation",
                                                                             "on": "episodes"}))
    cells = load_spec(write(tmp_path, spec)).cells()
    assert sum(c[0] == "validation" for c in cells) == 2 * 3  # gc_cfgrl only: 2 seeds x 3 w
    assert ("validation", "gc_cfgrl", "pointmaze-medium-navigate-v0", 0, "2.5") in cells


@pytest.mark.parametrize("label, change, field, fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_spec_is_rejected_with_one_line(tmp_path, label, change, field, fragment):
    assert_spec_error(write(tmp_path, _mutated(change)), field, fragment)


def test_bare_on_key_is_read_as_on_not_true(tmp_path):
    text = yaml.safe_dump(GOOD).replace("gc_cfgrl:\n", "gc_cfgrl:\n    select: {type: validation, on: episodes}\n")
    path = tmp_path / "on.yaml"
    path.write_text(text)
    assert "on: episodes" in text  # YAML 1.1 reads this bare key as the boolean true
    assert load_spec(path).methods["gc_cfgrl"].select == SelectRule("validation", on="episodes")


def test_paper_specs_dry_run_through_snakemake(tmp_path):
    # jobs = training runs + one evaluation job per checkpoint (same number) + data jobs + cells, report, all:
    # exorl 504 + 504 + 9 envs + 4 ExORL domains + 3; singletask 504 + 504 + 9 + 3; gc 384 + 384 + 8 + 3
    for name, jobs in [("paper-exorl", 1024), ("paper-ogbench-singletask", 1020), ("paper-ogbench-gc", 779)]:
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "-s", str(REPO / "Snakefile"),
                               "--directory", str(tmp_path), "--configfile", str(REPO / "specs" / f"{name}.yaml")],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        total = [ln for ln in proc.stdout.splitlines() if ln.startswith("total")]
        assert total and int(total[0].split()[-1]) == jobs, (name, total)


def test_snakemake_stops_before_any_job_with_the_one_line_error(tmp_path):
    path = write(tmp_path, _mutated(lambda s: s["methods"]["gc_cfgrl"].__setitem__("w", ["x"])))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "-s", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "--config", f"spec={path}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert lines == [f"error: {path}: methods.gc_cfgrl.w[0]: must be a number, got 'x'"], proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("text, message", [("", "(top level): the file is empty"),
                                           ("- name: x\n", "(top level): must be a mapping"),
                                           ("name: x\n\tseeds: [0]\n", "line 2")])
def test_snakemake_names_the_file_of_a_spec_that_is_not_yaml_at_all(tmp_path, text, message):
    """Through `--config spec=FILE` the suite reads the file and names it. (Through `--configfile FILE` Snakemake
    parses it in its own command line, before the Snakefile runs, and its message names no file: a limitation
    the README states; `cfgrl check-spec FILE` gives the suite's line.)"""
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "-s", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path), "--config", f"spec={path}"],
                          capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith(f"error: {path}: {message}"), proc.stderr


def test_cli_check_spec_reports_the_error(tmp_path):
    path = write(tmp_path, _mutated(lambda s: s.__setitem__("seeds", [])))
    proc = subprocess.run([sys.executable, "-m", "cfgrl", "check-spec", str(path)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {path}: seeds: must not be empty"


def test_shipped_specs_are_valid():
    for path in sorted((REPO / "specs").glob("*.yaml")):
        load_spec(path)


def test_default_spec_covers_both_halves_of_the_paper():

    spec = load_spec(REPO / "specs" / "default.yaml")
    kinds = {e.info.kind.name for e in spec.envs.values()}
    assert kinds == {"ogbench-goal", "dmc"}
    assert all(e.data["source"] == "generate" for e in spec.envs.values())  # offline
    registries = {entry.registry: list(entry.envs) for entry in spec.methods.values()}
    assert {"gc_cfgrl", "gcbc", "cfgrl", "awr"} <= set(registries)
    assert registries["cfgrl"] == registries["awr"] == ["cheetah-run"]
    assert spec.sweeps["awr"].select.type == "validation"  # T chosen on validation episodes
    assert spec.methods["cfgrl"].select.type == "validation"
