"""Reading a spec: the YAML file (size and alias guards, phrased schema errors), its defaults, and the section
builders that turn it into the typed `Spec` (cfgrl.pipeline.spec.model), calling the value checks
(cfgrl.pipeline.spec.checks) on the way. Defaults live in one place: DEFAULTS and ENV_DEFAULTS here, each
method's in its config dataclass."""

from __future__ import annotations

import copy
import types
import typing
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from cfgrl.envs.registry import resolve_env
from cfgrl.pipeline.spec.checks import (
    EPISODE_SEED_LIMIT,
    FieldError,
    check_at_steps,
    check_seeds,
    knob_value,
    method_config,
    select_problem,
    w_grid,
)
from cfgrl.pipeline.spec.model import (
    Analysis,
    EnvEntry,
    EvalSettings,
    MethodEntry,
    SelectRule,
    Spec,
    SpecError,
    Sweep,
    spec_hash,
)

DEFAULTS: dict[str, Any] = {
    # base seeds of the reported (test) and the validation evaluation episodes; cores per eval job (torch
    # threads, and above 1 as many simulator processes, one per cell at most)
    # at_steps: training steps whose snapshots are evaluated too (learning curves), beside the final model
    "eval": {"seed": 10_000, "validation_seed": 20_000, "threads": 1, "at_steps": []},
    # torch threads per training job; seeds trained per job (one process); seed_group_mode: 'exact' (members
    # stepped in turn, each bit for bit its solo run) or 'vectorised' (one batched update of all members); metric
    # sinks; share_critic: IQL-critic entries of an env whose critics train alike train in one job on one critic
    "train": {"threads": 1, "seed_group": 1, "seed_group_mode": "exact", "logging": ["csv"], "gpus": 0,
              "share_critic": False},
    # figure_formats: the files each figure is written as (png always: report.md shows the PNGs)
    "analysis": {"ci": 0.95, "bootstrap_resamples": 10_000, "bootstrap_seed": 0, "figure_formats": ["png", "pdf"]},
    "limits": {"max_cells": 20_000},  # evaluation cells a spec may plan (raise it explicitly for bigger grids)
}
ENV_DEFAULTS: dict[str, Any] = {  # beside the env's generator's own defaults (EnvInfo.generator_defaults)
    "data": {"episodes": 1000, "seed": 0},
    "eval": {"episodes_per_task": 10},  # tasks: all of the env's evaluation tasks unless given
}
MAX_YAML_NODES = 100_000  # a spec, its aliases expanded, may hold this many values
_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "array": "a list",
               "object": "a mapping", "boolean": "true or false"}
_PATTERN_TEXT = {  # what a `pattern` in the schema means, for people
    "name": "must be a folder name of letters, digits, '_', '-' and '.' (not starting with '.')",
    "methods": "method names may use letters, digits and _",
    "sweeps": "sweep names may use letters, digits and _",
}


# --------------------------------------------------------------------------------------------------- reading YAML


def schema() -> dict[str, Any]:
    """The JSON schema of a spec's structure (schema.yaml beside this file)."""
    return yaml.safe_load(resources.files("cfgrl.pipeline.spec").joinpath("schema.yaml").read_text())


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError as err:
        raise SpecError(f"{path}: file not found") from err
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"{path}: cannot read ({type(err).__name__})") from err
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        if "\t" in text and ("tab" in str(err).lower() or "\\t" in str(err) or "\t" in str(err)):
            problem = f"{problem} (tabs cannot indent YAML; use spaces)"
        raise SpecError(f"{path}:{where} not valid YAML ({problem})") from err
    if raw is None:
        raise SpecError(f"{path}: (top level): the file is empty; a spec is a mapping of fields (name, seeds, envs, "
                        "methods, ...)")
    _check_size(raw, path)
    return raw


def _check_size(raw: Any, path: Path) -> None:
    """Refuse a YAML graph that refers to itself (an alias loop) or whose aliases expand to more than
    MAX_YAML_NODES values (an alias bomb), without expanding it: sizes are summed over shared nodes by identity."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, dict | list):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise SpecError(f"{path}: (top level): a YAML alias refers to a block that contains it (an alias loop)")
        active.add(key)
        children = node.values() if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_YAML_NODES:
                raise SpecError(f"{path}: (top level): the spec expands to more than {MAX_YAML_NODES} values "
                                "(aliases included); is an alias repeated by mistake?")
        active.discard(key)
        sizes[key] = total
        return total

    size(raw)


def _field(path: typing.Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _schema_message(err: jsonschema.ValidationError) -> tuple[str, str]:
    """(field, message) for a jsonschema error, phrased for people and naming the bad key at its own path."""
    path = list(err.absolute_path)
    v = err.validator
    if v == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        key = extra[0] if extra else "?"
        if path == ["methods"]:
            from cfgrl.methods import METHODS

            return _field([*path, key]), f"unknown method '{key}' (known: {', '.join(sorted(METHODS))})"
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        return _field([*path, key]), f"unknown key '{key}' (allowed here: {allowed})"
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return _field([*path, missing]), "required field is missing"
    if v == "type":
        want = err.validator_value
        want = " or ".join(_TYPE_NAMES.get(t, t) for t in (want if isinstance(want, list) else [want]))
        return _field(path), f"must be {want}, got {err.instance!r}"
    if v in ("minItems", "minProperties"):
        return _field(path), "must not be empty"
    if v == "uniqueItems":
        return _field(path), f"has duplicates: {err.instance!r}"
    if v == "enum":
        return _field(path), f"must be one of {', '.join(map(str, err.validator_value))}, got {err.instance!r}"
    if v in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        word = {"minimum": "at least", "exclusiveMinimum": "more than", "maximum": "at most",
                "exclusiveMaximum": "less than"}[v]
        return _field(path), f"must be {word} {err.validator_value}, got {err.instance!r}"
    if v == "pattern":
        where = str(path[-1]) if path else ""
        text = _PATTERN_TEXT.get(where, "has a form that is not allowed")
        if "propertyNames" in err.schema_path:  # a bad name of a mapping key: named at its own path
            return _field([*path, err.instance]), f"{text}, got {err.instance!r}"
        return _field(path), f"{text}, got {err.instance!r}"
    return _field(path), err.message


# ------------------------------------------------------------------------------------------------ loading a spec


def _merge(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(defaults)
    for k, v in given.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_spec(path: str | Path) -> Spec:
    """Read, validate and complete a spec. Raises SpecError (one line naming file and field) on the first problem
    found, before anything is written."""
    path = Path(path)
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: (top level): must be a mapping of spec fields (name, seeds, envs, methods, ...), "
                        f"got {type(raw).__name__}")
    # YAML 1.1 reads a bare `on:` key as the boolean true
    for entry in [*(raw.get("methods") or {}).values(), *(raw.get("sweeps") or {}).values()]:
        if isinstance(entry, dict) and isinstance(entry.get("select"), dict) and True in entry["select"]:
            entry["select"]["on"] = entry["select"].pop(True)
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: (len(e.absolute_path), list(map(str, e.path))))
    if errors:
        field, message = _schema_message(errors[0])
        raise SpecError(f"{path}: {field}: {message}")
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    try:
        return _build(raw, path)
    except FieldError as err:
        raise SpecError(f"{path}: {err.field}: {err.message}") from None


def _build(raw: dict[str, Any], path: Path) -> Spec:
    given = _merge(DEFAULTS, raw)
    name = raw["name"]
    if name.startswith("."):
        raise FieldError("name", f"{_PATTERN_TEXT['name']}, got {name!r}")
    seeds = check_seeds(raw["seeds"], "seeds")
    eval_settings = _eval(given["eval"])
    if "png" not in given["analysis"]["figure_formats"]:
        raise FieldError("analysis.figure_formats", f"must include 'png' (report.md shows the PNG figures), "
                          f"got {given['analysis']['figure_formats']}")
    analysis = Analysis(float(given["analysis"]["ci"]), int(given["analysis"]["bootstrap_resamples"]),
                        int(given["analysis"]["bootstrap_seed"]), tuple(given["analysis"]["figure_formats"]))
    envs = {env: _env(env, entry) for env, entry in raw["envs"].items()}
    methods = {label: _method(label, entry, envs, seeds) for label, entry in raw["methods"].items()}
    sweeps: dict[str, Sweep] = {}
    swept: dict[str, str] = {}
    for sweep_name, sweep in (raw.get("sweeps") or {}).items():
        built = _sweep(sweep_name, sweep, methods, seeds)
        twice = [e for e in built.entries if e in swept]
        if twice:
            raise FieldError(f"sweeps.{sweep_name}.entries", f"'{twice[0]}' is already in sweep '{swept[twice[0]]}'")
        swept.update(dict.fromkeys(built.entries, sweep_name))
        sweeps[sweep_name] = built
    check_at_steps(eval_settings.at_steps, methods)
    if given["train"]["seed_group_mode"] == "vectorised":
        if given["train"]["share_critic"]:
            raise FieldError("train.seed_group_mode", "'vectorised' does not combine with share_critic: true (a "
                              "shared critic's job steps several entries per seed); use one or the other")
        for label, entry in methods.items():
            if entry.config.precision != "fp32":
                raise FieldError(f"methods.{label}.config.precision", f"'{entry.config.precision}' does not train "
                                  "with train.seed_group_mode: vectorised (autocast inside vmap fails in the "
                                  "backward pass); use fp32 or seed_group_mode: exact")
    logging = tuple(dict.fromkeys(["csv", *given["train"]["logging"]]))
    if "tensorboard" in logging:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise FieldError("train.logging", "'tensorboard' needs the tensorboard package (pip install "
                              "tensorboard); or leave it out: metrics.csv is always written") from None
    spec = Spec(name=name, path=str(path), hash=spec_hash(raw), seeds=seeds, envs=types.MappingProxyType(envs),
                methods=types.MappingProxyType(methods), sweeps=types.MappingProxyType(sweeps), eval=eval_settings,
                train_threads=int(given["train"]["threads"]), seed_group=int(given["train"]["seed_group"]),
                seed_group_mode=str(given["train"]["seed_group_mode"]),
                share_critic=bool(given["train"]["share_critic"]),
                train_gpus=int(given["train"]["gpus"]), train_logging=logging, analysis=analysis,
                max_cells=int(given["limits"]["max_cells"]),
                raw=types.MappingProxyType(raw))
    n = len(spec.cells()) + len(spec.snapshot_cells())
    if n > spec.max_cells:
        raise FieldError("limits.max_cells", f"the spec plans {n} evaluation cells, more than the cap of "
                          f"{spec.max_cells}; shrink the grid or raise the cap (limits: {{max_cells: {n}}})")
    return spec


def _eval(settings: dict[str, Any]) -> EvalSettings:
    for key in ("seed", "validation_seed"):
        if not 0 <= settings[key] < EPISODE_SEED_LIMIT:
            raise FieldError(f"eval.{key}", f"must be in [0, 2^32), got {settings[key]}")
    if settings["seed"] == settings["validation_seed"]:
        raise FieldError("eval.validation_seed", f"equals eval.seed ({settings['seed']}): the validation episodes "
                          "would replay the reported ones, and w or T would be chosen on the reported episodes")
    steps = settings["at_steps"]
    if len(set(steps)) != len(steps):
        raise FieldError("eval.at_steps", f"has duplicates: {steps}")
    return EvalSettings(int(settings["seed"]), int(settings["validation_seed"]), int(settings["threads"]),
                        tuple(sorted(steps)))


def _env(name: str, entry: dict[str, Any]) -> EnvEntry:
    where = f"envs.{name}"
    try:
        info = resolve_env(name)
    except KeyError as err:
        raise FieldError(where, err.args[0]) from None
    problem = info.kind.data_problem(entry["data"])
    if problem:
        field, _, message = problem.partition(": ")
        raise FieldError(f"{where}.data{field}", message)
    if not info.kind.takes_data_defaults:  # the settings as given (Minari: a dataset id, a source, a path)
        data = copy.deepcopy(entry["data"])
    else:
        generated = entry["data"]["source"] == "generate"
        data = _merge({**ENV_DEFAULTS["data"], **(info.generator_defaults() if generated else {})}, entry["data"])
        if data["source"] == "generate" and not info.generators:
            raise FieldError(f"{where}.data.source", "no offline generator for this env (use source: download)")
        if not 0 <= data["seed"] < EPISODE_SEED_LIMIT:
            raise FieldError(f"{where}.data.seed", f"must be in [0, 2^32), got {data['seed']}")
    ev = _merge(ENV_DEFAULTS["eval"], entry.get("eval") or {})
    tasks = ev.get("tasks", list(range(1, info.num_tasks + 1)))
    if len(set(tasks)) != len(tasks):
        raise FieldError(f"{where}.eval.tasks", f"has duplicates: {tasks}")
    bad = [t for t in tasks if t > info.num_tasks]
    if bad:
        raise FieldError(f"{where}.eval.tasks", f"task {bad[0]} > the env's {info.num_tasks} tasks")
    return EnvEntry(name, info, types.MappingProxyType(data), tuple(tasks), int(ev["episodes_per_task"]))


def _method(label: str, entry: dict[str, Any], envs: dict[str, EnvEntry], seeds: tuple[int, ...]) -> MethodEntry:
    from cfgrl.methods import METHODS, method_class

    where = f"methods.{label}"
    registry = entry.get("method", label)
    if registry not in METHODS:
        field = f"{where}.method" if "method" in entry else where
        raise FieldError(field, f"unknown method '{registry}' (known: {', '.join(sorted(METHODS))})")
    cls = method_class(registry)
    overrides = dict(entry.get("config") or {})
    config = method_config(cls, overrides, f"{where}.config")
    w = None
    if cls.guided:
        if "w" not in entry:
            raise FieldError(f"{where}.w", f"required for guided method '{registry}'")
        w = w_grid(entry["w"], f"{where}.w")
    elif "w" in entry:
        raise FieldError(f"{where}.w", f"method '{registry}' takes no guidance weight")
    select = None
    if "select" in entry:
        if not cls.guided:
            raise FieldError(f"{where}.select", "only guided methods choose a w (choose among training "
                              "configurations with a `sweeps` entry)")
        problem = select_problem(entry["select"], list(w or ()), list(seeds), "w")
        if problem:
            field, _, message = problem.partition(": ")
            raise FieldError(f"{where}.select{field}", message)
        select = SelectRule.parse(entry["select"])
    own = entry.get("envs")
    unknown = [e for e in own or () if e not in envs]
    if unknown:
        raise FieldError(f"{where}.envs", f"'{unknown[0]}' is not one of the spec's envs")
    runs_on = tuple(e for e in envs if own is None or e in own)
    for env in runs_on:
        problem = envs[env].info.kind.batch_problem(envs[env].info, cls.batch_kind)
        if problem:
            raise FieldError(where, problem + ("" if own else " (or list the entry's own `envs`)"))
    return MethodEntry(label, registry, cls, config, types.MappingProxyType(overrides), runs_on,
                       None if w is None else tuple(w), select)


def _sweep(name: str, sweep: dict[str, Any], methods: dict[str, MethodEntry], seeds: tuple[int, ...]) -> Sweep:
    where = f"sweeps.{name}"
    if name in methods:
        raise FieldError(where, f"name clashes with the method entry '{name}'")
    unknown = [e for e in sweep["entries"] if e not in methods]
    if unknown:
        raise FieldError(f"{where}.entries", f"unknown method entry '{unknown[0]}'")
    entries = [methods[e] for e in sweep["entries"]]
    registries = {e.registry for e in entries}
    if len(registries) > 1:
        raise FieldError(f"{where}.entries", f"entries of one method only (got {', '.join(sorted(registries))})")
    if len({e.envs for e in entries}) > 1:
        raise FieldError(f"{where}.entries", "the entries run on different envs (give them the same `envs`)")
    cls = entries[0].cls
    if cls.guided:
        raise FieldError(f"{where}.entries", "guided methods choose w at test time; use the entry's own `select`")
    knob = sweep.get("knob", "temperature")
    if knob not in {f.name for f in fields(cls.Config)}:
        raise FieldError(f"{where}.knob", f"'{knob}' is not a config field of method '{registries.pop()}'")
    values = {e.label: knob_value(cls, e.config, knob) for e in entries}
    if len(set(values.values())) != len(values):
        raise FieldError(f"{where}.entries", f"two entries share {knob} = {list(values.values())} (one value each)")
    problem = select_problem(sweep["select"], list(values.values()), list(seeds), knob)
    if problem:
        field, _, message = problem.partition(": ")
        raise FieldError(f"{where}.select{field}", message)
    return Sweep(name, tuple(sweep["entries"]), knob, types.MappingProxyType(values), SelectRule.parse(sweep["select"]))
