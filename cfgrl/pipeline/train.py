"""The one training loop every method goes through: sample batches, update, log, checkpoint, resume.

One process trains one seed or a group of seeds of a (method, env) (`train.seed_group` in the spec): one data load,
one dataset sampler, and the members stepped in turn, each with its own agent, batch-sampling RNG and noise
stream, so a member's parameters are bit for bit those of the same seed trained alone (tested). With
`train.share_critic`, the IQL-critic entries of an env that train their critics alike (AWR at two temperatures and
CFGRL, say) train in one job, each seed's entries on one critic: one batch, the critic's losses once, each actor's
own loss (cfgrl.core.iql.shared_critic_update); every entry still ends bit for bit as trained alone (tested), at a
fraction of the cost, since the critic is most of an IQL agent's update. With `train.seed_group_mode: vectorised`
the members of a group are one batched computation instead (cfgrl.core.vectorised.StackedAgents: stacked
parameters, one vmap of the loss's gradient, one AdamW over the members' own tensors), each with its own data,
init and noise as in exact mode; its numbers agree with the solo run's to rounding, not bit for bit, and do not
depend on the group's size (tested). It resumes exactly as exact mode does, from the same per-member checkpoints.

Outputs in each seed's `out_dir`: `model.pt` (networks + config + provenance), `metrics.csv` and `grad_norms.npz`
(the per-sample actor-gradient norms of one batch, empty for methods without them), and `snapshots/step<N>.pt` every
`snapshot_every` updates when the config asks for snapshots (evaluated by `eval.at_steps`). `metrics.csv` grows
by one row per log interval while training runs (flushed: `tail -f` works); when training ends it is rewritten
whole. Each row has the loss components averaged over the interval, `val/...` (the same losses on a batch of the
held-out validation file, drawn from RNGs of its own, so the training stream is unchanged), `steps_per_s` and
`eta_s`. While training, `out_dir/_progress/checkpoint.pt` holds networks, optimiser, RNG states, step and the
metric rows so far; a killed job restarted with the same arguments resumes from it (its metrics.csv is rewritten
from the checkpoint's rows, so rows are neither lost nor repeated) and, on CPU, ends with the same parameters as an
uninterrupted run. A non-finite loss stops training with the component and the step named; the last checkpoint
(written before the first bad step) stays.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cfgrl.core.agent import Agent
from cfgrl.core.iql import shared_critic_update
from cfgrl.core.nets import pick_device
from cfgrl.core.vectorised import StackedAgents
from cfgrl.data.layout import DataError
from cfgrl.data.samplers import BatchRequest, GoalSampler
from cfgrl.envs.registry import EnvInfo
from cfgrl.io import atomic_savez, atomic_write, atomic_write_text
from cfgrl.methods import method_class
from cfgrl.pipeline.provenance import data_hash, provenance
from cfgrl.pipeline.spec import Spec, critic_group_problem
from cfgrl.seeding import derive_seed

VALIDATION_KEY = 4  # second key of the validation-loss RNG seeds (seed, key): apart from every training stream


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or Inf; the message names the component, the step and the kept checkpoint."""


def build_agent(method: str, config: Any, obs_dim: int, action_dim: int, goal_dim: int, device: torch.device,
                seed: int) -> Agent:
    torch.manual_seed(seed)  # init 'torch' (the ablation) initialises from the global RNG; 'parity' never reads it
    return method_class(method)(config, obs_dim, action_dim, goal_dim, device, seed)


def make_sampler(env: EnvInfo, data_path: str | Path, agent_class: type[Agent], config: Any,
                 validation: bool = False) -> Any:
    """The batch sampler an agent class trains with on an env's dataset file (or, `validation`, on its held-out
    twin): the agent says which batches (`batch_kind`, `batch_options`), the env's kind reads the file."""
    request = BatchRequest(agent_class.batch_kind, **agent_class.batch_options(config))
    return env.kind.sampler(env, data_path, request, validation=validation)


def _save(path: Path, obj: Any) -> None:
    atomic_write(path, lambda f: torch.save(_own_storage(obj), f))


def _own_storage(obj: Any) -> Any:
    """obj with every tensor that is a view into a larger storage cloned (a vectorised member's parameters are
    slices of the group's stack, and torch.save writes a view's whole storage)."""
    if isinstance(obj, torch.Tensor):
        whole = obj.untyped_storage().nbytes()
        return obj.clone() if whole > obj.numel() * obj.element_size() else obj
    if isinstance(obj, dict):
        return {k: _own_storage(v) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_own_storage(v) for v in obj)
    return obj


def _to_tensors(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device, non_blocking=True) for k, v in batch.items()}


def metrics_csv(rows: list[dict[str, float]]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


@dataclass
class _Member:
    """One (method entry, seed) of a training job: its agent, config, RNGs, metric rows, running sums and files."""

    label: str
    seed: int
    out_dir: Path
    agent: Agent
    rng: np.random.Generator
    config: Any
    rows: list[dict[str, float]] = field(default_factory=list)
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    first_bad: dict[str, torch.Tensor] = field(default_factory=dict)  # component -> first non-finite step (-1)
    tensorboard: Any = None
    n_since_log: int = 0
    t_log: float = field(default_factory=time.perf_counter)

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "_progress" / "checkpoint.pt"

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.csv"

    def checkpoint(self) -> None:
        """Everything a resumed run needs to continue as if never stopped, the running metric sums included."""
        _save(self.checkpoint_path, {"agent": self.agent.full_state(), "numpy_rng": self.rng.bit_generator.state,
                                     "rows": self.rows, "sums": self.sums, "first_bad": self.first_bad})

    def resume(self, device: torch.device) -> None:
        if not self.checkpoint_path.exists():
            self.metrics_path.unlink(missing_ok=True)
            return
        state = torch.load(self.checkpoint_path, map_location=device, weights_only=False)
        self.agent.load_full_state(state["agent"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.rows = state["rows"]
        self.sums, self.first_bad = state.get("sums", {}), state.get("first_bad", {})
        atomic_write_text(self.metrics_path, metrics_csv(self.rows) if self.rows else "")
        print(f"seed {self.seed}: resumed from {self.checkpoint_path} at step {self.agent.step}", flush=True)

    def accumulate(self, info: dict[str, torch.Tensor]) -> None:
        step = self.agent.step
        for k, v in info.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
            bad = self.first_bad.get(k)
            if bad is None:
                bad = self.first_bad[k] = torch.full((), -1, dtype=torch.long, device=v.device)
            bad.copy_(torch.where((bad < 0) & ~torch.isfinite(v), step, bad))

    def append_row(self, row: dict[str, float]) -> None:
        """Add a metric row: to memory, to the growing metrics.csv (flushed) and to TensorBoard."""
        new_file = not self.metrics_path.exists() or self.metrics_path.stat().st_size == 0
        self.rows.append(row)
        keys = list(self.rows[0])
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)
            f.flush()
        if self.tensorboard is not None:
            for k, v in row.items():
                if k != "step":
                    self.tensorboard.add_scalar(k, v, row["step"])
            self.tensorboard.flush()


def train(spec: Spec, method: str, env: str, seed: int, data_path: str | Path, out_dir: str | Path,
          threads: int | None = None, stop_after: int | None = None) -> dict[str, Any]:
    """Train the spec's method entry `method` on `env`'s dataset with `seed` (one member: `train_group`)."""
    return train_group(spec, method, env, [seed], data_path, [out_dir], threads, stop_after)[seed]


def train_group(spec: Spec, method: str, env: str, seeds: Sequence[int], data_path: str | Path,
                out_dirs: Sequence[str | Path], threads: int | None = None, stop_after: int | None = None
                ) -> dict[int, dict[str, Any]]:
    """Train the spec's method entry `method` on `env`'s dataset for each seed (out_dirs: one per seed) in one
    process. `stop_after` ends early after writing a checkpoint (tests of resumption)."""
    outs = {(method, seed): out for seed, out in zip(seeds, out_dirs, strict=True)}
    result = train_job(spec, [method], env, seeds, data_path, outs, threads, stop_after)
    return {seed: result[(method, seed)] for seed in seeds}


def train_job(spec: Spec, methods: Sequence[str], env: str, seeds: Sequence[int], data_path: str | Path,
              out_dirs: Mapping[tuple[str, int], str | Path], threads: int | None = None,
              stop_after: int | None = None, share_critic: bool | None = None, seed_group_mode: str | None = None
              ) -> dict[tuple[str, int], dict[str, Any]]:
    """Train the spec's method entries `methods` on `env`'s dataset for each seed in one process (out_dirs: one
    per (entry, seed)), the members stepped in turn. With `share_critic` (the spec's `train.share_critic` by
    default) the entries of a seed train on one IQL critic, one batch and one backward pass per step
    (cfgrl.core.iql.shared_critic_update; they must train their critics alike: `critic_group_problem`); each
    entry's numbers stay those of its solo run. With `seed_group_mode` 'vectorised' (the spec's
    `train.seed_group_mode` by default) the seeds of one entry step as one batched update (StackedAgents).
    `stop_after` ends early after writing a checkpoint (tests of resumption)."""
    entries = [spec.methods[m] for m in methods]
    share = (spec.share_critic if share_critic is None else share_critic) and len(entries) > 1
    problem = critic_group_problem(entries) if share else None
    if problem:
        raise ValueError(f"entries {', '.join(methods)} cannot share a critic: {problem}")
    mode = seed_group_mode or spec.seed_group_mode
    if mode == "vectorised" and len(entries) > 1:
        raise ValueError(f"entries {', '.join(methods)}: a vectorised job trains the seeds of one entry")
    mode = mode if len(seeds) > 1 else "exact"  # one seed: nothing to batch, the solo update
    first = entries[0].config
    device = pick_device(first.device)
    torch.set_num_threads(threads or spec.train_threads)
    info = spec.envs[env].info
    sampler = make_sampler(info, data_path, entries[0].cls, first)
    try:  # the held-out episodes, for the validation loss
        val_sampler = make_sampler(info, data_path, entries[0].cls, first, validation=True)
    except (DataError, FileNotFoundError) as err:
        val_sampler = None
        print(f"no validation loss: {err}", flush=True)
    obs_dim, action_dim = sampler.observations.shape[1], sampler.actions.shape[1]
    goal_dim = sampler.goal_source.shape[1] if isinstance(sampler, GoalSampler) else 0
    hashes: dict[str, str] = {}  # the data file's hash, computed once for every model file of the job
    saves = {m: _ModelSaver(spec, m, env, spec.methods[m], data_path, device, obs_dim, action_dim, goal_dim, hashes,
                            group={"mode": mode, "seeds": list(seeds)})
             for m in methods}
    groups: list[list[_Member]] = []  # members stepped together on one batch: a seed's entries on a shared critic
    for seed in seeds:
        shared_rng = np.random.default_rng(seed)
        for entry in entries:
            agent = build_agent(entry.registry, entry.config, obs_dim, action_dim, goal_dim, device, seed)
            rng = shared_rng if share else np.random.default_rng(seed)  # the rng fixes batch sampling
            member = _Member(entry.label, seed, Path(out_dirs[(entry.label, seed)]), agent, rng, entry.config)
            if share and groups and groups[-1][0].seed == seed:
                agent.share_critic(groups[-1][0].agent)  # type: ignore[attr-defined]
                groups[-1].append(member)
            else:
                groups.append([member])
    members = [m for group in groups for m in group]
    for m in members:
        m.resume(device)
        if "tensorboard" in spec.train_logging:
            from torch.utils.tensorboard import SummaryWriter

            m.tensorboard = SummaryWriter(str(m.out_dir / "tensorboard"))
    show_bar = sys.stderr.isatty()
    bar = None
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(total=sum(m.config.steps for m in members), initial=sum(m.agent.step for m in members),
                   desc=f"{','.join(methods)} {env} seeds {list(seeds)}", unit="step")
    for m in members:
        m.agent.train()
    stacks: dict[int, StackedAgents] = {}  # vectorised: id(group) -> its stack
    if mode == "vectorised":
        groups = _stack_by_step(members, stacks)
    # the members of a group step together: one batch, one update each (in turn) or one on the shared critic;
    # a vectorised group: a batch per member, one batched update
    active = [group for group in groups if group[0].agent.step < group[0].config.steps]
    while active:
        for group in active:
            stack = stacks.get(id(group))
            if stack is not None:
                infos = stack.update([_to_tensors(sampler.sample(m.config.batch_size, m.rng), device) for m in group])
                for m, step_info in zip(group, infos, strict=True):
                    _after_update(m, step_info, val_sampler, device, saves[m.label], quiet=show_bar)
                continue
            batch = _to_tensors(sampler.sample(group[0].config.batch_size, group[0].rng), device)
            if len(group) > 1:
                infos = shared_critic_update([m.agent for m in group], batch)  # type: ignore[arg-type]
            else:
                infos = [group[0].agent.update(batch)]
            for m, step_info in zip(group, infos, strict=True):
                _after_update(m, step_info, val_sampler, device, saves[m.label], quiet=show_bar)
        if bar is not None:
            bar.update(sum(len(group) for group in active))
        if stop_after is not None and all(m.agent.step >= stop_after for group in active for m in group):
            for m in (m for group in active for m in group):
                _check_finite(m)
                m.checkpoint()
            return {(m.label, m.seed): {"stopped_at": m.agent.step} for m in members}
        active = [group for group in active if group[0].agent.step < group[0].config.steps]
    if bar is not None:
        bar.close()
    out = {}
    for m in members:
        _check_finite(m)
        out[(m.label, m.seed)] = _finish(m, sampler, device, saves[m.label])
    return out


def _stack_by_step(members: list[_Member], stacks: dict[int, StackedAgents]) -> list[list[_Member]]:
    """A vectorised job's groups: the members at one step (all of them, unless a kill fell between two members'
    checkpoints) as one stack each, registered in `stacks` under id(group)."""
    by_step: dict[int, list[_Member]] = {}
    for m in members:
        by_step.setdefault(m.agent.step, []).append(m)
    groups = list(by_step.values())
    for group in groups:
        stacks[id(group)] = StackedAgents([m.agent for m in group])
    return groups


def _after_update(m: _Member, info: dict[str, torch.Tensor], val_sampler: Any, device: torch.device,
                  save: _ModelSaver, quiet: bool) -> None:
    """A member's bookkeeping after one update: running sums, snapshot, metric row, checkpoint."""
    config = m.config
    m.accumulate(info)
    m.n_since_log += 1
    step = m.agent.step
    snapshot_every = getattr(config, "snapshot_every", None)
    if snapshot_every and step % snapshot_every == 0 and step < config.steps:
        save(m, m.out_dir / "snapshots" / f"step{step}.pt")
    if step % config.log_every == 0 or step == config.steps:
        _log(m, config, val_sampler, device, quiet=quiet)
    if step % config.checkpoint_every == 0 and step < config.steps:
        _check_finite(m)
        m.checkpoint()


def _log(m: _Member, config: Any, val_sampler: Any, device: torch.device, quiet: bool) -> None:
    """One metric row of a member: the interval's mean losses, the validation losses, speed and ETA."""
    _check_finite(m)
    now = time.perf_counter()
    rate = m.n_since_log / max(now - m.t_log, 1e-9)
    n = max(1, m.agent.step - (int(m.rows[-1]["step"]) if m.rows else 0))  # the steps the sums cover
    row: dict[str, float] = {"step": m.agent.step, "steps_per_s": rate, "eta_s": (config.steps - m.agent.step) / rate}
    row.update({k: float(v / n) for k, v in m.sums.items()})  # the only host sync
    if val_sampler is not None:
        row.update(_validation_losses(m, val_sampler, config, device))
    m.sums, m.n_since_log, m.t_log = {}, 0, now
    m.append_row(row)
    if not quiet:
        text = " ".join(f"{k}={v}" if k == "step" else f"{k}={v:.4g}" for k, v in row.items())
        print(f"{m.label} seed={m.seed} {text}", flush=True)


@torch.no_grad()
def _validation_losses(m: _Member, val_sampler: Any, config: Any, device: torch.device) -> dict[str, float]:
    """The loss components on a held-out batch, drawn with RNGs seeded from (seed, VALIDATION_KEY, step)."""
    seed = derive_seed(m.seed, VALIDATION_KEY, m.agent.step)
    batch = _to_tensors(val_sampler.sample(config.batch_size, np.random.default_rng(seed)), device)
    generator = torch.Generator(device=device).manual_seed(seed)
    _, info = m.agent.loss(batch, generator)
    return {f"val/{k}": float(v) for k, v in info.items()}


def _check_finite(m: _Member) -> None:
    bad = {k: int(v) for k, v in m.first_bad.items() if int(v) >= 0}
    if bad:
        component, step = min(bad.items(), key=lambda kv: kv[1])
        kept = torch.load(m.checkpoint_path, weights_only=False)["agent"]["step"] if m.checkpoint_path.exists() else 0
        raise NonFiniteLoss(f"{m.out_dir}: training stopped: non-finite {component} at step {step} (seed {m.seed}); "
                            f"the checkpoint at step {kept} is kept")


class _ModelSaver:
    """Writes a member's networks, config and provenance (model.pt, snapshots); the data hash computed once."""

    def __init__(self, spec: Spec, method: str, env: str, entry: Any, data_path: str | Path, device: torch.device,
                 obs_dim: int, action_dim: int, goal_dim: int, hashes: dict[str, str] | None = None,
                 group: dict[str, Any] | None = None) -> None:
        self.spec, self.method, self.env, self.entry, self.data_path = spec, method, env, entry, data_path
        self.group = group or {"mode": "exact"}  # the seed group the member trained in (provenance)
        self.device, self.dims = device, {"obs_dim": obs_dim, "action_dim": action_dim, "goal_dim": goal_dim}
        self._hashes = {} if hashes is None else hashes  # shared by the savers of one job

    def __call__(self, m: _Member, path: Path) -> None:
        if "data" not in self._hashes:
            self._hashes["data"] = data_hash(self.data_path)
        meta = provenance(self.spec, method=self.method, env=self.env, seed=m.seed, device=str(self.device),
                          steps=m.agent.step, data=str(self.data_path), data_sha256=self._hashes["data"],
                          torch_threads=torch.get_num_threads(), seed_group=self.group)
        _save(path, {"method": self.entry.registry, "label": self.method, "config": asdict(self.entry.config),
                     **self.dims, "networks": m.agent.state_dict(), "provenance": meta})


def _finish(m: _Member, sampler: Any, device: torch.device, save: _ModelSaver) -> dict[str, Any]:
    config = m.config
    norms = np.zeros(0, dtype=np.float32)  # the paper's Fig. 2 diagnostic, on one fresh batch (empty: no such norms)
    if hasattr(m.agent, "per_sample_actor_grad_norms"):
        diag = _to_tensors(sampler.sample(min(config.batch_size, 512), np.random.default_rng([m.seed, 2])), device)
        norms = m.agent.per_sample_actor_grad_norms(diag).cpu().numpy()
    atomic_savez(m.out_dir / "grad_norms.npz", {"norms": norms, "step": np.asarray(m.agent.step)})
    save(m, m.out_dir / "model.pt")
    atomic_write_text(m.metrics_path, metrics_csv(m.rows))
    if m.tensorboard is not None:
        m.tensorboard.close()
    m.checkpoint_path.unlink(missing_ok=True)
    return {"steps": m.agent.step, "final": m.rows[-1] if m.rows else {}}


def load_agent(model_path: str | Path, device: torch.device | None = None) -> tuple[Agent, dict[str, Any]]:
    """Rebuild an agent from `model.pt` (or a snapshot) for evaluation. Returns (agent in eval mode, the record)."""
    record = torch.load(model_path, map_location="cpu", weights_only=False)
    cls = method_class(record["method"])
    config = cls.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in record["config"].items()})
    device = device or pick_device(config.device)
    agent = cls(config, record["obs_dim"], record["action_dim"], record["goal_dim"], device, 0)
    agent.load_state_dict(record["networks"])
    agent.eval()
    return agent, record

