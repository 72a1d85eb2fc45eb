"""Writes tests/specs/bad/*.yaml: one broken spec per file, its first line `# expect: <field>: <fragment>`.

    python tests/specs/make_bad_specs.py
"""
import copy
from pathlib import Path

import yaml

OUT = Path(__file__).parent / "bad"
BASE = {
    "name": "bad",
    "seeds": [0, 1],
    "envs": {"pointmaze-medium-navigate-v0": {"data": {"source": "generate", "episodes": 2},
                                              "eval": {"episodes_per_task": 2}},
             "cheetah-run": {"data": {"source": "generate", "episodes": 2}}},
    "methods": {"gcbc": {"envs": ["pointmaze-medium-navigate-v0"], "config": {"steps": 10}},
                "gc_cfgrl": {"envs": ["pointmaze-medium-navigate-v0"], "w": [0, 1, 3],
                             "select": {"type": "fixed", "value": 3}, "config": {"steps": 10}},
                "awr_t3": {"method": "awr", "envs": ["cheetah-run"], "config": {"steps": 10, "temperature": 3.0}},
                "awr_t10": {"method": "awr", "envs": ["cheetah-run"], "config": {"steps": 10, "temperature": 10.0}}},
    "sweeps": {"awr": {"entries": ["awr_t3", "awr_t10"], "select": {"type": "validation", "on": "episodes"}}},
}
GC, DMC = "pointmaze-medium-navigate-v0", "cheetah-run"


def case(name, field, fragment, change=None, text=None):
    if text is None:
        spec = copy.deepcopy(BASE)
        change(spec)
        text = yaml.safe_dump(spec, sort_keys=False)
    (OUT / f"{name}.yaml").write_text(f"# expect: {field}: {fragment}\n{text}")


def put(path, value):
    def change(spec):
        d = spec
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return change


def drop(*path):
    def change(spec):
        d = spec
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]
    return change


OUT.mkdir(parents=True, exist_ok=True)
for f in OUT.glob("*.yaml"):
    f.unlink()
# --- YAML and top level
case("empty_file", "(top level)", "the file is empty", text="")
case("top_level_list", "(top level)", "must be a mapping", text="- name: bad\n- seeds: [0]\n")
case("tab_indented", "line 3", "tabs cannot indent YAML", text="name: bad\n\tseeds: [0]\n")
case("alias_loop", "(top level)", "alias loop", text="name: bad\nseeds: &s [0, *s]\nenvs: {}\nmethods: {}\n")
bomb = "x-a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"x-{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcde", "bcdef", strict=True))
case("alias_bomb", "(top level)", "expands to more than", text=bomb + "name: bad\nseeds: [0]\nenvs: {}\nmethods: {}\n")
case("missing_name", "name", "required field is missing", drop("name"))
case("name_dot", "name", "must be a folder name", put(["name"], "."))
case("name_dotdot", "name", "must be a folder name", put(["name"], ".."))
case("name_slash", "name", "must be a folder name", put(["name"], "a/b"))
case("unknown_top_key", "colour", "unknown key 'colour'", put(["colour"], "red"))
# --- seeds
case("seeds_empty", "seeds", "must not be empty", put(["seeds"], []))
case("seeds_duplicate", "seeds", "has duplicates", put(["seeds"], [0, 0]))
case("seed_negative", "seeds[0]", "must be at least 0", put(["seeds"], [-1]))
case("seed_too_big", "seeds[0]", "a seed must be in [0, 2^64)", put(["seeds"], [2**64]))
case("seed_string", "seeds[0]", "must be an integer", put(["seeds"], ["zero"]))
# --- envs
case("unknown_env", "envs.pointmaze-tiny-navigate-v0", "unknown env",
     put(["envs", "pointmaze-tiny-navigate-v0"], {"data": {"source": "generate"}}))
case("bad_data_source", f"envs.{GC}.data.source", "must be one of generate, download, local",
     put(["envs", GC, "data", "source"], "torrent"))
case("zero_episodes", f"envs.{GC}.data.episodes", "must be at least 1", put(["envs", GC, "data", "episodes"], 0))
case("misspelt_data_key", f"envs.{GC}.data.episods", "unknown key 'episods'",
     put(["envs", GC, "data", "episods"], 3))
case("no_generator", "envs.antmaze-large-navigate-v0.data.source", "no offline generator",
     put(["envs", "antmaze-large-navigate-v0"], {"data": {"source": "generate"}}))
case("task_out_of_range", f"envs.{GC}.eval.tasks", "task 6 > the env's 5 tasks",
     put(["envs", GC, "eval", "tasks"], [1, 6]))
case("task_duplicate", f"envs.{GC}.eval.tasks", "has duplicates", put(["envs", GC, "eval", "tasks"], [1, 1]))
case("zero_episodes_per_task", f"envs.{GC}.eval.episodes_per_task", "must be at least 1",
     put(["envs", GC, "eval", "episodes_per_task"], 0))
case("local_source_not_minari", f"envs.{DMC}.data.source", "'local' is for Minari datasets only",
     put(["envs", DMC, "data", "source"], "local"))
case("minari_generate", "envs.minari/mujoco/halfcheetah/medium-v0.data.source", "Minari datasets are not generated",
     put(["envs", "minari/mujoco/halfcheetah/medium-v0"], {"data": {"source": "generate"}}))
case("data_seed_too_big", f"envs.{GC}.data.seed", "must be in [0, 2^32)", put(["envs", GC, "data", "seed"], 2**40))
# --- methods
case("unknown_method", "methods.foo", "unknown method 'foo'", put(["methods", "foo"], {}))
case("bad_method_name", "methods.gc-cfgrl", "method names may use letters, digits and _",
     put(["methods", "gc-cfgrl"], {"method": "gcbc"}))
case("unknown_registry_name", "methods.awr_t3.method", "unknown method 'awrr'",
     put(["methods", "awr_t3", "method"], "awrr"))
case("guided_without_w", "methods.gc_cfgrl.w", "required for guided method", drop("methods", "gc_cfgrl", "w"))
case("w_on_unguided", "methods.gcbc.w", "takes no guidance weight", put(["methods", "gcbc", "w"], [1]))
case("w_nan", "methods.gc_cfgrl.w[1]", "must be a finite number",
     text=yaml.safe_dump(BASE, sort_keys=False).replace("- 1\n    - 3", "- .nan\n    - 3"))
case("w_inf", "methods.gc_cfgrl.w[2]", "must be a finite number",
     text=yaml.safe_dump(BASE, sort_keys=False).replace("- 1\n    - 3", "- 1\n    - .inf"))
case("w_duplicate", "methods.gc_cfgrl.w[2]", "duplicate guidance weight", put(["methods", "gc_cfgrl", "w"], [0, 1, 1]))
case("w_empty", "methods.gc_cfgrl.w", "must not be empty", put(["methods", "gc_cfgrl", "w"], []))
case("w_string", "methods.gc_cfgrl.w[0]", "must be a number", put(["methods", "gc_cfgrl", "w"], ["high"]))
case("unknown_config_field", "methods.gcbc.config.stepz", "unknown field",
     put(["methods", "gcbc", "config", "stepz"], 3))
case("config_wrong_type", "methods.gcbc.config.steps", "must be an integer",
     put(["methods", "gcbc", "config", "steps"], "many"))
for field, value, fragment in [
        ("steps", 0, "must be in [1, 1000000000]"), ("steps", -5, "must be in [1, 1000000000]"),
        ("batch_size", 10**9, "must be in [1, 1000000]"), ("lr", 0.0, "must be in (0, 1]"),
        ("lr", -1e-3, "must be in (0, 1]"),
        ("flow_steps", 0, "must be in [1, 10000]"), ("log_every", 0, "must be in [1, 1000000000]"),
        ("checkpoint_every", 0, "must be in [1, 1000000000]"), ("hidden", [], "must not be empty"),
        ("hidden", [64, 0], "widths must be in [1, 65536]"), ("null_goal_prob", 1.5, "must be in [0, 1]"),
        ("geometric_discount", 1.0, "must be in (0, 1)"), ("activation", "swish", "must be one of"),
        ("init", "kaiming", "must be one of 'parity', 'torch'"), ("arch", "jax", "must be one of 'ogbench', 'exorl'"),
        ("precision", "fp16", "must be one of 'fp32', 'bf16'"),
        ("device", "gpu", "must be auto, cpu, cuda, cuda:<index> or mps")]:
    tag = "".join(ch if ch.isalnum() else "_" for ch in str(value).replace("-", "minus"))
    case(f"config_{field}_{tag}", f"methods.gc_cfgrl.config.{field}", fragment,
         put(["methods", "gc_cfgrl", "config", field], value))
case("label_scheme_unknown", "methods.cfgrl.config.label_scheme", "must be one of 'dropout', 'filtered'",
     put(["methods", "cfgrl"], {"envs": [DMC], "w": [1], "config": {"label_scheme": "quantiles"}}))
case("std_mode_unknown", "methods.awr_t3.config.std_mode", "must be one of 'fixed', 'learned'",
     put(["methods", "awr_t3", "config", "std_mode"], "adaptive"))
case("method_env_unknown", "methods.gcbc.envs", "'walker-run' is not one of the spec's envs",
     put(["methods", "gcbc", "envs"], ["walker-run"]))
case("gc_method_on_reward_env", "methods.gcbc", "goal-conditioned method cannot train on 'cheetah-run'",
     put(["methods", "gcbc", "envs"], [DMC]))
case("reward_method_on_gc_env", "methods.awr_t3", "reward-based method cannot train on",
     put(["methods", "awr_t3", "envs"], [GC]))
# --- selection rules
case("select_max", "methods.gc_cfgrl.select.type", "winner's curse",
     put(["methods", "gc_cfgrl", "select"], {"type": "max"}))
case("select_unknown_type", "methods.gc_cfgrl.select.type", "unknown rule type 'median'",
     put(["methods", "gc_cfgrl", "select"], {"type": "median"}))
case("select_fixed_not_in_grid", "methods.gc_cfgrl.select.value", "is not among the w values",
     put(["methods", "gc_cfgrl", "select"], {"type": "fixed", "value": 7}))
case("select_fixed_without_value", "methods.gc_cfgrl.select.value", "required for a fixed rule",
     put(["methods", "gc_cfgrl", "select"], {"type": "fixed"}))
case("select_validation_without_on", "methods.gc_cfgrl.select.on", "must be 'seeds' or 'episodes'",
     put(["methods", "gc_cfgrl", "select"], {"type": "validation"}))
case("select_on_test", "methods.gc_cfgrl.select.on", "winner's curse",
     put(["methods", "gc_cfgrl", "select"], {"type": "validation", "on": "test"}))
case("select_seeds_missing", "methods.gc_cfgrl.select.seeds", "needs the extra training seeds",
     put(["methods", "gc_cfgrl", "select"], {"type": "validation", "on": "seeds"}))
case("select_seeds_overlap", "methods.gc_cfgrl.select.seeds", "are reported seeds too",
     put(["methods", "gc_cfgrl", "select"], {"type": "validation", "on": "seeds", "seeds": [1, 5]}))
case("select_validation_with_value", "methods.gc_cfgrl.select.value", "only for fixed rules",
     put(["methods", "gc_cfgrl", "select"], {"type": "validation", "on": "episodes", "value": 3}))
case("select_budget_without_divergence", "methods.gc_cfgrl.select.divergence", "required for a budget rule",
     put(["methods", "gc_cfgrl", "select"], {"type": "budget"}))
case("select_budget_negative", "methods.gc_cfgrl.select.divergence", "must be a finite number >= 0",
     put(["methods", "gc_cfgrl", "select"], {"type": "budget", "divergence": -0.1}))
case("select_budget_unknown_measure", "methods.gc_cfgrl.select.measure", "must be one of",
     put(["methods", "gc_cfgrl", "select"], {"type": "budget", "divergence": 0.2, "measure": "wasserstein"}))
case("select_budget_with_value", "methods.gc_cfgrl.select.value", "not for a budget rule",
     put(["methods", "gc_cfgrl", "select"], {"type": "budget", "divergence": 0.2, "value": 3}))
case("select_budget_kl_on_temperature", "sweeps.awr.select.measure", "use 'data'",
     put(["sweeps", "awr", "select"], {"type": "budget", "divergence": 0.2, "measure": "kl"}))
case("select_fixed_with_divergence", "methods.gc_cfgrl.select.divergence", "only for budget rules",
     put(["methods", "gc_cfgrl", "select"], {"type": "fixed", "value": 3, "divergence": 0.2}))
case("select_on_unguided", "methods.gcbc.select", "`sweeps` entry",
     put(["methods", "gcbc", "select"], {"type": "fixed", "value": 1}))
# --- sweeps
case("sweep_unknown_entry", "sweeps.awr.entries", "unknown method entry 'awr_t99'",
     put(["sweeps", "awr", "entries"], ["awr_t3", "awr_t99"]))
case("sweep_shared_knob", "sweeps.awr.entries", "two entries share temperature",
     put(["methods", "awr_t10", "config", "temperature"], 3.0))
case("sweep_name_clash", "sweeps.gcbc", "clashes with the method entry 'gcbc'",
     lambda s: s["sweeps"].__setitem__("gcbc", s["sweeps"].pop("awr")))
# --- eval, analysis, limits
case("validation_seed_is_test_seed", "eval.validation_seed", "the validation episodes would replay the reported ones",
     put(["eval"], {"seed": 5, "validation_seed": 5}))
case("eval_seed_too_big", "eval.seed", "must be in [0, 2^32)", put(["eval"], {"seed": 2**33}))
case("bootstrap_resamples_zero", "analysis.bootstrap_resamples", "must be at least 100",
     put(["analysis"], {"bootstrap_resamples": 0}))
case("figure_formats_without_png", "analysis.figure_formats", "must include 'png'",
     put(["analysis"], {"figure_formats": ["pdf"]}))
case("figure_formats_unknown", "analysis.figure_formats[0]", "'jpg'",
     put(["analysis"], {"figure_formats": ["jpg", "png"]}))
case("ci_above_one", "analysis.ci", "must be less than 1", put(["analysis"], {"ci": 1.5}))
case("train_gpus_negative", "train.gpus", "must be at least 0", put(["train"], {"gpus": -1}))
case("train_seed_group_zero", "train.seed_group", "must be at least 1", put(["train"], {"seed_group": 0}))
case("train_share_critic_not_a_boolean", "train.share_critic", "must be true or false",
     put(["train"], {"share_critic": "yes"}))
case("train_seed_group_mode_batched", "train.seed_group_mode", "must be one of exact, vectorised, got 'batched'",
     put(["train"], {"seed_group_mode": "batched"}))
case("train_vectorised_in_bf16", "methods.gcbc.config.precision", "'bf16' does not train with",
     lambda spec: (spec.setdefault("train", {}).update(seed_group_mode="vectorised"),
                   spec["methods"]["gcbc"]["config"].update(precision="bf16")))
case("train_vectorised_with_shared_critic", "train.seed_group_mode", "does not combine with share_critic",
     put(["train"], {"seed_group_mode": "vectorised", "share_critic": True}))
case("too_many_cells", "limits.max_cells", "the spec plans 16 evaluation cells, more than the cap of 10",
     put(["limits"], {"max_cells": 10}))
print(len(list(OUT.glob("*.yaml"))), "broken specs")
