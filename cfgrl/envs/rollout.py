"""The one lockstep rollout: many episodes stepped together, the policy called once per step on the batch of
episodes still running (finished ones drop out of the batch). Every env kind plays through it: gymnasium envs
(OGBench, Minari) and dm_control tasks, each behind a small adapter with the same `step` signature.

The simulators step in this process (`SerialSteps`) or, for a job with several threads, in worker processes that
each build and step their own groups of episodes (`ProcessSteps`; Python env wrappers hold the GIL, so threads
would not help). Each episode is its own env, so where it steps changes no number.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from collections.abc import Callable, Sequence
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


class Steps(Protocol):
    """Episodes stepped by row: `step(rows (k,) int64, actions (k, A))` steps those episodes once and returns
    (observations (k, obs_dim), rewards (k,) float64, done (k,) bool, success (k,) bool); `close()` ends them."""

    def step(self, rows: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        ...

    def close(self) -> None: ...


class SerialSteps:
    """Episodes stepped one after the other in this process."""

    def __init__(self, episodes: Sequence[Episode]) -> None:
        self.episodes = list(episodes)

    def step(self, rows: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        results = [self.episodes[i].step(a) for i, a in zip(rows, actions, strict=True)]
        return (np.stack([r[0] for r in results]), np.array([r[1] for r in results], dtype=np.float64),
                np.array([r[2] for r in results], bool), np.array([r[3] for r in results], bool))

    def close(self) -> None:
        for e in self.episodes:
            e.close()


# build() -> (episodes, first observations (n, obs_dim), goals (n, goal_dim) or None, anything the caller wants
# back about them, e.g. their slots): one group of episodes, built inside the process that steps it
GroupBuilder = Callable[[], tuple[Sequence[Episode], np.ndarray, np.ndarray | None, Any]]


def _worker(conn: Any, builders: list[GroupBuilder]) -> None:
    """A simulator process: builds its groups, sends (first obs, goals, extra) of each, then steps rows on
    request until told to close. Any error goes back as ('error', traceback)."""
    steps = None
    try:
        built = [build() for build in builders]
        steps = SerialSteps([e for episodes, _, _, _ in built for e in episodes])
        conn.send(("built", [(first, goals, extra) for _, first, goals, extra in built]))
        while True:
            message = conn.recv()
            if message[0] == "close":
                break
            _, rows, actions = message
            conn.send(("stepped", steps.step(rows, actions)))
    except Exception:  # noqa: BLE001  (any failure is the caller's to report)
        try:
            conn.send(("error", traceback.format_exc()))
        except OSError:  # the caller is gone
            pass
    finally:
        if steps is not None:
            steps.close()
        conn.close()


class ProcessSteps:
    """Groups of episodes built and stepped in `workers` processes (group g in process g mod workers); rows are
    numbered group after group in the order of `builders`. `groups` holds, per group, (first observations, goals,
    extra) as its builder returned them."""

    def __init__(self, builders: Sequence[GroupBuilder], workers: int) -> None:
        workers = max(1, min(workers, len(builders)))
        context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch's thread pool
        self.conns, self.processes = [], []
        for w in range(workers):
            parent, child = context.Pipe()
            process = context.Process(target=_worker, args=(child, list(builders[w::workers])), daemon=True)
            process.start()
            child.close()
            self.conns.append(parent)
            self.processes.append(process)
        built = [self._receive(conn, "built") for conn in self.conns]
        self.groups: list[tuple[np.ndarray, np.ndarray | None, Any]] = [
            built[g % workers][g // workers] for g in range(len(builders))]
        sizes = [len(first) for first, _, _ in self.groups]
        group_of_row = np.repeat(np.arange(len(builders)), sizes)
        self.owner = group_of_row % workers  # (n,) the process that steps each row
        self.local = np.zeros(len(group_of_row), dtype=np.int64)  # (n,) its row in that process
        for w in range(workers):
            self.local[self.owner == w] = np.arange(int((self.owner == w).sum()))

    def _receive(self, conn: Any, expected: str) -> Any:
        try:
            kind, payload = conn.recv()
        except EOFError:  # the process died without a word (killed, crashed in C)
            processes = self.processes
            self.close()  # joins them, so every exit code is known
            codes = [p.exitcode for p in processes]
            raise RuntimeError(f"a simulator worker exited unexpectedly (exit codes {codes})") from None
        if kind == "error":
            self.close()
            raise RuntimeError(f"simulator worker failed:\n{payload}")
        assert kind == expected, kind
        return payload

    def step(self, rows: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        owners = self.owner[rows]
        busy = {w: mine for w in range(len(self.conns)) if (mine := owners == w).any()}  # process -> its rows
        for w, mine in busy.items():
            self.conns[w].send(("step", self.local[rows[mine]], actions[mine]))
        out: list[np.ndarray] | None = None
        for w, mine in busy.items():
            part = self._receive(self.conns[w], "stepped")
            if out is None:
                out = [np.zeros((len(rows), *x.shape[1:]), dtype=x.dtype) for x in part]
            for full, x in zip(out, part, strict=True):
                full[mine] = x
        assert out is not None
        return out[0], out[1], out[2], out[3]

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("close",))
            except (BrokenPipeError, OSError):
                pass
        for process in self.processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
                process.join()
        self.conns, self.processes = [], []


def run_lockstep(steps: Steps, first_obs: np.ndarray, policy: Policy, max_steps: int | None = None) -> Rollout:
    """Step the episodes (`SerialSteps` or `ProcessSteps` over them; their first observations (n, obs_dim)) until
    every one is done (or `max_steps`), one policy call per step on the rows still running. Closes the episodes
    at the end."""
    n = len(first_obs)
    obs = np.array(first_obs, dtype=np.float32, copy=True)
    active = np.ones(n, dtype=bool)
    success = np.zeros(n, dtype=bool)
    returns = np.zeros(n, dtype=np.float64)
    lengths = np.zeros(n, dtype=np.int64)
    policy_s, t0, step = 0.0, time.perf_counter(), 0
    try:
        while active.any() and (max_steps is None or step < max_steps):
            rows = np.flatnonzero(active)
            t_p = time.perf_counter()
            actions = np.asarray(policy(obs[rows], rows))
            policy_s += time.perf_counter() - t_p
            if actions.shape[0] != len(rows):
                raise ValueError(f"policy returned {actions.shape[0]} actions for {len(rows)} observations")
            new_obs, rewards, done, succeeded = steps.step(rows, actions)
            obs[rows] = new_obs
            returns[rows] += rewards
            lengths[rows] += 1
            active[rows[done]] = False
            success[rows[done]] = succeeded[done]
            step += 1
    finally:
        steps.close()
    return Rollout(returns, lengths, success, policy_s, time.perf_counter() - t0)
