"""Evaluation of a checkpoint: the env kind sets up its episodes (cfgrl.envs.registry), the one lockstep rollout
steps them (cfgrl.envs.rollout) with the agent called once per step on the whole batch, and one builder turns the
rollout into the result record every cell file holds.

OGBench goal-conditioned envs: each evaluation task (fixed start and goal cells) runs `episodes_per_task`
episodes, the policy sees the task's goal. Single-task envs: the env's one task, no goal. An episode succeeds
when the agent reaches the goal (OGBench ends it there); the return is the sum of rewards.
dm_control tasks and Minari datasets: full episodes of the one task, episode return (success is undefined).
Episode seeds depend only on (eval seed, training seed, task, episode), so every method and every w of one
training seed faces the same episodes (paired comparisons); so does the policy noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cfgrl.core.agent import Agent
from cfgrl.envs.registry import EnvInfo
from cfgrl.envs.rollout import run_lockstep
from cfgrl.seeding import derive_seed

POLICY_NOISE_KEY = (0, 2**31 - 1)  # (task, episode) keys of the policy-noise seed: no real episode has them


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
    """Run len(tasks) * episodes_per_task episodes of an env (dm_control and Minari: episodes_per_task episodes of
    the one task) with one batched policy call per step.

    env_spec: Minari envs only, the evaluation env's JSON gymnasium EnvSpec (as `cfgrl data` stores it in the
    dataset file); None reads it from the local dataset (MINARI_DATASETS_PATH).
    Returns {'success': mean over episodes (NaN where episodes have no success flag), 'return': mean return,
    'per_task': {task: success}, 'episodes': [{task, episode, success, return, length}], 'wall_s', 'policy_s'}.
    """
    setup = env.kind.eval_episodes(env, tasks, episodes_per_task, eval_seed, train_seed, env_spec)
    agent.reseed(derive_seed(eval_seed, train_seed, *POLICY_NOISE_KEY))  # policy noise, shared by every w
    goals = torch.from_numpy(setup.goals).to(agent.device) if setup.goals is not None else None
    w_value = 1.0 if w is None else float(w)

    def policy(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        batch_goals = goals[torch.from_numpy(rows)] if goals is not None else None
        return agent.act(torch.from_numpy(obs).to(agent.device), batch_goals, w_value).cpu().numpy()

    run = run_lockstep(setup.episodes, setup.first_obs, policy)
    flags = run.success if env.kind.has_success else None
    per_task = {} if flags is None else {
        str(t): float(np.mean([flags[k] for k, (tt, _) in enumerate(setup.slots) if tt == t])) for t in tasks}
    return {
        "success": float("nan") if flags is None else float(flags.mean()),
        "return": float(run.returns.mean()),
        "per_task": per_task,
        "episodes": [{"task": t, "episode": e, "success": None if flags is None else bool(flags[k]),
                      "return": float(run.returns[k]), "length": int(run.lengths[k])}
                     for k, (t, e) in enumerate(setup.slots)],
        "wall_s": run.wall_s,
        "policy_s": run.policy_s,
    }


@torch.no_grad()
def action_shift(agent: Agent, batch: dict[str, np.ndarray], w: float, seed: int) -> float:
    """How far pi_w moves from pi_0 (flow BC, the behaviour policy) on dataset states: the mean over states of
    ||a_w - a_0||^2, both sampled from the same noise. batch: observations (N, obs_dim) [, goals (N, goal_dim)]."""
    obs = torch.from_numpy(np.ascontiguousarray(batch["observations"])).to(agent.device)
    goals = torch.from_numpy(np.ascontiguousarray(batch["goals"])).to(agent.device) if "goals" in batch else None
    actions = []
    for weight in (w, 0.0):
        agent.reseed(seed)
        actions.append(agent.act(obs, goals, weight))
    return float((actions[0] - actions[1]).pow(2).sum(-1).mean())
