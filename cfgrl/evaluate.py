"""Evaluation: many episodes stepped in lockstep, the policy called once per step on the whole batch.

OGBench goal-conditioned envs: each evaluation task (fixed start and goal cells) runs `episodes_per_task`
episodes, the policy sees the task's goal. Single-task envs: the env's one task, no goal. An episode succeeds
when the agent reaches the goal (OGBench ends it there); the return is the sum of rewards.
dm_control tasks and Minari datasets: full episodes of the one task, episode return (success is undefined).
A Minari dataset is evaluated in its own gymnasium environment (its eval env spec, else the env it was collected
with), dict observations flattened as the dataset's were, actions clipped to the action space.
Episode seeds depend only on (eval seed, training seed, task, episode), so every method and every w of one
training seed faces the same episodes (paired comparisons).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from cfgrl.agent import Agent
from cfgrl.envs import EnvInfo


def episode_seed(base: int, train_seed: int, task: int, episode: int) -> int:
    return int(np.random.SeedSequence([base, train_seed, task, episode]).generate_state(1)[0])


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
    """Run len(tasks) * episodes_per_task episodes of an env with one batched policy call per step.

    env_spec: Minari envs only, the evaluation env's JSON gymnasium EnvSpec (as `cfgrl data` stores it in the
    dataset file); None reads it from the local dataset (MINARI_DATASETS_PATH).
    Returns {'success': mean over episodes (NaN for dm_control and Minari), 'return': mean return,
    'per_task': {task: success}, 'episodes': [{task, episode, success, return, length}], 'wall_s', 'policy_s'}.
    """
    if env.kind == "dmc":
        return _evaluate_dmc(agent, env, episodes_per_task, w, eval_seed, train_seed)
    if env.kind == "minari":
        if env_spec is None:
            from cfgrl.minari_source import eval_env_spec

            env_spec = eval_env_spec(env.eval_env_id)
        return _evaluate_minari(agent, env, episodes_per_task, w, eval_seed, train_seed, env_spec)
    import gymnasium
    import ogbench  # noqa: F401  (registers the environments)

    slots = [(task, ep) for task in tasks for ep in range(episodes_per_task)]
    envs, obs, goals = [], [], []
    for task, ep in slots:
        e = gymnasium.make(env.eval_env_id, **({"use_oracle_rep": True} if env.oracle_rep else {}))
        seed = episode_seed(eval_seed, train_seed, task, ep)
        np.random.seed(seed % (2**32))  # OGBench draws start/goal jitter from the global RNG
        e.action_space.seed(seed)
        options = {"task_id": task, "render_goal": False} if env.goal_conditioned else {}
        ob, info = e.reset(seed=seed, options=options)
        envs.append(e)
        obs.append(ob)
        if env.goal_conditioned:
            goals.append(info["goal"])
    run = _run_lockstep(agent, envs, np.asarray(obs, dtype=np.float32), w, eval_seed, train_seed,
                        goals=np.asarray(goals, dtype=np.float32) if goals else None)
    success, returns, length = run["success"], run["returns"], run["lengths"]
    per_task = {str(t): float(np.mean([success[k] for k, (tt, _) in enumerate(slots) if tt == t])) for t in tasks}
    return {
        "success": float(success.mean()),
        "return": float(returns.mean()),
        "per_task": per_task,
        "episodes": [{"task": t, "episode": e, "success": bool(success[k]), "return": float(returns[k]),
                      "length": int(length[k])} for k, (t, e) in enumerate(slots)],
        "wall_s": run["wall_s"],
        "policy_s": run["policy_s"],
    }


def _evaluate_dmc(agent: Agent, env: EnvInfo, episodes: int, w: float | None, eval_seed: int, train_seed: int
                  ) -> dict[str, Any]:
    """dm_control: `episodes` full-length episodes stepped in lockstep; success is undefined (NaN)."""
    from cfgrl.dmc import evaluate as dmc_evaluate

    agent.reseed(episode_seed(eval_seed, train_seed, 0, 2**31 - 1))
    w_value = 1.0 if w is None else float(w)
    policy_time = 0.0

    def policy(obs: np.ndarray) -> np.ndarray:
        nonlocal policy_time
        t = time.perf_counter()
        out = agent.act(torch.from_numpy(obs.astype(np.float32)).to(agent.device), None, w_value).cpu().numpy()
        policy_time += time.perf_counter() - t
        return out

    t0 = time.perf_counter()
    seed = episode_seed(eval_seed, train_seed, 1, 0) % (2**31 - 1)
    res = dmc_evaluate(env.name, policy, episodes, seed)
    return {
        "success": float("nan"),
        "return": float(res.returns.mean()),
        "per_task": {},
        "episodes": [{"task": 1, "episode": i, "success": None, "return": float(r), "length": int(n)}
                     for i, (r, n) in enumerate(zip(res.returns, res.lengths, strict=True))],
        "wall_s": time.perf_counter() - t0,
        "policy_s": policy_time,
    }


def _evaluate_minari(agent: Agent, env: EnvInfo, episodes: int, w: float | None, eval_seed: int, train_seed: int,
                     env_spec: str) -> dict[str, Any]:
    """A Minari dataset's gymnasium env: `episodes` episodes stepped in lockstep (one policy call per step on the
    (n_active, obs_dim) batch of flattened observations), episode i reset with episode_seed(eval_seed,
    train_seed, 1, i); actions (n_active, A) clipped to the env's Box action space; success is undefined (NaN)."""
    from cfgrl.minari_source import flatten_observation, make_eval_env

    envs, obs = [], []
    for ep in range(episodes):
        e = make_eval_env(env_spec, env.name)
        seed = episode_seed(eval_seed, train_seed, 1, ep)
        e.action_space.seed(seed)
        ob, _ = e.reset(seed=seed)
        envs.append(e)
        obs.append(flatten_observation(ob))
    run = _run_lockstep(agent, envs, np.stack(obs).astype(np.float32), w, eval_seed, train_seed,
                        flatten=flatten_observation, clip_to_space=True)
    returns, length = run["returns"], run["lengths"]
    return {
        "success": float("nan"),
        "return": float(returns.mean()),
        "per_task": {},
        "episodes": [{"task": 1, "episode": i, "success": None, "return": float(returns[i]), "length": int(length[i])}
                     for i in range(episodes)],
        "wall_s": run["wall_s"],
        "policy_s": run["policy_s"],
    }


def _run_lockstep(agent: Agent, envs: list, obs: np.ndarray, w: float | None, eval_seed: int, train_seed: int,
                  goals: np.ndarray | None = None, flatten: Callable[[Any], np.ndarray] | None = None,
                  clip_to_space: bool = False) -> dict[str, Any]:
    """Step gymnasium `envs` in lockstep until every episode ends, one policy call per step on the active ones.

    obs: the first observations (n, obs_dim); goals: (n, goal_dim) or None. flatten: maps a raw observation to
    (obs_dim,) (None: used as is). clip_to_space: clip actions to the envs' Box action space and its dtype.
    The policy noise is reseeded from (eval_seed, train_seed) first, so every w of a checkpoint shares it.
    Returns returns (n,), lengths (n,), success (n,) (the last step's info['success']), policy_s, wall_s.
    """
    n = len(envs)
    obs = obs.copy()
    active = np.ones(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    returns = np.zeros(n, dtype=np.float64)
    lengths = np.zeros(n, dtype=np.int64)
    agent.reseed(episode_seed(eval_seed, train_seed, 0, 2**31 - 1))  # policy noise, shared by every w
    goal_t = torch.from_numpy(goals).to(agent.device) if goals is not None else None
    w_value = 1.0 if w is None else float(w)
    space = envs[0].action_space
    policy_time = 0.0
    t0 = time.perf_counter()
    while active.any():
        idx = np.flatnonzero(active)
        t_p = time.perf_counter()
        batch_goals = goal_t[idx] if goal_t is not None else None
        actions = agent.act(torch.from_numpy(obs[idx]).to(agent.device), batch_goals, w_value).cpu().numpy()
        policy_time += time.perf_counter() - t_p
        if clip_to_space:
            actions = np.clip(actions, space.low, space.high).astype(space.dtype, copy=False)
        for j, i in enumerate(idx):
            ob, reward, terminated, truncated, info = envs[i].step(actions[j])
            obs[i] = ob if flatten is None else flatten(ob)
            returns[i] += float(reward)
            lengths[i] += 1
            if terminated or truncated:
                active[i] = False
                success[i] = bool(info.get("success", 0.0))
    for e in envs:
        e.close()
    return {"returns": returns, "lengths": lengths, "success": success, "policy_s": policy_time,
            "wall_s": time.perf_counter() - t0}


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
