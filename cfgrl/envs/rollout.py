"""The one lockstep rollout: many episodes stepped together, the policy called once per step on the batch of
episodes still running (finished ones drop out of the batch). Every env kind plays through it: gymnasium envs
(OGBench, Minari) and dm_control tasks, each behind a small adapter with the same `step` signature.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

# policy(observations (k, obs_dim) float32, rows (k,) int64: which episodes they are) -> actions (k, action_dim)
Policy = Callable[[np.ndarray, np.ndarray], np.ndarray]


class Episode(Protocol):
    """One running episode: `step(action (A,)) -> (observation (obs_dim,), reward, done, success)`."""

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]: ...

    def close(self) -> None: ...


class GymEpisode:
    """A gymnasium env as an Episode: done = terminated or truncated; success = info['success'] of that step.
    flatten maps a raw observation to (obs_dim,) (None: as is); clip_to_space clips actions to the Box action
    space and casts them to its dtype (Minari envs)."""

    def __init__(self, env: Any, flatten: Callable[[Any], np.ndarray] | None = None,
                 clip_to_space: bool = False) -> None:
        self.env, self.flatten, self.clip_to_space = env, flatten, clip_to_space

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        if self.clip_to_space:
            space = self.env.action_space
            action = np.clip(action, space.low, space.high).astype(space.dtype, copy=False)
        ob, reward, terminated, truncated, info = self.env.step(action)
        done = bool(terminated or truncated)
        ob = ob if self.flatten is None else self.flatten(ob)
        return ob, float(reward), done, done and bool(info.get("success", 0.0))

    def close(self) -> None:
        self.env.close()


@dataclass
class Rollout:
    """Per-episode results, rows in the order the episodes were given: returns (n,) float64, lengths (n,) int64,
    success (n,) bool (the last step's success flag), and the seconds spent in the policy and in total."""

    returns: np.ndarray
    lengths: np.ndarray
    success: np.ndarray
    policy_s: float
    wall_s: float


def run_lockstep(episodes: list[Episode], first_obs: np.ndarray, policy: Policy,
                 max_steps: int | None = None) -> Rollout:
    """Step `episodes` (their first observations (n, obs_dim)) until every one is done (or `max_steps`), one policy
    call per step on the rows still running. Closes the episodes' envs at the end."""
    n = len(episodes)
    obs = np.array(first_obs, dtype=np.float32, copy=True)
    active = np.ones(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    returns = np.zeros(n, dtype=np.float64)
    lengths = np.zeros(n, dtype=np.int64)
    policy_s, t0, step = 0.0, time.perf_counter(), 0
    while active.any() and (max_steps is None or step < max_steps):
        rows = np.flatnonzero(active)
        t_p = time.perf_counter()
        actions = np.asarray(policy(obs[rows], rows))
        policy_s += time.perf_counter() - t_p
        if actions.shape[0] != len(rows):
            raise ValueError(f"policy returned {actions.shape[0]} actions for {len(rows)} observations")
        for j, i in enumerate(rows):
            ob, reward, done, succeeded = episodes[i].step(actions[j])
            obs[i] = ob
            returns[i] += reward
            lengths[i] += 1
            if done:
                active[i] = False
                success[i] = succeeded
        step += 1
    for e in episodes:
        e.close()
    return Rollout(returns, lengths, success, policy_s, time.perf_counter() - t0)
