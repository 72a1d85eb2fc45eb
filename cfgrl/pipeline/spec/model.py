"""The typed spec: frozen dataclasses of a validated spec (envs, method entries, sweeps, evaluation and analysis
settings) and what the DAG asks of it (cells, training and evaluation jobs, job hashes), and the one text form of a
guidance weight (`w_label`). Built by cfgrl.pipeline.spec.loading; never read from YAML here."""

from __future__ import annotations

import hashlib
import json
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cfgrl.pipeline.spec.checks import critic_group_problem, select_problem

if typing.TYPE_CHECKING:  # the method classes (and torch) load when a spec is built, not when this is imported
    from cfgrl.core.agent import Agent, TrainConfig
    from cfgrl.envs.registry import EnvInfo


class SpecError(ValueError):
    """An invalid spec; str() is a one-line message naming the file and the field."""


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
    threads: int  # cores per evaluation job: torch threads, and above 1 as many simulator processes
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
    seed_group_mode: str  # 'exact' (members stepped in turn) or 'vectorised' (cfgrl.core.vectorised)
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
