"""Experiment specs: a YAML file read, validated before any job runs and returned as a typed, frozen `Spec`.

Every error is one line that names the file and the field, e.g.
`specs/x.yaml: methods.gc_cfgrl.w[2]: must be a number, got 'high'`. Structure (keys and types) is checked by the
JSON schema (schema.yaml); values by the section builders below: numbers in range, enumerated settings among their
choices, seeds that fit every RNG, w grids whose values map to distinct cell files, selection rules that never look
at the reported episodes, validation episodes that can never be the reported ones, and a cap on the number of
cells (`limits.max_cells`). Defaults live in one place (DEFAULTS, ENV_DEFAULTS and each method's config dataclass).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from cfgrl.envs.registry import EnvInfo, resolve_env

if typing.TYPE_CHECKING:  # the method classes (and torch) load when a spec is built, not when this is imported
    from cfgrl.core.agent import Agent, TrainConfig

DEFAULTS: dict[str, Any] = {
    # base seeds of the reported (test) and the validation evaluation episodes; torch threads per eval job
    # at_steps: training steps whose snapshots are evaluated too (learning curves), beside the final model
    "eval": {"seed": 10_000, "validation_seed": 20_000, "threads": 1, "at_steps": []},
    # torch threads per training job; seeds trained per job (one process, members stepped in turn); metric sinks;
    # share_critic: IQL-critic entries of an env whose critics train alike train in one job on one critic per seed
    "train": {"threads": 1, "seed_group": 1, "logging": ["csv"], "gpus": 0, "share_critic": False},
    # figure_formats: the files each figure is written as (png always: report.md shows the PNGs)
    "analysis": {"ci": 0.95, "bootstrap_resamples": 10_000, "bootstrap_seed": 0, "figure_formats": ["png", "pdf"]},
    "limits": {"max_cells": 20_000},  # evaluation cells a spec may plan (raise it explicitly for bigger grids)
}
ENV_DEFAULTS: dict[str, Any] = {  # beside the env's generator's own defaults (EnvInfo.generator_defaults)
    "data": {"episodes": 1000, "seed": 0},
    "eval": {"episodes_per_task": 10},  # tasks: all of the env's evaluation tasks unless given
}
SEED_LIMIT = 2**64  # torch.manual_seed takes [0, 2^64); numpy's SeedSequence any non-negative integer
EPISODE_SEED_LIMIT = 2**32  # bases of the evaluation-episode seeds: one 32-bit word of their SeedSequence
MAX_YAML_NODES = 100_000  # a spec, its aliases expanded, may hold this many values
SELECTION_TYPES = ("fixed", "validation", "budget")
# budget rules: measure -> the cells column holding it (cfgrl.pipeline.evaluate.divergences)
DIVERGENCE_COLUMNS = {"mse": "distance_to_w0", "kl": "kl_to_w0", "data": "data_distance"}
SELECTING_ON_TEST = ("max", "best", "oracle", "test", "max_over_test", "evaluation", "reported")
MAX_OVER_TEST_IS_BIASED = (
    "selecting w (or the AWR temperature) by the best result on the reported (test) cells is biased upward: "
    "the maximum of several noisy estimates overestimates the performance of the setting it picks (winner's "
    "curse), the bias grows with the number of settings tried (so it favours the method with the larger grid), "
    "and the reported CI no longer covers the selected setting's true performance. Fix w in advance "
    "({type: fixed, value: ...}) or choose it on held-out cells ({type: validation, on: seeds | episodes})")
_TYPE_NAMES = {"integer": "an integer", "number": "a number", "string": "a string", "array": "a list",
               "object": "a mapping", "boolean": "true or false"}
_PATTERN_TEXT = {  # what a `pattern` in the schema means, for people
    "name": "must be a folder name of letters, digits, '_', '-' and '.' (not starting with '.')",
    "methods": "method names may use letters, digits and _",
    "sweeps": "sweep names may use letters, digits and _",
}


class SpecError(ValueError):
    """An invalid spec; str() is a one-line message naming the file and the field."""


# ------------------------------------------------------------------------------------------------- the typed spec


@dataclass(frozen=True)
class SelectRule:
    """How a reported setting is chosen, fixed before any result exists: 'fixed' at `value`, 'validation' on
    separate episodes of the reported checkpoints (`on` 'episodes') or on extra training seeds (`on` 'seeds',
    `seeds`), or 'budget': the largest setting whose mean divergence (`measure`, a DIVERGENCE_COLUMNS key) on
    held-out dataset states is at most `divergence` (no episode return is looked at)."""

    type: str
    value: float | None = None
    on: str | None = None
    seeds: tuple[int, ...] = ()
    divergence: float | None = None
    measure: str | None = None

    @classmethod
    def parse(cls, rule: Mapping[str, Any] | SelectRule, grid: list[float] | None = None,
              reported_seeds: list[int] | None = None, knob: str = "w") -> SelectRule:
        """A rule from its spec mapping, checked (ValueError '.field: message' otherwise); grid: the values of
        `knob` it chooses among; reported_seeds: the spec's seeds (validation seeds must be others)."""
        if isinstance(rule, SelectRule):
            return rule
        problem = select_problem(rule, grid, reported_seeds or [], knob, planning=reported_seeds is not None)
        if problem:
            raise ValueError(f"select rule {dict(rule)!r}: {problem.lstrip('.')}")
        budget = rule["type"] == "budget"
        return cls(rule["type"], float(rule["value"]) if "value" in rule else None, rule.get("on"),
                   tuple(rule.get("seeds") or ()), float(rule["divergence"]) if budget else None,
                   rule.get("measure", "mse") if budget else None)

    def text(self, knob: str = "w") -> str:
        if self.type == "fixed":
            return f"fixed {knob} = {self.value:g}"
        if self.type == "budget":
            return f"largest {knob} with mean {self.measure} divergence <= {self.divergence:g}"
        return f"chosen on validation {self.on}"


@dataclass(frozen=True)
class EnvEntry:
    name: str
    info: EnvInfo
    data: Mapping[str, Any]  # source, and the generator's or the source's settings (defaults filled in)
    tasks: tuple[int, ...]  # evaluation tasks
    episodes_per_task: int

    @property
    def eval_settings(self) -> dict[str, Any]:
        return {"episodes_per_task": self.episodes_per_task, "tasks": list(self.tasks)}


@dataclass(frozen=True)
class MethodEntry:
    label: str  # the spec's name for the entry (results/<spec>/train/<label>/...)
    registry: str  # the registered method behind it (cfgrl.methods)
    cls: type[Agent]
    config: TrainConfig  # the method's config dataclass with the entry's overrides
    overrides: Mapping[str, Any]  # the overrides as written (hashed into the training jobs)
    envs: tuple[str, ...]  # the envs it runs on
    w: tuple[float, ...] | None  # guidance weights (guided methods)
    select: SelectRule | None  # how its reported w is chosen (guided methods; None: the whole grid, unreported)

    @property
    def guided(self) -> bool:
        return self.cls.guided

    @property
    def cell_labels(self) -> tuple[str, ...]:
        """The cell-file label of each cell of one checkpoint: every w of the grid, or UNGUIDED_CELL."""
        return tuple(w_label(w) for w in self.w) if self.w is not None else (UNGUIDED_CELL,)


@dataclass(frozen=True)
class Sweep:
    name: str  # the reported row's name
    entries: tuple[str, ...]  # method entries, one knob value each
    knob: str  # the config field they differ in
    values: Mapping[str, float]  # entry -> its knob value (the method's default resolved)
    select: SelectRule


@dataclass(frozen=True)
class EvalSettings:
    seed: int  # base seed of the reported (test) episodes
    validation_seed: int  # base seed of the validation episodes
    threads: int  # torch threads per evaluation job
    at_steps: tuple[int, ...] = ()  # training steps whose snapshots are evaluated (test episodes) beside the final

    def base(self, split: str) -> int:
        return self.seed if split == "test" else self.validation_seed


@dataclass(frozen=True)
class Analysis:
    ci: float  # confidence level of every interval
    bootstrap_resamples: int  # resamples of the bootstrap statistics (aggregates across envs)
    bootstrap_seed: int
    figure_formats: tuple[str, ...]  # file types each figure is written as (DEFAULTS: png and pdf)


@dataclass(frozen=True)
class Spec:
    name: str
    path: str
    hash: str  # content hash of the spec (provenance in every result file)
    seeds: tuple[int, ...]  # reported training seeds
    envs: Mapping[str, EnvEntry]
    methods: Mapping[str, MethodEntry]
    sweeps: Mapping[str, Sweep]
    eval: EvalSettings
    train_threads: int
    seed_group: int  # seeds of one (method, env) trained in one process
    share_critic: bool  # IQL entries of an env whose critics train alike share one critic per seed (one job)
    train_gpus: int  # GPUs each training job asks for (Snakemake resource `gpu`: sbatch --gpus under SLURM)
    train_logging: tuple[str, ...]  # metric sinks: 'csv' (always) and optionally 'tensorboard'
    analysis: Analysis
    max_cells: int
    raw: Mapping[str, Any]  # the validated spec as written (x- blocks dropped), for hashing

    def sweep_of(self, label: str) -> Sweep | None:
        """The sweep a method entry belongs to (an entry belongs to at most one)."""
        return next((s for s in self.sweeps.values() if label in s.entries), None)

    def rule_of(self, label: str) -> SelectRule | None:
        """The rule that decides a method entry's reported setting: its sweep's, or its own."""
        sweep = self.sweep_of(label)
        return sweep.select if sweep is not None else self.methods[label].select

    def validation_seeds(self, label: str) -> tuple[int, ...]:
        """The training seeds whose validation cells an entry's rule needs (none without a validation rule)."""
        rule = self.rule_of(label)
        if rule is None or rule.type != "validation":
            return ()
        return rule.seeds if rule.on == "seeds" else self.seeds

    def training_seeds(self, label: str) -> tuple[int, ...]:
        """Every seed an entry is trained with: the reported ones, then validation-only ones."""
        return tuple(dict.fromkeys((*self.seeds, *self.validation_seeds(label))))

    def cells(self) -> list[tuple[str, str, str, int, str]]:
        """All (split, method, env, seed, w label) evaluation cells. split is 'test' (reported, the spec's seeds) or
        'validation' (only where a setting is chosen on validation cells: the reported seeds on separate episodes,
        or extra training seeds that are never reported)."""
        out = []
        for label, entry in self.methods.items():
            labels = entry.cell_labels
            for split, seeds in (("test", self.seeds), ("validation", self.validation_seeds(label))):
                for env in entry.envs:
                    for seed in seeds:
                        out.extend((split, label, env, seed, lab) for lab in labels)
        return out

    def evaluation_jobs(self) -> list[tuple[str, tuple[str, ...], tuple[int, ...]]]:
        """One evaluation job per checkpoint, grouped by what it evaluates: (method entry, splits, training seeds)
        -- e.g. ('cfgrl', ('test', 'validation'), (0, 1, 2)) and ('awr_t3', ('validation',), (8, 9)). Each job
        writes every w of its entry for each of its splits."""
        out = []
        for label in self.methods:
            by_splits: dict[tuple[str, ...], list[int]] = {}
            validation = set(self.validation_seeds(label))
            for seed in self.training_seeds(label):
                splits = tuple(s for s, has in (("test", seed in self.seeds), ("validation", seed in validation))
                               if has)
                by_splits.setdefault(splits, []).append(seed)
            out += [(label, splits, tuple(seeds)) for splits, seeds in by_splits.items()]
        return out

    def snapshot_cells(self) -> list[tuple[str, str, int, int, str]]:
        """All (method, env, seed, step, w label) cells of the snapshots eval.at_steps asks for (test episodes of
        the reported seeds)."""
        out = []
        for label, entry in self.methods.items():
            labels = entry.cell_labels
            out += [(label, env, seed, step, lab) for env in entry.envs for seed in self.seeds
                    for step in self.eval.at_steps for lab in labels]
        return out

    def seed_groups(self, label: str) -> list[tuple[int, ...]]:
        """The training jobs of an entry: its seeds in blocks of seed_group consecutive seed values (seed // size),
        so adding seeds leaves existing blocks as they are."""
        blocks: dict[int, list[int]] = {}
        for seed in self.training_seeds(label):
            blocks.setdefault(seed // self.seed_group, []).append(seed)
        return [tuple(sorted(b)) for _, b in sorted(blocks.items())]

    def training_jobs(self) -> list[tuple[tuple[str, ...], str, tuple[int, ...]]]:
        """Every training job as (method entries, env, seeds): per entry and env its seed blocks (`seed_groups`);
        with share_critic the entries of an env that can share an IQL critic (same seeds, critics trained alike:
        `critic_group_problem`) are one job per seed block, in spec order."""
        jobs: list[tuple[tuple[str, ...], str, tuple[int, ...]]] = []
        joined: dict[tuple[str, tuple[int, ...]], int] = {}  # (env, seeds) -> index in jobs of a shareable job
        for label, entry in self.methods.items():
            for env in entry.envs:
                for seeds in self.seed_groups(label):
                    at = joined.get((env, seeds))
                    if self.share_critic and at is not None:
                        labels = jobs[at][0]
                        if critic_group_problem([self.methods[m] for m in (*labels, label)]) is None:
                            jobs[at] = ((*labels, label), env, seeds)
                            continue
                    if self.share_critic and critic_group_problem([entry]) is None and (env, seeds) not in joined:
                        joined[(env, seeds)] = len(jobs)
                    jobs.append(((label,), env, seeds))
        return jobs

    def job_hashes(self) -> dict[str, dict[str, str]]:
        """Content hashes of what each kind of job reads from the spec, for Snakemake `params`, so that editing a
        spec reruns exactly the jobs it touched: {'data': {env: h}, 'train': {'method|env': h}, 'eval': {env: h},
        'report': h}. Training depends on the method entry (its registry name and resolved config: every field,
        defaults included, so a changed default reruns the jobs it reaches and an override equal to the default
        reruns nothing) and the env's data settings; evaluation on the env's eval settings and the eval seeds
        (the checkpoint is an input already); the report on everything it reads: the whole spec (analysis
        settings, rules, sweeps, protocol text)."""
        data = {env: spec_hash({"env": env, "data": dict(e.data)}) for env, e in self.envs.items()}
        train = {f"{m}|{env}": spec_hash({"method": entry.registry, "config": asdict(entry.config),
                                          "data": data[env], "threads": self.train_threads,
                                          "logging": list(self.train_logging)})
                 for m, entry in self.methods.items() for env in entry.envs}
        bases = {"seed": self.eval.seed, "validation_seed": self.eval.validation_seed}
        evals = {env: spec_hash({"eval": e.eval_settings, "seeds": bases}) for env, e in self.envs.items()}
        return {"data": data, "train": train, "eval": evals, "report": self.hash}


# --------------------------------------------------------------------------------------------------- reading YAML


def schema() -> dict[str, Any]:
    return yaml.safe_load(resources.files("cfgrl.pipeline").joinpath("schema.yaml").read_text())


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
    except _FieldError as err:
        raise SpecError(f"{path}: {err.field}: {err.message}") from None


class _FieldError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def _build(raw: dict[str, Any], path: Path) -> Spec:
    given = _merge(DEFAULTS, raw)
    name = raw["name"]
    if name.startswith("."):
        raise _FieldError("name", f"{_PATTERN_TEXT['name']}, got {name!r}")
    seeds = _seeds(raw["seeds"], "seeds")
    eval_settings = _eval(given["eval"])
    if "png" not in given["analysis"]["figure_formats"]:
        raise _FieldError("analysis.figure_formats", f"must include 'png' (report.md shows the PNG figures), "
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
            raise _FieldError(f"sweeps.{sweep_name}.entries", f"'{twice[0]}' is already in sweep '{swept[twice[0]]}'")
        swept.update(dict.fromkeys(built.entries, sweep_name))
        sweeps[sweep_name] = built
    _check_at_steps(eval_settings.at_steps, methods)
    logging = tuple(dict.fromkeys(["csv", *given["train"]["logging"]]))
    if "tensorboard" in logging:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise _FieldError("train.logging", "'tensorboard' needs the tensorboard package (pip install "
                              "tensorboard); or leave it out: metrics.csv is always written") from None
    spec = Spec(name=name, path=str(path), hash=spec_hash(raw), seeds=seeds, envs=types.MappingProxyType(envs),
                methods=types.MappingProxyType(methods), sweeps=types.MappingProxyType(sweeps), eval=eval_settings,
                train_threads=int(given["train"]["threads"]), seed_group=int(given["train"]["seed_group"]),
                share_critic=bool(given["train"]["share_critic"]),
                train_gpus=int(given["train"]["gpus"]), train_logging=logging, analysis=analysis,
                max_cells=int(given["limits"]["max_cells"]),
                raw=types.MappingProxyType(raw))
    n = len(spec.cells()) + len(spec.snapshot_cells())
    if n > spec.max_cells:
        raise _FieldError("limits.max_cells", f"the spec plans {n} evaluation cells, more than the cap of "
                          f"{spec.max_cells}; shrink the grid or raise the cap (limits: {{max_cells: {n}}})")
    return spec


def _seeds(values: list[Any], where: str) -> tuple[int, ...]:
    for i, s in enumerate(values):
        if not 0 <= s < SEED_LIMIT:
            raise _FieldError(f"{where}[{i}]", f"a seed must be in [0, 2^64) (torch.manual_seed's range), got {s}")
    return tuple(values)


def _eval(settings: dict[str, Any]) -> EvalSettings:
    for key in ("seed", "validation_seed"):
        if not 0 <= settings[key] < EPISODE_SEED_LIMIT:
            raise _FieldError(f"eval.{key}", f"must be in [0, 2^32), got {settings[key]}")
    if settings["seed"] == settings["validation_seed"]:
        raise _FieldError("eval.validation_seed", f"equals eval.seed ({settings['seed']}): the validation episodes "
                          "would replay the reported ones, and w or T would be chosen on the reported episodes")
    steps = settings["at_steps"]
    if len(set(steps)) != len(steps):
        raise _FieldError("eval.at_steps", f"has duplicates: {steps}")
    return EvalSettings(int(settings["seed"]), int(settings["validation_seed"]), int(settings["threads"]),
                        tuple(sorted(steps)))


def _check_at_steps(at_steps: tuple[int, ...], methods: dict[str, MethodEntry]) -> None:
    """Every step in eval.at_steps must be a snapshot every method entry saves: before its last update and a
    multiple of its snapshot_every."""
    for label, entry in methods.items():
        for step in at_steps:
            every = getattr(entry.config, "snapshot_every", None)
            if step >= entry.config.steps:
                raise _FieldError("eval.at_steps", f"step {step} is not before the end of training of "
                                  f"methods.{label} ({entry.config.steps} updates: its final model is evaluated "
                                  "anyway)")
            if not every or step % every:
                raise _FieldError(f"methods.{label}.config.snapshot_every",
                                  f"training saves no snapshot at step {step} (eval.at_steps); set snapshot_every to "
                                  "a divisor of every step in at_steps")


def _env(name: str, entry: dict[str, Any]) -> EnvEntry:
    where = f"envs.{name}"
    try:
        info = resolve_env(name)
    except KeyError as err:
        raise _FieldError(where, err.args[0]) from None
    problem = info.kind.data_problem(entry["data"])
    if problem:
        field, _, message = problem.partition(": ")
        raise _FieldError(f"{where}.data{field}", message)
    if not info.kind.takes_data_defaults:  # the settings as given (Minari: a dataset id, a source, a path)
        data = copy.deepcopy(entry["data"])
    else:
        generated = entry["data"]["source"] == "generate"
        data = _merge({**ENV_DEFAULTS["data"], **(info.generator_defaults() if generated else {})}, entry["data"])
        if data["source"] == "generate" and not info.generators:
            raise _FieldError(f"{where}.data.source", "no offline generator for this env (use source: download)")
        if not 0 <= data["seed"] < EPISODE_SEED_LIMIT:
            raise _FieldError(f"{where}.data.seed", f"must be in [0, 2^32), got {data['seed']}")
    ev = _merge(ENV_DEFAULTS["eval"], entry.get("eval") or {})
    tasks = ev.get("tasks", list(range(1, info.num_tasks + 1)))
    if len(set(tasks)) != len(tasks):
        raise _FieldError(f"{where}.eval.tasks", f"has duplicates: {tasks}")
    bad = [t for t in tasks if t > info.num_tasks]
    if bad:
        raise _FieldError(f"{where}.eval.tasks", f"task {bad[0]} > the env's {info.num_tasks} tasks")
    return EnvEntry(name, info, types.MappingProxyType(data), tuple(tasks), int(ev["episodes_per_task"]))


def _method(label: str, entry: dict[str, Any], envs: dict[str, EnvEntry], seeds: tuple[int, ...]) -> MethodEntry:
    from cfgrl.methods import METHODS, method_class

    where = f"methods.{label}"
    registry = entry.get("method", label)
    if registry not in METHODS:
        field = f"{where}.method" if "method" in entry else where
        raise _FieldError(field, f"unknown method '{registry}' (known: {', '.join(sorted(METHODS))})")
    cls = method_class(registry)
    overrides = dict(entry.get("config") or {})
    config = _config(cls, overrides, f"{where}.config")
    w = None
    if cls.guided:
        if "w" not in entry:
            raise _FieldError(f"{where}.w", f"required for guided method '{registry}'")
        w = _w_grid(entry["w"], f"{where}.w")
    elif "w" in entry:
        raise _FieldError(f"{where}.w", f"method '{registry}' takes no guidance weight")
    select = None
    if "select" in entry:
        if not cls.guided:
            raise _FieldError(f"{where}.select", "only guided methods choose a w (choose among training "
                              "configurations with a `sweeps` entry)")
        problem = select_problem(entry["select"], list(w or ()), list(seeds), "w")
        if problem:
            field, _, message = problem.partition(": ")
            raise _FieldError(f"{where}.select{field}", message)
        select = SelectRule.parse(entry["select"])
    own = entry.get("envs")
    unknown = [e for e in own or () if e not in envs]
    if unknown:
        raise _FieldError(f"{where}.envs", f"'{unknown[0]}' is not one of the spec's envs")
    runs_on = tuple(e for e in envs if own is None or e in own)
    for env in runs_on:
        problem = envs[env].info.kind.batch_problem(envs[env].info, cls.batch_kind)
        if problem:
            raise _FieldError(where, problem + ("" if own else " (or list the entry's own `envs`)"))
    return MethodEntry(label, registry, cls, config, types.MappingProxyType(overrides), runs_on,
                       None if w is None else tuple(w), select)


def _w_grid(values: list[Any], where: str) -> list[float]:
    """The one check of a guidance-weight grid: finite numbers, each once (its label, `w_label`, is then its
    own: distinct floats never print alike). -0.0 is 0."""
    seen: dict[float, int] = {}
    for i, w in enumerate(values):
        if not math.isfinite(w):
            raise _FieldError(f"{where}[{i}]", f"must be a finite number, got {w!r}")
        if float(w) in seen:
            raise _FieldError(f"{where}[{i}]", f"duplicate guidance weight {w!r} (also {where}[{seen[float(w)]}]); "
                                               "give each w once")
        seen[float(w)] = i
    return [float(w) + 0.0 for w in values]


# Value checks of config fields, by field name (the methods share their names): (check, message) pairs.
# Enumerated fields are checked against the choices their method declares (the config class's `CHOICES`).
def _number_text(x: float) -> str:
    return f"{int(x)}" if float(x).is_integer() else f"{x:g}"


def _in(low: float, high: float, low_open: bool = False, high_open: bool = False) -> tuple[Any, str]:
    lo, hi = ("(" if low_open else "[") + _number_text(low), _number_text(high) + (")" if high_open else "]")
    return (lambda x: (x > low if low_open else x >= low) and (x < high if high_open else x <= high),
            f"must be in {lo}, {hi}")


FIELD_CHECKS: dict[str, tuple[Any, str]] = {
    "steps": _in(1, 1e9), "batch_size": _in(1, 1e6), "lr": _in(0, 1, low_open=True),
    "weight_decay": _in(0, 1), "log_every": _in(1, 1e9), "checkpoint_every": _in(1, 1e9),
    "snapshot_every": _in(1, 1e9),
    "flow_steps": _in(1, 10_000), "label_dim": _in(1, 65_536), "time_dim": _in(2, 65_536),
    "time_grid": _in(0, 1e6), "subgoal_steps": _in(1, 1e6), "discount": _in(0, 1), "tau": _in(0, 1, low_open=True),
    "expectile": _in(0, 1, True, True), "null_prob": _in(0, 1), "null_goal_prob": _in(0, 1),
    "null_loss_weight": _in(0, 1e6), "temperature": _in(0, 1e6), "max_weight": _in(0, 1e12, low_open=True),
    "mean_clip": _in(0, 1e6, low_open=True), "std": _in(0, 1e6, low_open=True),
    "geometric_discount": _in(0, 1, True, True),
    "num_samples": _in(1, 100_000), "softmax_temperature": _in(0, 1e6, low_open=True), "alpha": _in(0, 1e9),
    "label_bins": _in(2, 10_000), "target_return_quantile": _in(0, 1),
}
WIDTH_LIMIT = 65_536


def _config(cls: type[Agent], overrides: dict[str, Any], where: str) -> TrainConfig:
    """The method's config dataclass with the entry's overrides, every value checked."""
    config_cls = cls.Config
    known = {f.name for f in fields(config_cls)}
    choices = config_cls.choices()
    for key, value in overrides.items():
        if key not in known:
            raise _FieldError(f"{where}.{key}", f"unknown field (known: {', '.join(sorted(known))})")
        problem = _check_type(config_cls, key, value)
        if problem is None and value is not None:
            problem = _check_value(key, value, choices)
        if problem:
            raise _FieldError(f"{where}.{key}", problem)
    values = {**asdict(config_cls()), **overrides}
    for f in fields(config_cls):
        if isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    return config_cls(**values)


def _check_value(key: str, value: Any, choices: dict[str, tuple[Any, ...]]) -> str | None:
    if key in choices and value not in choices[key]:
        return f"must be one of {', '.join(map(repr, choices[key]))}, got {value!r}"
    if isinstance(value, tuple | list):
        if not value:
            return "must not be empty (one width per hidden layer)"
        bad = [x for x in value if not 1 <= x <= WIDTH_LIMIT]
        if bad:
            return f"widths must be in [1, {WIDTH_LIMIT}], got {bad[0]}"
        return None
    if key == "device" and not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        return f"must be auto, cpu, cuda, cuda:<index> or mps, got {value!r}"
    check = FIELD_CHECKS.get(key)
    if check is not None and isinstance(value, int | float) and not isinstance(value, bool):
        ok, message = check
        if not math.isfinite(value) or not ok(value):
            return f"{message}, got {value!r}"
    return None


def _check_type(cls: type, name: str, value: Any) -> str | None:
    """A complaint if `value` does not fit the dataclass field's annotation, else None."""
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
        if origin is tuple and isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool)
                                                               for x in value):
            return None
    names = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
             "NoneType": "null"}
    want = " or ".join(names.get(getattr(o, "__name__", ""), "a list of integers") for o in options)
    return f"must be {want}, got {value!r}"


def knob_value(cls: type[Agent], config: TrainConfig, knob: str) -> float:
    """The value of config field `knob`, with the method's own default resolved (e.g. AWR's temperature None ->
    10 or 3 by std_mode, through the class's `resolved_<knob>` hook)."""
    resolve = getattr(cls, f"resolved_{knob}", None)
    return float(resolve(config) if resolve is not None else getattr(config, knob))


def _sweep(name: str, sweep: dict[str, Any], methods: dict[str, MethodEntry], seeds: tuple[int, ...]) -> Sweep:
    where = f"sweeps.{name}"
    if name in methods:
        raise _FieldError(where, f"name clashes with the method entry '{name}'")
    unknown = [e for e in sweep["entries"] if e not in methods]
    if unknown:
        raise _FieldError(f"{where}.entries", f"unknown method entry '{unknown[0]}'")
    entries = [methods[e] for e in sweep["entries"]]
    registries = {e.registry for e in entries}
    if len(registries) > 1:
        raise _FieldError(f"{where}.entries", f"entries of one method only (got {', '.join(sorted(registries))})")
    if len({e.envs for e in entries}) > 1:
        raise _FieldError(f"{where}.entries", "the entries run on different envs (give them the same `envs`)")
    cls = entries[0].cls
    if cls.guided:
        raise _FieldError(f"{where}.entries", "guided methods choose w at test time; use the entry's own `select`")
    knob = sweep.get("knob", "temperature")
    if knob not in {f.name for f in fields(cls.Config)}:
        raise _FieldError(f"{where}.knob", f"'{knob}' is not a config field of method '{registries.pop()}'")
    values = {e.label: knob_value(cls, e.config, knob) for e in entries}
    if len(set(values.values())) != len(values):
        raise _FieldError(f"{where}.entries", f"two entries share {knob} = {list(values.values())} (one value each)")
    problem = select_problem(sweep["select"], list(values.values()), list(seeds), knob)
    if problem:
        field, _, message = problem.partition(": ")
        raise _FieldError(f"{where}.select{field}", message)
    return Sweep(name, tuple(sweep["entries"]), knob, types.MappingProxyType(values), SelectRule.parse(sweep["select"]))


def select_problem(rule: Mapping[str, Any], grid: list[float] | None, seeds: list[int], knob: str = "w",
                   planning: bool = True) -> str | None:
    """Why a `select` rule over `grid` (the values of `knob`) is refused, as '.field: message' (None when it is
    fine). seeds: the reported training seeds (validation seeds must be others). The one place these rules are
    checked (specs and analysis.selection both call it); planning=False (analysis of an existing cells table,
    whose `split` column says which cells are validation ones) does not ask an 'on: seeds' rule for its seeds."""
    kind = rule.get("type")
    if kind in SELECTING_ON_TEST:
        return f".type: {kind!r} is refused: {MAX_OVER_TEST_IS_BIASED}"
    if kind not in SELECTION_TYPES:
        return f".type: unknown rule type {kind!r}: use 'fixed', 'validation' or 'budget'"
    if kind == "budget":
        return _budget_problem(rule, knob)
    stray = [k for k in ("divergence", "measure") if k in rule]
    if stray:
        return f".{stray[0]}: only for budget rules"
    if kind == "fixed":
        if "value" not in rule:
            return ".value: required for a fixed rule"
        if not isinstance(rule["value"], int | float) or not math.isfinite(rule["value"]):
            return f".value: must be a finite number, got {rule['value']!r}"
        if grid is not None and not any(float(rule["value"]) == float(v) for v in grid):
            return f".value: {rule['value']} is not among the {knob} values {grid}"
        extra = [k for k in ("on", "seeds") if k in rule]
        return f".{extra[0]}: only for validation rules" if extra else None
    on = rule.get("on")
    if "value" in rule:
        return ".value: only for fixed rules (a validation rule chooses the value)"
    if on == "episodes":
        if "seeds" in rule:
            return ".seeds: only for 'on: seeds' (episodes: the reported checkpoints on other episodes)"
        return None
    if on == "seeds":
        if not rule.get("seeds") and planning:
            return ".seeds: 'on: seeds' needs the extra training seeds to choose on, e.g. seeds: [8, 9]"
        bad = [s for s in rule.get("seeds") or () if not 0 <= s < SEED_LIMIT]
        if bad:
            return f".seeds: a seed must be in [0, 2^64), got {bad[0]}"
        shared = sorted(set(rule.get("seeds") or ()) & set(seeds))
        if shared:
            return f".seeds: {shared} are reported seeds too; validation seeds must be others"
        return None
    if on in SELECTING_ON_TEST:
        return f".on: {on!r} is refused: {MAX_OVER_TEST_IS_BIASED}"
    return (".on: must be 'seeds' or 'episodes' (extra training seeds, or the same checkpoints on separate "
            f"validation episodes), got {on!r}")


def _budget_problem(rule: Mapping[str, Any], knob: str) -> str | None:
    budget, measure = rule.get("divergence"), rule.get("measure", "mse")
    extra = [k for k in ("value", "on", "seeds") if k in rule]
    if extra:
        return f".{extra[0]}: not for a budget rule (it chooses the largest {knob} within `divergence`)"
    if budget is None:
        return ".divergence: required for a budget rule, e.g. divergence: 0.2"
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not math.isfinite(budget) or budget < 0:
        return f".divergence: must be a finite number >= 0, got {budget!r}"
    if measure not in DIVERGENCE_COLUMNS:
        return f".measure: must be one of {sorted(DIVERGENCE_COLUMNS)}, got {measure!r}"
    if knob != "w" and measure != "data":
        return (f".measure: {measure!r} is a divergence from the w = 0 policy, which a {knob} sweep has not; use "
                "'data' (mean squared distance to the dataset's actions)")
    return None


def critic_group_problem(entries: Sequence[Any]) -> str | None:
    """Why method entries cannot train in one job on one critic (None when they can): each must be an IQL agent
    (cfgrl.core.iql.IQLAgent) and their critics trained alike (`critic_signature`: critic fields, steps, batches)."""
    from cfgrl.core.iql import IQLAgent

    for entry in entries:
        if not issubclass(entry.cls, IQLAgent):
            return f"'{entry.label}' ({entry.registry}) has no IQL critic to share"
    signatures = {entry.label: entry.cls.critic_signature(entry.config) for entry in entries}
    first = entries[0].label
    for label, signature in signatures.items():
        if signature != signatures[first]:
            return f"'{label}' trains its critic differently from '{first}'"
    return None


def spec_hash(raw: Mapping[str, Any]) -> str:
    """Short content hash of a spec or a part of it (provenance in every result file)."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=list).encode()).hexdigest()[:16]


UNGUIDED_CELL = "none"  # the cell-file label of an unguided method's one cell per checkpoint (it has no w)


def w_label(w: float) -> str:
    """The one text form of a guidance weight, in file names, tables and logs: the shortest text that reads back
    as the same float (Python's repr), without a trailing '.0': 1.5 -> '1.5', 3.0 -> '3', 1.2345678 ->
    '1.2345678'. Distinct weights never share a label, and float(w_label(w)) == w."""
    text = repr(float(w))
    return text[:-2] if text.endswith(".0") else text
