"""Offline generation of OGBench datasets in OGBench's own .npz format.

Navigate data (pointmaze): as OGBench makes it, each episode starts in a random free cell with a goal in a
random "vertex" cell (not a straight corridor cell); the agent steps toward the environment's oracle subgoal
(`get_oracle_subgoal`) with Gaussian action noise, and a new goal cell is drawn whenever the current one is
reached. Episodes have a fixed length (1001 steps). Each episode is seeded from (seed, episode index), so the
output does not depend on how many worker processes made it.

Parallel episode chunks and the train/validation split are `cfgrl.data.episodes.write_episode_splits`, shared with
the play generator (`cfgrl.data.play`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from cfgrl.data.episodes import write_episode_splits
from cfgrl.seeding import derive_seed, global_numpy_seed

NAVIGATE_EPISODE_STEPS = 1001
NAVIGATE_NOISE = 0.2  # std of the Gaussian action noise of OGBench's navigate recipe


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
        ep_seed = derive_seed(seed, ep)
        rng = np.random.default_rng(ep_seed)
        with global_numpy_seed(ep_seed):  # OGBench's maze draws its start/goal jitter from the global RNG
            _navigate_one(env, maze, rng, ep_seed, free, vertex, noise, out)
    env.close()
    return {k: np.asarray(v) for k, v in out.items()}


def _navigate_one(env, maze, rng: np.random.Generator, ep_seed: int, free: list, vertex: list, noise: float,
                  out: dict[str, list[np.ndarray]]) -> None:
    """One episode toward oracle subgoals with Gaussian action noise, appended to the per-key row lists `out`."""
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


def generate_navigate(
    env_id: str,
    out_path: str | Path,
    episodes: int,
    seed: int = 0,
    noise: float = NAVIGATE_NOISE,
    episode_steps: int = NAVIGATE_EPISODE_STEPS,
    workers: int | None = None,
) -> dict[str, int]:
    """Write `out_path` (train, `episodes` episodes) and its `-val.npz` twin (episodes // 10, at least 1).

    env_id: an OGBench maze env id such as 'pointmaze-medium-v0'. Returns transition counts per split.
    """
    return write_episode_splits(partial(_navigate_episodes, env_id, seed, noise=noise, steps=episode_steps),
                                out_path, episodes, workers)
