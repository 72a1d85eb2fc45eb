"""Offline generation of OGBench manipulation *play* datasets in OGBench's own .npz format.

Families: cube-single, cube-double, scene and puzzle-3x3 (datasets `<family>-play-v0`; the `-singletask[-taskN]`
and `-oraclerep` variants read the same file). The recipe is OGBench's, from `data_gen_scripts/generate_manipspace.py`
with `--dataset_type=play` and the settings in `data_gen_scripts/commands.sh` (github.com/seohongpark/ogbench:
1000 training episodes of 1001 steps per dataset, validation 1/10 of that), re-implemented here on the ogbench
package's own environments and oracles:

- The env is `<family>-v0` made with `mode='data_collection'`, `terminate_at_goal=False` and
  `max_episode_steps=1001`. Every episode starts with a reset, which randomises the arm pose and the objects
  (cube poses; button states; drawer and window positions) and draws a first target task.
- One non-Markovian plan oracle (`ogbench.manipspace.oracles.plan`) per task kind: cube envs use
  `CubePlanOracle`; scene uses cube, button, drawer and window plan oracles; puzzle uses `ButtonPlanOracle`
  with the gripper always closed. An oracle plans keyframes for its target (random approach heights, clearance
  point, timing jitter and final arm pose), interpolates them at the control rate and adds temporally correlated
  Gaussian noise: per-dimension std `noise * (0.05, 0.05, 0.05, 0.3, 1.0)` (xyz, yaw, gripper), smoothed with a
  Gaussian filter of sigma 0.5 steps; OGBench's play noise is 0.1. The action is the normalised difference
  between the plan's next pose and the effector's current one, clipped to [-1, 1]. Play data has no random
  actions.
- When the oracle has played its plan to the end, the env draws a new target (`set_new_target(p_stack)`) and the
  oracle of that target's task kind plans from the current state. p_stack, the chance of stacking the target cube
  on another one: 0 for cube-single, U(0, 0.25) per episode for cube-double, 0.5 for scene (puzzle ignores it).
- Scene health check: an episode in which the cube goes too far right (y >= 0.29) or too far left (y <= -0.3)
  while not at drawer height (z in [0.06, 0.08]) is thrown away and replaced by a fresh one.
- Stored for each step: the observation before the step, the action, `terminals` (true on the episode's last
  step) and the state before the step: `qpos`, `qvel`, and for scene and puzzle `button_states`.

Randomness: the env draws from its own generator (seeded by `reset(seed=...)`), OGBench's oracles from numpy's
global generator; both are seeded from (seed, episode index) at the start of each episode, so the output does not
depend on how many worker processes made it.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from cfgrl.data.episodes import write_episode_splits
from cfgrl.seeding import derive_seed, global_numpy_seed

PLAY_EPISODE_STEPS = 1001
PLAY_NOISE = 0.1  # OGBench's --noise default (plan noise scale)
PLAY_NOISE_SMOOTHING = 0.5  # OGBench's --noise_smoothing default (Gaussian filter sigma, in steps)
# env id -> (low, high) of the per-episode stacking probability p_stack ~ U(low, high)
PLAY_ENVS: dict[str, tuple[float, float]] = {
    "cube-single-v0": (0.0, 0.0),
    "cube-double-v0": (0.0, 0.25),
    "scene-v0": (0.5, 0.5),
    "puzzle-3x3-v0": (0.5, 0.5),  # unused by the puzzle env
}
# file keys and dtypes (OGBench's: float32 except terminals (bool) and button_states (int64))
PLAY_DTYPES: dict[str, type] = {"terminals": bool, "button_states": np.int64}


def play_keys(env_id: str) -> tuple[str, ...]:
    """The keys of a play dataset file: observations, actions, terminals, qpos, qvel (+ button_states)."""
    base = ("observations", "actions", "terminals", "qpos", "qvel")
    return (*base, "button_states") if env_id.startswith(("scene", "puzzle")) else base


def _make_oracles(env: Any, env_id: str, noise: float) -> dict[str, Any]:
    """OGBench's plan oracles for the env's task kinds, keyed by the env's 'privileged/target_task'."""
    from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
    from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
    from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
    from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

    kw = dict(env=env, noise=noise, noise_smoothing=PLAY_NOISE_SMOOTHING)
    if env_id.startswith("cube"):
        return {"cube": CubePlanOracle(**kw)}
    if env_id.startswith("puzzle"):
        return {"button": ButtonPlanOracle(gripper_always_closed=True, **kw)}
    return {"cube": CubePlanOracle(**kw), "button": ButtonPlanOracle(**kw), "drawer": DrawerPlanOracle(**kw),
            "window": WindowPlanOracle(**kw)}


def scene_episode_healthy(qpos: np.ndarray) -> bool:
    """OGBench's scene check on one episode's qpos (T, nq): the cube (qpos[:, 14:17]) stays in view."""
    xyz = qpos[:, 14:17]
    too_right = (xyz[:, 1] >= 0.29).any()
    too_left = ((xyz[:, 1] <= -0.3) & ((xyz[:, 2] < 0.06) | (xyz[:, 2] > 0.08))).any()
    return not (too_right or too_left)


def _play_one(env: Any, oracles: dict[str, Any], p_stack: float, reset_seed: int | None,
              with_buttons: bool) -> dict[str, np.ndarray]:
    """Play one episode to its time limit; per-step arrays (T, ...)."""
    ob, info = env.reset(seed=reset_seed)
    oracle = oracles[info["privileged/target_task"]]
    oracle.reset(ob, info)
    rows: dict[str, list] = {k: [] for k in ("observations", "actions", "terminals", "qpos", "qvel")}
    if with_buttons:
        rows["button_states"] = []
    done = False
    while not done:
        action = np.clip(np.asarray(oracle.select_action(ob, info)), -1.0, 1.0)
        next_ob, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        if oracle.done:  # plan played to its end: the env draws the next target, its oracle takes over
            target_ob, target_info = env.unwrapped.set_new_target(p_stack=p_stack)
            oracle = oracles[target_info["privileged/target_task"]]
            oracle.reset(target_ob, target_info)
        rows["observations"].append(ob)
        rows["actions"].append(action)
        rows["terminals"].append(done)
        rows["qpos"].append(info["prev_qpos"])
        rows["qvel"].append(info["prev_qvel"])
        if with_buttons:
            rows["button_states"].append(info["prev_button_states"])
        ob = next_ob
    return {k: np.asarray(v) for k, v in rows.items()}


def _play_episodes(env_id: str, seed: int, episode_idxs: list[int], noise: float, steps: int) -> dict:
    """Episodes `episode_idxs` of the dataset, concatenated: per-step arrays (sum of T, ...)."""
    import gymnasium
    import ogbench.manipspace  # noqa: F401  (registers the environments)

    env = gymnasium.make(env_id, terminate_at_goal=False, mode="data_collection", max_episode_steps=steps)
    oracles = _make_oracles(env, env_id, noise)
    with_buttons = hasattr(env.unwrapped, "_cur_button_states")
    low, high = PLAY_ENVS[env_id]
    parts = []
    for ep in episode_idxs:
        ep_seed = derive_seed(seed, ep)
        rng = np.random.default_rng(ep_seed)
        reset_seed: int | None = ep_seed
        with global_numpy_seed(ep_seed):  # OGBench's oracles draw their plans from the global RNG
            while True:
                episode = _play_one(env, oracles, float(rng.uniform(low, high)), reset_seed, with_buttons)
                reset_seed = None  # a retry continues the env's random stream
                if not env_id.startswith("scene") or scene_episode_healthy(episode["qpos"]):
                    break
        parts.append(episode)
    env.close()
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def generate_play(
    env_id: str,
    out_path: str | Path,
    episodes: int,
    seed: int = 0,
    noise: float | None = None,
    episode_steps: int = PLAY_EPISODE_STEPS,
    workers: int | None = None,
) -> dict[str, int]:
    """Write `out_path` (train, `episodes` episodes) and its `-val.npz` twin (episodes // 10, at least 1).

    env_id: 'cube-single-v0', 'cube-double-v0', 'scene-v0' or 'puzzle-3x3-v0'. noise: the plan oracles' noise
    scale (None: OGBench's 0.1). Each file holds, with N = episodes * episode_steps rows: observations (N, obs_dim)
    float32, actions (N, 5) float32, terminals (N,) bool, qpos (N, nq) and qvel (N, nv) float32, and for scene
    and puzzle button_states (N, num_buttons) int64. Returns the row counts per split.
    """
    if env_id not in PLAY_ENVS:
        raise ValueError(f"no play generator for {env_id!r} (supported: {', '.join(PLAY_ENVS)})")
    noise = PLAY_NOISE if noise is None else noise
    make = partial(_play_episodes, env_id, seed, noise=noise, steps=episode_steps)
    return write_episode_splits(make, out_path, episodes, workers, dtypes=PLAY_DTYPES)
