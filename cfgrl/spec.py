"""Experiment specs: load a YAML file, validate it before any job runs, fill in defaults.

Every error is one line that names the file and the field, e.g.
`specs/x.yaml: methods.gc_cfgrl.w[2]: must be a number, got 'high'`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import types
import typing
from dataclasses import asdict, fields
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from cfgrl.agent import TrainConfig
from cfgrl.envs import EnvInfo, resolve_env
from cfgrl.manipgen import PLAY_NOISE
from cfgrl.methods import METHODS, method_class

DEFAULTS: dict[str, Any] = {
    # base seeds of the reported (test) and the validation evaluation episodes; torch threads per eval job
    "eval": {"seed": 10_000, "validation_seed": 20_000, "threads": 1},
    "train": {"threads": 1},  # torch threads per training job
    "analysis": {"ci": 0.95, "bootstrap_resamples": 10_000, "bootstrap_seed": 0},
}
ENV_DEFAULTS: dict[str, Any] = {
    "data": {"episodes": 1000, "noise": 0.2, "seed": 0},  # noise: 0.2 (navigate recipe); play envs: PLAY_NOISE
    "eval": {"episodes_per_task": 10},  # tasks: all of the env's evaluation tasks unless given
}
_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "array": "a list",
               "object": "a mapping", "boolean": "true or false"}


class SpecError(ValueError):
    """An invalid spec; str() is a one-line message naming the file and the field."""


def schema() -> dict[str, Any]:
    return yaml.safe_load(resources.files("cfgrl").joinpath("schema.yaml").read_text())


def _field(path: typing.Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _schema_message(err: jsonschema.ValidationError) -> tuple[str, str]:
    """(field, message) for a jsonschema error, phrased for people."""
    path = list(err.absolute_path)
    v = err.validator
    if v == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        key = extra[0] if extra else "?"
        parent = _field(path)
        if path == ["methods"]:
            return _field([*path, key]), f"unknown method '{key}' (known: {', '.join(sorted(METHODS))})"
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        return _field([*path, key]), f"unknown key '{key}' in {parent} (allowed: {allowed})"
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return _field([*path, missing]), "required field is missing"
    if v == "type":
        want = err.validator_value
        want = " or ".join(_TYPE_NAMES.get(t, t) for t in (want if isinstance(want, list) else [want]))
        return _field(path), f"must be {want}, got {err.instance!r}"
    if v in ("minItems", "minProperties"):
        return _field(path), "must not be empty"
    if v == "enum":
        return _field(path), f"must be one of {err.validator_value}, got {err.instance!r}"
    return _field(path), err.message


def _merge(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(defaults)
    for k, v in given.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _check_value(cls: type, name: str, value: Any) -> str | None:
    """Return a complaint if `value` does not fit the dataclass field's annotation, else None."""
    hints = typing.get_type_hints(cls)
    hint = hints[name]
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for opt in options:
        origin = typing.get_origin(opt)
        if opt is type(None) and value is None:
            return None
        if opt is bool and isinstance(value, bool):
            return None
        if opt is int and isinstance(value, int) and not isinstance(value, bool):
            return None
        if opt is float and isinstance(value, int | float) and not isinstance(value, bool):
            return None
        if opt is str and isinstance(value, str):
            return None
        if origin is tuple and isinstance(value, list) and all(isinstance(x, int) for x in value):
            return None
    return f"must be {' or '.join(getattr(o, '__name__', str(o)) for o in options)}, got {value!r}"


def method_envs(spec: dict[str, Any], label: str) -> list[str]:
    """The envs a method entry runs on: its own `envs` list, else all the spec's envs (in the spec's order)."""
    own = spec["methods"][label].get("envs")
    return [e for e in spec["envs"] if own is None or e in own]


def registry_name(spec: dict[str, Any], label: str) -> str:
    """The registered method behind a spec's method entry (the entry's `method`, or its own name)."""
    return spec["methods"][label].get("method", label)


def label_class(spec: dict[str, Any], label: str) -> type:
    """The agent class behind a spec's method entry."""
    return method_class(registry_name(spec, label))


def method_config(spec: dict[str, Any], label: str) -> TrainConfig:
    """The method entry's config dataclass with the spec's overrides applied."""
    cls = label_class(spec, label).Config
    given = dict(spec["methods"][label].get("config") or {})
    values = {**asdict(cls()), **given}
    for f in fields(cls):
        if isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    return cls(**values)


def load_spec(path: str | Path) -> dict[str, Any]:
    """Read, validate and complete a spec. Raises SpecError (one line) on the first problem found."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise SpecError(f"{path}: file not found") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SpecError(f"{path}:{where} not valid YAML ({getattr(err, 'problem', err)})") from err
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: (top level): must be a mapping of spec fields")

    # YAML 1.1 reads a bare `on:` key as the boolean true
    for entry in [*(raw.get("methods") or {}).values(), *(raw.get("sweeps") or {}).values()]:
        if isinstance(entry, dict) and isinstance(entry.get("select"), dict) and True in entry["select"]:
            entry["select"]["on"] = entry["select"].pop(True)
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: (len(e.absolute_path), list(map(str, e.path))))
    if errors:
        field, message = _schema_message(errors[0])
        raise SpecError(f"{path}: {field}: {message}")

    spec = _merge(DEFAULTS, {k: v for k, v in raw.items() if not k.startswith("x-")})
    for env_name, env in spec["envs"].items():
        try:
            info = resolve_env(env_name)
        except KeyError as err:
            raise SpecError(f"{path}: envs.{env_name}: {err.args[0]}") from err
        problem = data_problem(info, env["data"])
        if problem:
            raise SpecError(f"{path}: envs.{env_name}.data{problem}")
        spec["envs"][env_name] = _merge(ENV_DEFAULTS, env)
        spec["envs"][env_name]["eval"].setdefault("tasks", list(range(1, info.num_tasks + 1)))
        if info.kind == "dmc":
            spec["envs"][env_name]["data"].setdefault("fit_iterations", 100)
        if info.kind == "minari":  # none of the generators' defaults apply
            spec["envs"][env_name]["data"] = copy.deepcopy(env["data"])
        data = spec["envs"][env_name]["data"]
        if data["source"] == "generate" and "play" in info.generators and "noise" not in env["data"]:
            data["noise"] = PLAY_NOISE  # the play recipe's own noise (OGBench's 0.1), not the navigate default
        if spec["envs"][env_name]["data"]["source"] == "generate" and not info.generators:
            raise SpecError(f"{path}: envs.{env_name}.data.source: no offline generator for this env")
        bad = [t for t in spec["envs"][env_name]["eval"]["tasks"] if t > info.num_tasks]
        if bad:
            raise SpecError(f"{path}: envs.{env_name}.eval.tasks: task {bad[0]} > {info.num_tasks} tasks")

    for label, entry in spec["methods"].items():
        name = entry.get("method", label)
        where = f"methods.{label}"
        if name not in METHODS:
            field = f"{where}.method" if "method" in entry else where
            raise SpecError(f"{path}: {field}: unknown method '{name}' (known: {', '.join(sorted(METHODS))})")
        cls = method_class(name)
        if "select" in entry:
            if not cls.guided:
                raise SpecError(f"{path}: {where}.select: only guided methods choose a w (choose among training "
                                "configurations with a `sweeps` entry)")
            problem = select_problem(entry["select"], entry.get("w"), spec["seeds"], "w")
            if problem:
                raise SpecError(f"{path}: {where}.select{problem}")
        if "w" in entry and not cls.guided:
            raise SpecError(f"{path}: {where}.w: method '{name}' takes no guidance weight")
        if cls.guided and "w" not in entry:
            raise SpecError(f"{path}: {where}.w: required for guided method '{name}'")
        if cls.guided and len(set(entry["w"])) != len(entry["w"]):
            raise SpecError(f"{path}: {where}.w: duplicate guidance weights")
        known = {f.name for f in fields(cls.Config)}
        for key, value in (entry.get("config") or {}).items():
            if key not in known:
                raise SpecError(f"{path}: {where}.config.{key}: unknown field (known: {', '.join(sorted(known))})")
            problem = _check_value(cls.Config, key, value)
            if problem:
                raise SpecError(f"{path}: {where}.config.{key}: {problem}")
        unknown = [e for e in entry.get("envs", []) if e not in spec["envs"]]
        if unknown:
            raise SpecError(f"{path}: {where}.envs: '{unknown[0]}' is not one of the spec's envs")
        for env_name in method_envs(spec, label):
            problem = batch_problem(cls, resolve_env(env_name))
            if problem:
                raise SpecError(f"{path}: {where}: {problem}" + ("" if "envs" in entry else
                                                                  " (or list the entry's own `envs`)"))
    spec.setdefault("sweeps", {})
    swept: dict[str, str] = {}
    for name, sweep in spec["sweeps"].items():
        problem = sweep_problem(spec, name, sweep)
        if problem:
            raise SpecError(f"{path}: sweeps.{name}{problem}")
        twice = [e for e in sweep["entries"] if e in swept]
        if twice:
            raise SpecError(f"{path}: sweeps.{name}.entries: '{twice[0]}' is already in sweep '{swept[twice[0]]}'")
        swept.update(dict.fromkeys(sweep["entries"], name))
    spec["_path"] = str(path)
    spec["_hash"] = spec_hash(raw)
    return spec


MINARI_DATA_KEYS = ("source", "path")  # the data settings a minari/ env takes


def data_problem(info: EnvInfo, data: dict[str, Any]) -> str | None:
    """Why an env's `data` settings (as given in the spec) are refused, as '.field: message' (None if fine)."""
    if info.kind == "minari":
        if data["source"] == "generate":
            return (".source: Minari datasets are not generated; use 'local' (a dataset under `path` or "
                    "MINARI_DATASETS_PATH) or 'download' (minari's remote)")
        extra = [k for k in data if k not in MINARI_DATA_KEYS]
        if extra:
            return f".{extra[0]}: not used by Minari datasets (allowed: {', '.join(MINARI_DATA_KEYS)})"
        return None
    if data["source"] == "local":
        return ".source: 'local' is for Minari datasets only (minari/<dataset id> envs)"
    if "path" in data:
        return ".path: only for Minari datasets (minari/<dataset id> envs)"
    return None


def knob_value(spec: dict[str, Any], label: str, knob: str) -> float:
    """The value of config field `knob` of a method entry, with the method's own default resolved (e.g. AWR's
    temperature None -> 10 or 3 by std_mode, through the class's `resolved_<knob>` hook)."""
    cls, cfg = label_class(spec, label), method_config(spec, label)
    resolve = getattr(cls, f"resolved_{knob}", None)
    value = resolve(cfg) if resolve is not None else getattr(cfg, knob)
    return float(value)


def sweep_problem(spec: dict[str, Any], name: str, sweep: dict[str, Any]) -> str | None:
    """Why a `sweeps` entry is refused, as '.field: message' (None when it is fine)."""
    if name in spec["methods"]:
        return f": name clashes with the method entry '{name}'"
    unknown = [e for e in sweep["entries"] if e not in spec["methods"]]
    if unknown:
        return f".entries: unknown method entry '{unknown[0]}'"
    registries = {registry_name(spec, e) for e in sweep["entries"]}
    if len(registries) > 1:
        return f".entries: entries of one method only (got {', '.join(sorted(registries))})"
    if len({tuple(method_envs(spec, e)) for e in sweep["entries"]}) > 1:
        return ".entries: the entries run on different envs (give them the same `envs`)"
    cls = label_class(spec, sweep["entries"][0])
    if cls.guided:
        return ".entries: guided methods choose w at test time; use the entry's own `select`"
    knob = sweep.get("knob", "temperature")
    if knob not in {f.name for f in fields(cls.Config)}:
        return f".knob: '{knob}' is not a config field of method '{registries.pop()}'"
    values = [knob_value(spec, e, knob) for e in sweep["entries"]]
    if len(set(values)) != len(values):
        return f".entries: two entries share {knob} = {values} (one value per entry)"
    return select_problem(sweep["select"], values, spec["seeds"], knob, ".select")


SELECTION_TYPES = ("fixed", "validation")


def select_problem(rule: dict[str, Any], grid: list[float] | None, seeds: list[int], knob: str = "w",
                   prefix: str = "") -> str | None:
    """Why a `select` rule over `grid` (the values of `knob`) is refused, as '<prefix>.field: message' (None when
    it is fine). seeds: the reported training seeds (validation seeds must be others)."""
    kind = rule["type"]
    if kind not in SELECTION_TYPES:
        return (f"{prefix}.type: {kind!r} is refused: choosing {knob} by the best result on the reported episodes "
                "is biased upward (winner's curse); use {type: fixed, value: V} or {type: validation, on: episodes}")
    if kind == "fixed":
        if "value" not in rule:
            return f"{prefix}.value: required for a fixed rule"
        if grid is not None and not any(float(rule["value"]) == float(v) for v in grid):
            return f"{prefix}.value: {rule['value']} is not among the {knob} values {grid}"
        return None
    on = rule.get("on")
    if on == "episodes":
        if "seeds" in rule:
            return f"{prefix}.seeds: only for 'on: seeds' (episodes: the reported checkpoints on other episodes)"
        return None
    if on == "seeds":
        if not rule.get("seeds"):
            return f"{prefix}.seeds: 'on: seeds' needs the extra training seeds to choose on, e.g. seeds: [8, 9]"
        shared = sorted(set(rule["seeds"]) & set(seeds))
        if shared:
            return f"{prefix}.seeds: {shared} are reported seeds too; validation seeds must be others"
        return None
    return (f"{prefix}.on: must be 'episodes' (same checkpoints, separate validation episodes) or 'seeds' "
            f"(extra training seeds), got {on!r}")


def batch_problem(cls: type, env: EnvInfo) -> str | None:
    """Why a method cannot train on an env's data (None when it can)."""
    needs = getattr(cls, "batch_kind", "goals" if cls.goal_conditioned else "transitions")
    if needs in ("goals", "subgoals") and not env.goal_conditioned:
        return f"goal-conditioned method cannot train on '{env.name}' (no goals; use a *-navigate-v0 env)"
    if needs == "transitions" and env.goal_conditioned:
        return f"reward-based method cannot train on '{env.name}' (no rewards; use a *-singletask-v0 env)"
    return None


def job_hashes(spec: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Content hashes of what each kind of job reads from the spec, for Snakemake `params`, so that editing a
    spec reruns exactly the jobs it touched: {'data': {env: h}, 'train': {(method, env): h}, 'eval': {env: h}}.
    Training depends on the method entry (its registry name and config) and the env's data settings;
    evaluation on the env's eval settings and the eval seeds (the checkpoint is an input already)."""
    envs, methods = spec["envs"], spec["methods"]
    data = {env: spec_hash({"env": env, "data": envs[env]["data"]}) for env in envs}
    train = {f"{m}|{env}": spec_hash({"method": entry.get("method", m), "config": entry.get("config") or {},
                                      "data": data[env], "threads": spec["train"]["threads"]})
             for m, entry in methods.items() for env in method_envs(spec, m)}
    evals = {env: spec_hash({"eval": envs[env]["eval"], "seeds": {k: spec["eval"][k] for k in ("seed",
                                                                                      "validation_seed")}})
             for env in envs}
    return {"data": data, "train": train, "eval": evals}


def spec_hash(raw: dict[str, Any]) -> str:
    """Short content hash of a spec (provenance in every result file)."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()[:16]


def w_label(w: float | None) -> str:
    """File-name label of a guidance weight: 1.5 -> '1.5', 3 -> '3', None (unguided) -> 'none'."""
    if w is None:
        return "none"
    return f"{float(w):g}"


def validation_seeds(spec: dict[str, Any], rule: dict[str, Any] | None) -> list[int]:
    """The training seeds whose validation cells a `select` rule needs ([] for none)."""
    if not rule or rule["type"] != "validation":
        return []
    return list(rule["seeds"]) if rule.get("on") == "seeds" else list(spec["seeds"])


def eval_cells(spec: dict[str, Any]) -> list[tuple[str, str, str, int, str]]:
    """All (split, method, env, seed, w label) evaluation cells of a spec. split is 'test' (reported, the spec's
    seeds) or 'validation' (only where a setting is chosen on validation cells: the reported seeds on separate
    episodes, or extra training seeds that are never reported)."""
    rules = {m: e.get("select") for m, e in spec["methods"].items()}
    for sweep in spec.get("sweeps", {}).values():
        rules.update({m: sweep["select"] for m in sweep["entries"]})
    cells = []
    for method, entry in spec["methods"].items():
        labels = [w_label(w) for w in entry["w"]] if "w" in entry else [w_label(None)]
        for split, seeds in (("test", spec["seeds"]), ("validation", validation_seeds(spec, rules[method]))):
            for env in method_envs(spec, method):
                for seed in seeds:
                    cells.extend((split, method, env, seed, lab) for lab in labels)
    return cells
