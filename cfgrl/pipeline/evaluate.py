"""Evaluation of a checkpoint: every cell (w value x split) of it in one lockstep batch.

The env kind sets up each split's episodes (cfgrl.envs.registry), copied once per w; the one lockstep rollout
(cfgrl.envs.rollout) steps all of them with one agent call per step on every episode still running, each row with
its own w, goal and noise (conditional and null branches in the same forward pass); finished episodes drop out.
One builder turns the rollout into the result record of each cell file.

OGBench goal-conditioned envs: each evaluation task (fixed start and goal cells) runs `episodes_per_task`
episodes, the policy sees the task's goal. Single-task envs: the env's one task, no goal. An episode succeeds
when the agent reaches the goal (OGBench ends it there); the return is the sum of rewards.
dm_control tasks and Minari datasets: full episodes of the one task, episode return (success is undefined).

Randomness: an episode's env seed and its policy noise depend only on (split base seed, training seed, task,
episode), so every method and every w of one training seed faces the same episodes with the same noise (paired
comparisons), and a cell's numbers do not depend on which other cells share its batch: on CPU each row's actions
are independent of the batch (cfgrl.core.flow.row_stable), so evaluating all w at once gives, cell by cell, what
evaluating each w alone gives.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cfgrl.core.agent import Agent
from cfgrl.envs.registry import EnvInfo, eval_group
from cfgrl.envs.rollout import ProcessSteps, SerialSteps, run_lockstep
from cfgrl.seeding import derive_seed

if TYPE_CHECKING:
    from cfgrl.pipeline.spec import Spec

NOISE_KEY = 1  # fifth key of an episode's policy-noise seed (its env seed has four)
NOISE_CHUNK = 64  # steps of noise drawn at once per episode


class NoiseStreams:
    """One standard-normal stream per row (episode), float32 (n_rows, dim) per call: row i's k-th draw is the same
    whichever rows are asked for with it."""

    def __init__(self, seeds: Sequence[int], dim: int) -> None:
        self.generators = [np.random.default_rng(s) for s in seeds]
        self.dim = dim
        self.buffer = np.zeros((len(seeds), NOISE_CHUNK, dim), dtype=np.float32)
        self.position = np.zeros(len(seeds), dtype=np.int64)

    def next(self, rows: np.ndarray) -> np.ndarray:
        """The next draw of each row in `rows` (k,) -> (k, dim)."""
        offset = self.position[rows] % NOISE_CHUNK
        for i in rows[offset == 0]:
            self.buffer[i] = self.generators[i].standard_normal((NOISE_CHUNK, self.dim), dtype=np.float32)
        self.position[rows] += 1
        return self.buffer[rows, offset]


def evaluate_checkpoint(
    agent: Agent,
    env: EnvInfo,
    tasks: list[int],
    episodes_per_task: int,
    ws: Sequence[float | None],
    bases: Mapping[str, int],
    train_seed: int,
    env_spec: str | None = None,
    workers: int = 1,
) -> dict[tuple[str, float | None], dict[str, Any]]:
    """Every cell of a checkpoint: for each split (its base seed in `bases`, e.g. {'test': 10000, 'validation':
    20000}) and each w (None: an unguided method), len(tasks) x episodes_per_task episodes (dm_control and Minari:
    episodes_per_task episodes of the one task), all stepped in one lockstep batch.

    workers > 1: the (split, w) groups of episodes are built and stepped in that many simulator processes
    (cfgrl.envs.rollout.ProcessSteps; at most one per group), the policy still called once per step on every
    running row here; the numbers are those of workers = 1.

    env_spec: Minari envs only, the evaluation env's JSON gymnasium EnvSpec (as `cfgrl data` stores it in the
    dataset file); None reads it from the local dataset (MINARI_DATASETS_PATH).
    Returns {(split, w): {'success': mean over episodes (NaN where episodes have no success flag), 'return': mean
    return, 'per_task': {task: success}, 'episodes': [{task, episode, success, return, length}], 'wall_s',
    'policy_s' (of the whole batch), 'cells_in_batch'}}.
    """
    t0 = time.perf_counter()
    if agent.guided and None in ws:
        raise ValueError(f"{type(agent).__name__} is guided: every cell needs a w")
    groups = [(split, base, w) for split, base in bases.items() for w in ws]  # one group of episodes per cell
    builders = [partial(eval_group, env, tasks, episodes_per_task, base, train_seed, env_spec)
                for _, base, _ in groups]
    if workers > 1 and len(groups) > 1:
        steps: ProcessSteps | SerialSteps = ProcessSteps(builders, workers)
        built = steps.groups
    else:
        in_process = [build() for build in builders]
        steps = SerialSteps([e for episodes, *_ in in_process for e in episodes])
        built = [(first, goals, slots) for _, first, goals, slots in in_process]
    first_obs, goals, rows_w, noise_seeds, layout = [], [], [], [], []
    for (split, base, w), (group_first, group_goals, slots) in zip(groups, built, strict=True):
        first_obs.append(group_first)
        if group_goals is not None:
            goals.append(group_goals)
        if agent.guided:
            rows_w += [float(w)] * len(slots)  # type: ignore[arg-type]
        noise_seeds += [derive_seed(base, train_seed, task, ep, NOISE_KEY) for task, ep in slots]
        layout.append((split, w, slots))
    goal_t = torch.from_numpy(np.concatenate(goals)).to(agent.device) if goals else None
    w_t = torch.tensor(rows_w, dtype=torch.float32, device=agent.device) if agent.guided else None
    noise = NoiseStreams(noise_seeds, agent.noise_dim) if agent.noise_dim else None

    def policy(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        idx = torch.from_numpy(rows).to(agent.device)
        eps = torch.from_numpy(noise.next(rows)).to(agent.device) if noise is not None else None
        obs_t, goal_rows = torch.from_numpy(obs).to(agent.device), goal_t[idx] if goal_t is not None else None
        if w_t is None:  # an unguided method: no w at all
            return agent.act(obs_t, goal_rows, noise=eps).cpu().numpy()
        return agent.act(obs_t, goal_rows, w_t[idx], eps).cpu().numpy()

    run = run_lockstep(steps, np.concatenate(first_obs), policy)
    wall = time.perf_counter() - t0
    out, start = {}, 0
    for split, w, slots in layout:
        rows = slice(start, start + len(slots))
        start += len(slots)
        flags = run.success[rows] if env.kind.has_success else None
        returns, lengths = run.returns[rows], run.lengths[rows]
        per_task = {} if flags is None else {
            str(t): float(np.mean([flags[k] for k, (tt, _) in enumerate(slots) if tt == t])) for t in tasks}
        out[(split, w)] = {
            "success": float("nan") if flags is None else float(flags.mean()),
            "return": float(returns.mean()),
            "per_task": per_task,
            "episodes": [{"task": t, "episode": e, "success": None if flags is None else bool(flags[k]),
                          "return": float(returns[k]), "length": int(lengths[k])}
                         for k, (t, e) in enumerate(slots)],
            "wall_s": wall,
            "policy_s": run.policy_s,
            "cells_in_batch": len(layout),
        }
    return out


def evaluate(
    agent: Agent,
    env: EnvInfo,
    tasks: list[int],
    episodes_per_task: int,
    w: float | None,
    eval_seed: int,
    train_seed: int,
    env_spec: str | None = None,
) -> dict[str, Any]:
    """One cell: `evaluate_checkpoint` for one w on the episodes of base seed `eval_seed` (the same numbers the
    cell gets when evaluated together with others)."""
    return evaluate_checkpoint(agent, env, tasks, episodes_per_task, [w], {"cell": eval_seed}, train_seed,
                               env_spec)[("cell", w)]


def knn_kl(x: np.ndarray, y: np.ndarray, k: int = 3, resolution: float = 1e-6) -> float:
    """The k-nearest-neighbour estimate of KL(P || Q) from samples x (n, d) ~ P and y (m, d) ~ Q (Wang, Kulkarni
    and Verdu 2009): (d / n) sum_i log(nu_k(i) / rho_k(i)) + log(m / (n - 1)), rho_k(i) the distance of x_i to its
    k-th neighbour among the other x, nu_k(i) to its k-th neighbour among y. Consistent as n, m grow; tested on
    Gaussians with known KL. Distances below `resolution` count as `resolution`: clipped actions pile up on
    the bounds (atoms, where the estimate is undefined); an atom both policies share then adds 0, one only P has
    adds a large term (its true KL is infinite)."""
    from scipy.spatial import cKDTree

    n, d = x.shape
    m = len(y)
    rho = cKDTree(x).query(x, k=k + 1)[0][:, k]  # the nearest neighbour of x_i among x is x_i itself
    nu = cKDTree(y).query(x, k=k)[0]
    nu = nu[:, k - 1] if k > 1 else nu
    return float(d * np.mean(np.log(np.maximum(nu, resolution) / np.maximum(rho, resolution))) + np.log(m / (n - 1)))


def _held_out_tensors(agent: Agent, batch: dict[str, np.ndarray]
                      ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """observations (N, obs_dim), goals (N, goal_dim) or None, and the dataset's actions (N, A) on agent.device."""
    def tensor(key: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(batch[key])).to(agent.device)

    return tensor("observations"), tensor("goals") if "goals" in batch else None, tensor("actions")


@torch.no_grad()
def divergences(agent: Agent, batch: dict[str, np.ndarray], ws: Sequence[float], seed: int,
                kl_states: int = 64, kl_samples: int = 64) -> dict[float, dict[str, float]]:
    """How far pi_w moves from pi_0 (w = 0: the flow behaviour policy) on held-out dataset states, for each w:
    'distance_to_w0', the mean over states of ||a_w - a_0||^2 with every w sampled from the same noise; 'kl_to_w0',
    the mean over the first `kl_states` states of the k-NN estimate of KL(pi_w(.|s) || pi_0(.|s)) from
    `kl_samples` actions of each; 'data_distance', the mean ||a_w - a||^2 to the dataset's own action a (the same
    quantity for any method: the budget rule's common currency). batch: observations (N, obs_dim), actions (N, A)
    [, goals (N, goal_dim)]. The seed fixes every noise draw."""
    obs, goals, data_actions = _held_out_tensors(agent, batch)
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy(rng.standard_normal((len(obs), agent.noise_dim), dtype=np.float32)).to(agent.device)
    s = min(kl_states, len(obs))
    rep = lambda x: None if x is None else x[:s].repeat_interleave(kl_samples, 0)  # noqa: E731
    kl_obs, kl_goals = rep(obs), rep(goals)
    kl_noise = [torch.from_numpy(rng.standard_normal((s * kl_samples, agent.noise_dim), dtype=np.float32))
                .to(agent.device) for _ in range(2)]  # independent samples for pi_w and pi_0
    a0 = agent.act(obs, goals, 0.0, noise)
    kl_a0 = agent.act(kl_obs, kl_goals, 0.0, kl_noise[1]).cpu().numpy().reshape(s, kl_samples, -1)
    out = {}
    for w in ws:
        aw = a0 if float(w) == 0.0 else agent.act(obs, goals, float(w), noise)
        kl_aw = agent.act(kl_obs, kl_goals, float(w), kl_noise[0]).cpu().numpy().reshape(s, kl_samples, -1)
        out[float(w)] = {"distance_to_w0": float((aw - a0).pow(2).sum(-1).mean()),
                         "kl_to_w0": float(np.mean([knn_kl(kl_aw[i], kl_a0[i]) for i in range(s)])),
                         "data_distance": float((aw - data_actions).pow(2).sum(-1).mean())}
    return out


@torch.no_grad()
def data_distance(agent: Agent, batch: dict[str, np.ndarray], seed: int) -> float:
    """Mean ||a - a_data||^2 of an unguided policy's action to the dataset's action on held-out states (see
    `divergences`)."""
    obs, goals, data_actions = _held_out_tensors(agent, batch)
    noise = None
    if agent.noise_dim:
        noise = torch.from_numpy(np.random.default_rng(seed).standard_normal((len(obs), agent.noise_dim),
                                                                             dtype=np.float32)).to(agent.device)
    actions = agent.act(obs, goals, noise=noise)
    return float((actions - data_actions).pow(2).sum(-1).mean())


def evaluate_job(spec: Spec, label: str, env_name: str, seed: int, model: Path, data: Path | None,
                 splits: Sequence[str], outs: Sequence[Path], step: int | None = None, workers: int = 1) -> list[str]:
    """One evaluation job: the checkpoint `model` of method entry `label`, every w of the entry's grid (an unguided
    method: one cell with no w) on each split, all in one lockstep batch, written to the cell files `outs` in
    split-major order (for split in splits: for w in grid), the order the rule lists them. `data`: the training
    file, whose held-out states measure the divergences from pi_0 (skipped when None). `step`: the model is the
    snapshot of that training step. `workers`: simulator processes (the job's threads; see `evaluate_checkpoint`).
    Returns one summary line per cell."""
    from cfgrl.data.layout import DataError
    from cfgrl.io import atomic_write_json
    from cfgrl.pipeline.provenance import provenance
    from cfgrl.pipeline.spec import w_label
    from cfgrl.pipeline.train import load_agent, make_sampler

    entry, env_entry = spec.methods[label], spec.envs[env_name]
    ws: list[float | None] = list(entry.w) if entry.w is not None else [None]
    if len(outs) != len(splits) * len(ws):
        raise ValueError(f"{len(outs)} cell files for {len(splits)} splits x {len(ws)} w")
    agent, record = load_agent(model)
    info = env_entry.info
    bases = {split: spec.eval.base(split) for split in splits}
    cells = evaluate_checkpoint(agent, info, list(env_entry.tasks), env_entry.episodes_per_task, ws, bases, seed,
                                env_spec=info.kind.eval_env_spec(info, env_entry.data, data), workers=workers)
    distances: dict[float | None, dict[str, float]] = {}
    if data is not None:  # the reviewers' question: how far does pi_w move from pi_0 (and from the data)?
        try:  # held-out states: the validation file's
            sampler = make_sampler(info, data, type(agent), agent.config, validation=True)
        except (DataError, FileNotFoundError):
            sampler = make_sampler(info, data, type(agent), agent.config)
        states = sampler.sample(512, np.random.default_rng([seed, 3]))
        noise_seed = derive_seed(spec.eval.seed, seed, 0, 3)
        if agent.guided:
            distances = dict(divergences(agent, states, [w for w in ws if w is not None], noise_seed))
        else:
            distances = {None: {"data_distance": data_distance(agent, states, noise_seed)}}
    settings = {"temperature": float(agent.temperature)} if hasattr(agent, "temperature") else {}
    lines = []
    for ((split, w), result), out in zip(cells.items(), outs, strict=True):
        result.update(distances.get(w, {}))
        result.update(info.kind.cell_extras(result["return"], data))
        result.update(method=label, registry=record["method"], settings=settings, env=env_name, seed=seed)
        if w is not None:  # an unguided method's cell has no w
            result["w"] = w
        result.update(split=split, provenance=provenance(spec, device=str(agent.device), eval_seed=bases[split],
                                                         model=str(model), train_provenance=record["provenance"]))
        result.update(step=record["provenance"]["steps"], snapshot=step is not None)
        atomic_write_json(out, result)
        lines.append(f"{split} {label} {env_name} seed{seed}" + ("" if w is None else f" w={w_label(w)}")
                     + f": success {result['success']:.3f}, return {result['return']:.2f} "
                     f"({len(result['episodes'])} episodes) -> {out}")
    lines.append(f"{len(cells)} cells in {next(iter(cells.values()))['wall_s']:.1f} s")
    return lines
