"""dm_control environments for the ExORL experiments, stepped directly (no gymnasium/shimmy wrapper).

Tasks (names as in the paper's Table 1; underscores are accepted too):
- suite tasks: walker-stand, walker-walk, walker-run, quadruped-walk, quadruped-run, cheetah-run;
- custom tasks ExORL defines (written here from the facts of its task files):
  - cheetah-run-backward: the suite cheetah with reward tolerance(-speed, bounds=(10, inf), margin=10,
    value_at_margin=0, sigmoid='linear'), i.e. cheetah-run's reward for running in the negative x direction.
    ExORL's model file differs from the suite's only in the ground plane's visual size (200 instead of 100 m,
    so that the floor is drawn behind the start); MuJoCo planes are infinite for collisions, so the physics is
    the same. We make the same change.
  - jaco-reach-top-left / jaco-reach-top-right: the Kinova Jaco arm from dm_control's manipulation building
    blocks (standard arena, arm + hand with `PERFECT_FEATURES` observables, tool-centre point initialised
    uniformly in the box (-0.2, -0.2, 0.02)..(0.2, 0.2, 0.4) pointing down, random grasp), a fixed target at
    (-0.09, 0.09, 0.001) (top left) or (0.09, 0.09, 0.001) (top right); reward
    tolerance(|tcp - target|, bounds=(0, 0.05), margin=0.05) (Gaussian sigmoid); control step 0.04 s,
    time limit 10 s, so jaco episodes have 250 steps (ExORL's too), not 1000. No target observable (the
    target is fixed; ExORL leaves it out too). With dm_control 1.0.50 the flat jaco observation is 42-d.

Observations are flat float32 vectors: the task's observation dict concatenated in a fixed key order (the
order of the task's observation spec, recorded when the env is built). Actions are in [-1, 1]^A (affinely
mapped to the actuator range where that differs, i.e. jaco). Physics states are `physics.get_state()`
(qpos, qvel, act), the same vector ExORL stores as `physics`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cfgrl.envs.rollout import SerialSteps, run_lockstep
from cfgrl.seeding import derive_seed

_SUITE_TASKS = {
    ("walker", "stand"), ("walker", "walk"), ("walker", "run"),
    ("quadruped", "walk"), ("quadruped", "run"),
    ("cheetah", "run"),
}
_CUSTOM_TASKS = {("cheetah", "run_backward"), ("jaco", "reach_top_left"), ("jaco", "reach_top_right")}
TASKS: tuple[str, ...] = tuple(
    sorted(f"{d}-{t.replace('_', '-')}" for d, t in _SUITE_TASKS | _CUSTOM_TASKS)
)
DOMAINS: tuple[str, ...] = ("walker", "quadruped", "cheetah", "jaco")

# ExORL's jaco targets (world frame, metres) and reach radius.
JACO_TARGETS = {"reach_top_left": (-0.09, 0.09, 0.001), "reach_top_right": (0.09, 0.09, 0.001)}
JACO_TARGET_RADIUS = 0.05
JACO_TIME_LIMIT = 10.0
CHEETAH_RUN_SPEED = 10.0
DMC_SEED_MODULUS = 2**31 - 1  # dm_control environment seeds are kept below 2^31 - 1


def parse_task(name: str) -> tuple[str, str]:
    """'cheetah-run-backward' or 'cheetah_run_backward' -> ('cheetah', 'run_backward'); KeyError if unknown."""
    norm = name.replace("_", "-")
    domain, _, task = norm.partition("-")
    task = task.replace("-", "_")
    if (domain, task) not in _SUITE_TASKS | _CUSTOM_TASKS:
        raise KeyError(f"unknown dm_control task {name!r} (supported: {', '.join(TASKS)})")
    return domain, task


# --------------------------------------------------------------------------------------------------------------
# Custom tasks


def _cheetah_run_backward(random: int | np.random.RandomState | None) -> Any:
    from dm_control.rl import control
    from dm_control.suite import cheetah, common
    from dm_control.utils import rewards

    class CheetahRunBackward(cheetah.Cheetah):
        """cheetah-run with the speed's sign flipped."""

        def get_reward(self, physics):
            return rewards.tolerance(-physics.speed(), bounds=(CHEETAH_RUN_SPEED, float("inf")),
                                     margin=CHEETAH_RUN_SPEED, value_at_margin=0, sigmoid="linear")

    xml = common.read_model("cheetah.xml")
    ground = b'size="100 .8 .5"' if isinstance(xml, bytes) else 'size="100 .8 .5"'
    wide = b'size="200 .8 .5"' if isinstance(xml, bytes) else 'size="200 .8 .5"'
    assert ground in xml, "dm_control's cheetah.xml changed: ground plane not found"
    physics = cheetah.Physics.from_xml_string(xml.replace(ground, wide), common.ASSETS)
    return control.Environment(physics, CheetahRunBackward(random=random), time_limit=10)


def _jaco_reach(task: str, random: int | np.random.RandomState | None) -> Any:
    from dm_control import composer
    from dm_control.composer import initializers
    from dm_control.composer.variation import distributions
    from dm_control.manipulation.shared import arenas, constants, observations, robots, workspaces
    from dm_control.utils import rewards

    target = np.asarray(JACO_TARGETS[task])
    tcp_box = workspaces.BoundingBox(lower=(-0.2, -0.2, 0.02), upper=(0.2, 0.2, 0.4))

    class JacoReachFixed(composer.Task):
        """Bring the Jaco's tool-centre point to a fixed target site."""

        def __init__(self) -> None:
            self._arena = arenas.Standard()
            self._arm = robots.make_arm(obs_settings=observations.PERFECT_FEATURES)
            self._hand = robots.make_hand(obs_settings=observations.PERFECT_FEATURES)
            self._arm.attach(self._hand)
            self._arena.attach_offset(self._arm, offset=robots.ARM_OFFSET)
            self.control_timestep = constants.CONTROL_TIMESTEP
            self._tcp_initializer = initializers.ToolCenterPointInitializer(
                self._hand, self._arm, position=distributions.Uniform(*tcp_box),
                quaternion=workspaces.DOWN_QUATERNION)
            self._target = workspaces.add_target_site(body=self._arena.mjcf_model.worldbody,
                                                      radius=JACO_TARGET_RADIUS, visible=True,
                                                      rgba=constants.RED, name="target_site")

        @property
        def root_entity(self):
            return self._arena

        def get_reward(self, physics):
            distance = np.linalg.norm(physics.bind(self._hand.tool_center_point).xpos - target)
            return rewards.tolerance(distance, bounds=(0, JACO_TARGET_RADIUS), margin=JACO_TARGET_RADIUS)

        def initialize_episode(self, physics, random_state):
            self._hand.set_grasp(physics, close_factors=random_state.uniform())
            self._tcp_initializer(physics, random_state)
            physics.bind(self._target).pos = target

    return composer.Environment(JacoReachFixed(), time_limit=JACO_TIME_LIMIT, random_state=random)


def load_raw(name: str, seed: int | np.random.RandomState | None = None) -> Any:
    """The underlying dm_env environment (control.Environment or composer.Environment) for a task name."""
    domain, task = parse_task(name)
    if (domain, task) in _SUITE_TASKS:
        from dm_control import suite

        return suite.load(domain, task, task_kwargs={"random": seed})
    if domain == "cheetah":
        return _cheetah_run_backward(seed)
    return _jaco_reach(task, seed)


# --------------------------------------------------------------------------------------------------------------
# Environment with flat observations


class DMCEnv:
    """One dm_control task with flat float32 observations (obs_dim,) and actions in [-1, 1]^action_dim.

    reset() -> obs; step(action) -> (obs, reward, done); `done` is True after `episode_steps` steps (time limit;
    these tasks have no terminal states). physics_state() is the (nphys,) float64 state ExORL stores.
    """

    def __init__(self, name: str, seed: int | None = None) -> None:
        self.name = name
        self.domain, self.task_name = parse_task(name)
        self.env = load_raw(name, seed)
        self.task = self.env.task
        spec = self.env.action_spec()
        self.action_dim = int(np.prod(spec.shape))
        low = np.broadcast_to(spec.minimum, spec.shape).astype(np.float64)
        high = np.broadcast_to(spec.maximum, spec.shape).astype(np.float64)
        self._unit = bool(np.all(low == -1.0) and np.all(high == 1.0))
        self._scale, self._offset = (high - low) / 2.0, (high + low) / 2.0
        obs_spec = self.env.observation_spec()
        self.obs_keys: tuple[str, ...] = tuple(obs_spec.keys())
        self.obs_dim = int(sum(int(np.prod(s.shape)) for s in obs_spec.values()))
        self.episode_steps = self._episode_steps()
        self._t = 0
        self.env.reset()  # composer envs build their physics on the first reset

    @property
    def physics(self) -> Any:
        """The live dm_control Physics (composer envs may rebuild it on reset, so never cache it)."""
        return self.env.physics

    def _episode_steps(self) -> int:
        """Steps per episode: control.Environment's step limit, or composer's time limit / control step."""
        limit = getattr(self.env, "_step_limit", None)  # control.Environment
        if limit is None or not np.isfinite(limit):
            limit = getattr(self.env, "_time_limit", JACO_TIME_LIMIT) / self.env.control_timestep()
        return int(round(limit))

    def flatten(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Observation dict -> (obs_dim,) float32, keys in `obs_keys` order."""
        return np.concatenate([np.asarray(observation[k], dtype=np.float32).ravel() for k in self.obs_keys])

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode; returns the first observation (obs_dim,).

        seed: re-seed the initial-state randomness first (suite tasks: task.random; composer: random_state), so
        one env can replay any episode; None continues the env's own random stream.
        """
        if seed is not None:
            rs = getattr(self.task, "random", None)
            (rs if isinstance(rs, np.random.RandomState) else self.env.random_state).seed(seed)
        self._t = 0
        return self.flatten(self.env.reset().observation)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """Apply action (action_dim,) in [-1, 1]; returns (obs (obs_dim,), reward, done)."""
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if not self._unit:
            a = a * self._scale + self._offset
        ts = self.env.step(a)
        self._t += 1
        return self.flatten(ts.observation), float(ts.reward), bool(ts.last())

    def physics_state(self) -> np.ndarray:
        """Current physics state (nphys,) float64: qpos, qvel, act."""
        return np.array(self.physics.get_state(), dtype=np.float64)

    def reward_of_state(self, state: np.ndarray) -> float:
        """The task's reward for a physics state (nphys,), as ExORL relabels: set the state, ask the task."""
        with self.physics.reset_context():
            self.physics.set_state(np.asarray(state, dtype=np.float64))
        return float(self.task.get_reward(self.physics))

    def relabel(self, states: np.ndarray) -> np.ndarray:
        """Rewards (T,) float32 for physics states (T, nphys). Leaves the env mid-reset: call reset() after."""
        return np.array([self.reward_of_state(s) for s in states], dtype=np.float32)


def make_env(name: str, seed: int | None = None) -> DMCEnv:
    """A DMCEnv for a task name such as 'walker-walk' or 'jaco-reach-top-left'."""
    return DMCEnv(name, seed)


def env_seed(*keys: int) -> int:
    """A 31-bit dm_control environment seed from integer keys, e.g. (run seed, episode index)."""
    return derive_seed(*keys) % DMC_SEED_MODULUS


def relabel_rewards(name: str, states: np.ndarray, env: DMCEnv | None = None) -> np.ndarray:
    """Task rewards (T,) float32 for physics states (T, nphys) of the task's domain (ExORL's relabelling)."""
    env = env or make_env(name, seed=0)
    expected = env.physics_state().shape[0]
    if states.ndim != 2 or states.shape[1] != expected:
        raise ValueError(f"physics states have shape {states.shape}, expected (T, {expected}) for {name}")
    return env.relabel(states)


# --------------------------------------------------------------------------------------------------------------
# Evaluation through the lockstep rollout


class DMCEpisode:
    """A DMCEnv as a cfgrl.envs.rollout.Episode (these tasks have no success flag)."""

    def __init__(self, env: DMCEnv) -> None:
        self.env = env

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        ob, reward, done = self.env.step(action)
        return ob, reward, done, False

    def close(self) -> None:
        pass


@dataclass
class EvalResult:
    """returns (N,) per-episode returns; lengths (N,) steps per episode; seeds (N,) env seeds (row order as run)."""

    returns: np.ndarray
    lengths: np.ndarray
    seeds: np.ndarray


def episodes(name: str, num_episodes: int, seed: int = 0, repeats: int = 1) -> tuple[list[DMCEpisode], np.ndarray,
                                                                                       np.ndarray]:
    """`num_episodes` episodes of a task, `repeats` times each: (episodes, first observations (N, obs_dim), env
    seeds (N,)), N = repeats * num_episodes; row r * num_episodes + i plays episode i, seeded env_seed(seed, i)."""
    seeds = np.tile([env_seed(seed, i) for i in range(num_episodes)], repeats)
    envs = [make_env(name, int(s)) for s in seeds]
    first = np.stack([e.reset(int(s)) for e, s in zip(envs, seeds, strict=True)])
    return [DMCEpisode(e) for e in envs], first, seeds


def evaluate(
    name: str,
    policy: Callable[[np.ndarray], np.ndarray],
    num_episodes: int,
    seed: int = 0,
    max_steps: int | None = None,
    repeats: int = 1,
) -> EvalResult:
    """Run `num_episodes` episodes of a task (`repeats` times each) in lockstep with one batched policy.

    policy: obs (N, obs_dim) float32 -> actions (N, action_dim) in [-1, 1] (clipped here), N = repeats *
    num_episodes. Row r * num_episodes + i plays episode i (env seeded with env_seed(seed, i)), so a policy
    can evaluate `repeats` settings (e.g. guidance weights: rows of block r use w_r) on identical episodes in
    one pass. Returns are deterministic given `seed` and a deterministic policy; they are independent of how
    many episodes run together when the policy's output for a row does not depend on the batch size (batched
    matrix products can round differently for different batch sizes, and the dynamics amplify it).
    These tasks have no terminal states, so every env steps every time; `max_steps` cuts episodes short.
    Returns per-row returns, lengths and seeds, each (N,).
    """
    eps, first, seeds = episodes(name, num_episodes, seed, repeats)
    action_dim = eps[0].env.action_dim

    def checked(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        actions = np.asarray(policy(obs), dtype=np.float64)
        if actions.shape != (len(obs), action_dim):
            raise ValueError(f"policy returned shape {actions.shape}, expected ({len(obs)}, {action_dim})")
        return actions

    run = run_lockstep(SerialSteps(eps), first, checked, max_steps=max_steps)
    return EvalResult(returns=run.returns, lengths=run.lengths, seeds=seeds)
