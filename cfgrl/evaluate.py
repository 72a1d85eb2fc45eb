"""Evaluation: many episodes stepped in lockstep, the policy called once per step on the whole batch.

Goal-conditioned OGBench evaluation: each of the env's evaluation tasks (fixed start and goal cells) is run for
`episodes_per_task` episodes; an episode succeeds when the agent reaches the goal (OGBench ends it there).
Episode seeds depend only on (eval seed, training seed, task, episode), so every method and every w of one
training seed faces the same episodes (paired comparisons).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from cfgrl.agent import Agent


def episode_seed(base: int, train_seed: int, task: int, episode: int) -> int:
    return int(np.random.SeedSequence([base, train_seed, task, episode]).generate_state(1)[0])


def evaluate_goal_conditioned(
    agent: Agent,
    env_id: str,
    tasks: list[int],
    episodes_per_task: int,
    w: float | None,
    eval_seed: int,
    train_seed: int,
) -> dict[str, Any]:
    """Run len(tasks) * episodes_per_task episodes of an OGBench goal-conditioned env.

    Returns {'success': mean over episodes, 'episodes': [{task, episode, success, length}], 'per_task': {...}}.
    """
    import gymnasium
    import ogbench.locomaze  # noqa: F401
    import ogbench.manipspace  # noqa: F401

    slots = [(task, ep) for task in tasks for ep in range(episodes_per_task)]
    envs, obs, goals = [], [], []
    for task, ep in slots:
        env = gymnasium.make(env_id)
        seed = episode_seed(eval_seed, train_seed, task, ep)
        np.random.seed(seed % (2**32))  # OGBench draws start/goal jitter from the global RNG
        env.action_space.seed(seed)
        ob, info = env.reset(seed=seed, options=dict(task_id=task, render_goal=False))
        envs.append(env)
        obs.append(ob)
        goals.append(info["goal"])
    n = len(slots)
    obs_arr = np.asarray(obs, dtype=np.float32)
    goal_arr = np.asarray(goals, dtype=np.float32)
    active = np.ones(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    length = np.zeros(n, dtype=np.int64)
    agent.reseed(episode_seed(eval_seed, train_seed, 0, 2**31 - 1))  # policy noise, shared by every w
    device = agent.device
    goal_t = torch.from_numpy(goal_arr).to(device)
    w_value = 1.0 if w is None else float(w)
    policy_time = 0.0
    t0 = time.perf_counter()
    while active.any():
        idx = np.flatnonzero(active)
        t_p = time.perf_counter()
        actions = agent.act(torch.from_numpy(obs_arr[idx]).to(device), goal_t[idx], w_value).cpu().numpy()
        policy_time += time.perf_counter() - t_p
        for j, i in enumerate(idx):
            ob, _, terminated, truncated, info = envs[i].step(actions[j])
            obs_arr[i] = ob
            length[i] += 1
            if terminated or truncated:
                active[i] = False
                success[i] = bool(info.get("success", 0.0))
    for env in envs:
        env.close()
    per_task = {str(t): float(np.mean([success[k] for k, (tt, _) in enumerate(slots) if tt == t])) for t in tasks}
    return {
        "success": float(success.mean()),
        "per_task": per_task,
        "episodes": [{"task": t, "episode": e, "success": bool(success[k]), "length": int(length[k])}
                     for k, (t, e) in enumerate(slots)],
        "wall_s": time.perf_counter() - t0,
        "policy_s": policy_time,
    }
