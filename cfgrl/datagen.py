"""Offline generation of OGBench datasets in OGBench's own .npz format.

Navigate data (pointmaze): as OGBench makes it, each episode starts in a random free cell with a goal in a
random "vertex" cell (not a straight corridor cell); the agent steps toward the environment's oracle subgoal
(`get_oracle_subgoal`) with Gaussian action noise, and a new goal cell is drawn whenever the current one is
reached. Episodes have a fixed length (1001 steps). Each episode is seeded from (seed, episode index), so the
output does not depend on how many worker processes made it.

`write_episode_splits` (parallel episode generation, train/val split, atomic writes) and `episode_seed` are shared
with the play generator in `cfgrl.manipgen`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from cfgrl.io import atomic_savez, split_evenly

NAVIGATE_EPISODE_STEPS = 1001


def maze_cells(maze_map: np.ndarray) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """All free cells and the free cells that are not straight corridor pieces ("vertex" cells)."""
    free, vertex = [], []
    for i in range(maze_map.shape[0]):
        for j in range(maze_map.shape[1]):
            if maze_map[i, j] != 0:
                continue
            free.append((i, j))
            vertical = maze_map[i - 1, j] == 0 and maze_map[i + 1, j] == 0
            horizontal = maze_map[i, j - 1] == 0 and maze_map[i, j + 1] == 0
            walls_lr = maze_map[i, j - 1] == 1 and maze_map[i, j + 1] == 1
            walls_ud = maze_map[i - 1, j] == 1 and maze_map[i + 1, j] == 1
            if (vertical and walls_lr) or (horizontal and walls_ud):
                continue
            vertex.append((i, j))
    return free, vertex


def _navigate_episodes(env_id: str, seed: int, episode_idxs: list[int], noise: float, steps: int) -> dict:
    import gymnasium
    import ogbench.locomaze  # noqa: F401  (registers the environments)

    env = gymnasium.make(env_id, terminate_at_goal=False, max_episode_steps=steps)
    maze = env.unwrapped
    free, vertex = maze_cells(maze.maze_map)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("observations", "actions", "terminals", "qpos", "qvel")}
    for ep in episode_idxs:
        ep_seed = episode_seed(seed, ep)
        rng = np.random.default_rng(ep_seed)
        np.random.seed(ep_seed % (2**32))  # OGBench's maze draws its start/goal jitter from the global RNG
        env.action_space.seed(ep_seed)
        init_ij = free[rng.integers(len(free))]
        goal_ij = vertex[rng.integers(len(vertex))]
        ob, _ = env.reset(seed=ep_seed, options=dict(task_info=dict(init_ij=init_ij, goal_ij=goal_ij)))
        done = False
        while not done:
            xy = maze.get_xy()
            subgoal_xy, _ = maze.get_oracle_subgoal(xy, maze.cur_goal_xy)
            direction = subgoal_xy - xy
            direction = direction / (np.linalg.norm(direction) + 1e-6)
            action = np.clip(direction + rng.normal(0.0, noise, size=direction.shape), -1.0, 1.0)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if info["success"]:
                maze.set_goal(vertex[rng.integers(len(vertex))])
            out["observations"].append(ob)
            out["actions"].append(action)
            out["terminals"].append(done)
            out["qpos"].append(info["prev_qpos"])
            out["qvel"].append(info["prev_qvel"])
            ob = next_ob
    env.close()
    return {k: np.asarray(v) for k, v in out.items()}


def generate_navigate(
    env_id: str,
    out_path: str | Path,
    episodes: int,
    seed: int = 0,
    noise: float = 0.2,
    episode_steps: int = NAVIGATE_EPISODE_STEPS,
    workers: int | None = None,
) -> dict[str, int]:
    """Write `out_path` (train, `episodes` episodes) and its `-val.npz` twin (episodes // 10, at least 1).

    env_id: an OGBench maze env id such as 'pointmaze-medium-v0'. Returns transition counts per split.
    """
    return write_episode_splits(partial(_navigate_episodes, env_id, seed, noise=noise, steps=episode_steps),
                                out_path, episodes, workers)


def episode_seed(seed: int, episode: int) -> int:
    """The seed of episode `episode` of a dataset generated with `seed` (independent of chunking)."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def write_episode_splits(
    make_episodes: Callable[[list[int]], dict[str, np.ndarray]],
    out_path: str | Path,
    episodes: int,
    workers: int | None = None,
    dtypes: dict[str, type] | None = None,
) -> dict[str, int]:
    """Generate episodes 0 .. episodes + n_val - 1 (n_val = max(1, episodes // 10)) and write OGBench's two files.

    `make_episodes(episode_indices)` returns per-step arrays (rows, ...) of those episodes in order, with a
    'terminals' (rows,) key that is true on each episode's last row; it must be picklable (a module-level function
    or a functools.partial of one), as chunks of indices run in `workers` processes (default: all cores). The
    first `episodes` episodes go to `out_path`, the rest to its `-val.npz` twin; arrays are cast to float32 except
    'terminals' (bool) and keys named in `dtypes`. Returns the row counts per split.
    """
    workers = workers or os.cpu_count() or 1
    n_val = max(1, episodes // 10)
    chunks = split_evenly(list(range(episodes + n_val)), workers * 4)
    if workers == 1:
        parts = [make_episodes(c) for c in chunks]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(make_episodes, chunks))
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    split = int(np.flatnonzero(merged["terminals"])[episodes - 1]) + 1
    dtypes = {"terminals": bool, **(dtypes or {})}
    train = {k: v[:split].astype(dtypes.get(k, np.float32)) for k, v in merged.items()}
    val = {k: v[split:].astype(dtypes.get(k, np.float32)) for k, v in merged.items()}
    out_path = Path(out_path)
    atomic_savez(val_path(out_path), val)
    atomic_savez(out_path, train)
    return {"train": len(train["observations"]), "val": len(val["observations"])}


def val_path(path: str | Path) -> Path:
    """OGBench's validation file beside a dataset file: name.npz -> name-val.npz."""
    path = Path(path)
    return path.with_name(path.name.replace(".npz", "-val.npz"))
