"""The value checks of a spec, each returning or raising one message that names the field: seeds that fit every
RNG, guidance-weight grids, config overrides (types, the choices and ranges each config class declares beside its
fields), snapshot steps, selection rules that never look at the reported episodes, and shared-critic groups.
Nothing here reads YAML or builds the typed spec (cfgrl.pipeline.spec.loading does, cfgrl.pipeline.spec.model holds
it)."""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from typing import Any

if typing.TYPE_CHECKING:  # the method classes (and torch) load when a spec is built, not when this is imported
    from cfgrl.core.agent import Agent, TrainConfig

SEED_LIMIT = 2**64  # torch.manual_seed takes [0, 2^64); numpy's SeedSequence any non-negative integer
EPISODE_SEED_LIMIT = 2**32  # bases of the evaluation-episode seeds: one 32-bit word of their SeedSequence
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


class FieldError(Exception):
    """A bad value at `field` (a dotted spec path); load_spec adds the file name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def check_seeds(values: list[Any], where: str) -> tuple[int, ...]:
    """The training seeds at `where`, each in [0, 2^64)."""
    for i, s in enumerate(values):
        if not 0 <= s < SEED_LIMIT:
            raise FieldError(f"{where}[{i}]", f"a seed must be in [0, 2^64) (torch.manual_seed's range), got {s}")
    return tuple(values)


def check_at_steps(at_steps: tuple[int, ...], methods: Mapping[str, Any]) -> None:
    """Every step in eval.at_steps must be a snapshot every method entry saves: before its last update and a
    multiple of its snapshot_every."""
    for label, entry in methods.items():
        for step in at_steps:
            every = getattr(entry.config, "snapshot_every", None)
            if step >= entry.config.steps:
                raise FieldError("eval.at_steps", f"step {step} is not before the end of training of "
                                  f"methods.{label} ({entry.config.steps} updates: its final model is evaluated "
                                  "anyway)")
            if not every or step % every:
                raise FieldError(f"methods.{label}.config.snapshot_every",
                                  f"training saves no snapshot at step {step} (eval.at_steps); set snapshot_every to "
                                  "a divisor of every step in at_steps")


def w_grid(values: list[Any], where: str) -> list[float]:
    """The one check of a guidance-weight grid: finite numbers, each once (its label, `w_label`, is then its
    own: distinct floats never print alike). -0.0 is 0."""
    seen: dict[float, int] = {}
    for i, w in enumerate(values):
        if not math.isfinite(w):
            raise FieldError(f"{where}[{i}]", f"must be a finite number, got {w!r}")
        if float(w) in seen:
            raise FieldError(f"{where}[{i}]", f"duplicate guidance weight {w!r} (also {where}[{seen[float(w)]}]); "
                                               "give each w once")
        seen[float(w)] = i
    return [float(w) + 0.0 for w in values]


WIDTH_LIMIT = 65_536  # largest width of a hidden layer (every `hidden`-like field)


def method_config(cls: type[Agent], overrides: dict[str, Any], where: str) -> TrainConfig:
    """The method's config dataclass with the entry's overrides, every value checked: its type against the
    field's annotation, then the choices (`CHOICES`) or the range (`RANGES`) the config classes declare for it."""
    config_cls = cls.Config
    known = {f.name for f in fields(config_cls)}
    choices, ranges = config_cls.choices(), config_cls.ranges()
    for key, value in overrides.items():
        if key not in known:
            raise FieldError(f"{where}.{key}", f"unknown field (known: {', '.join(sorted(known))})")
        problem = _check_type(config_cls, key, value)
        if problem is None and value is not None:
            problem = _check_value(key, value, choices, ranges)
        if problem:
            raise FieldError(f"{where}.{key}", problem)
    values = {**asdict(config_cls()), **overrides}
    for f in fields(config_cls):
        if isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    return config_cls(**values)


def _check_value(key: str, value: Any, choices: Mapping[str, tuple[Any, ...]], ranges: Mapping[str, Any]
                 ) -> str | None:
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
    allowed = ranges.get(key)
    if allowed is not None and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or value not in allowed:
            return f"must be in {allowed.text()}, got {value!r}"
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
