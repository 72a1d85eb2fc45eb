"""Batch samplers over dataset arrays: hindsight-goal batches for goal-conditioned methods, subgoal batches for
hierarchical ones, reward-labelled transitions for offline RL. An agent declares which it needs (`batch_kind`,
see `BatchRequest`); the env's kind loads the arrays (cfgrl.envs.registry) and builds the sampler with
`make_sampler`. Every draw comes from the numpy Generator passed to `sample`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfgrl.data.layout import DataError

BATCH_KINDS = ("transitions", "goals", "subgoals", "any")
_CHUNK_ROWS = 1 << 20  # rows per chunk when comparing states row by row


@dataclass(frozen=True)
class BatchRequest:
    """What an agent trains on (`Agent.batch_request`): kind 'transitions' (s, a, r, mask, s'), 'goals' (s, a, g),
    'subgoals' (s, a, g and both levels' subgoals) or 'any' (whatever the env provides: goals on goal-conditioned
    envs, transitions otherwise); the goal-sampling options of the goal kinds."""

    kind: str
    geometric_discount: float | None = None  # None: uniform future goals (the authors' code); gamma: geometric
    subgoal_steps: int | None = None  # 'subgoals': k, the subgoal is the goal representation of s_{t+k}
    # 'transitions': the discount of a per-transition return-to-go the batches carry ('returns_to_go'); None: none
    return_discount: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in BATCH_KINDS:
            raise ValueError(f"batch kind must be one of {BATCH_KINDS}, got {self.kind!r}")
        if self.kind == "subgoals" and self.subgoal_steps is None:
            raise ValueError("a 'subgoals' batch needs subgoal_steps")


@dataclass
class GoalSampler:
    """Goal-conditioned batches: (s_t, a_t, g) with g a future state of the same episode.

    observations (N, obs_dim), actions (N, A), terminals (N,); goals are `observations[goal_idx]` (or
    `goal_reps[goal_idx]` when given, e.g. OGBench oracle representations (N, goal_dim)).
    `geometric_discount=None` draws the goal index as the authors' code (OGBench's GCDataset.sample_goals):
    round(u (t + 1) + (1 - u) e), u ~ U[0, 1), e the episode end: uniform over t+1 .. e except that the two
    end points get half the weight of the others (rounding a uniform point of [t+1, e]);
    a float gamma draws t + Geometric(1 - gamma), capped at the episode end (the theory's choice).
    """

    observations: np.ndarray
    actions: np.ndarray
    terminals: np.ndarray
    goal_reps: np.ndarray | None = None
    geometric_discount: float | None = None

    def __post_init__(self) -> None:
        term = self.terminals > 0
        # last index of the episode each row belongs to
        ends = np.flatnonzero(term)
        self.episode_end = ends[np.searchsorted(ends, np.arange(len(term)))]
        self.valid_idxs = np.flatnonzero(~term)  # rows with a successor state in the same episode
        if len(self.valid_idxs) == 0:
            raise DataError("dataset has no transitions (every episode has length 1)")

    @property
    def goal_source(self) -> np.ndarray:
        return self.observations if self.goal_reps is None else self.goal_reps

    def sample_goal_idxs(self, idxs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Future-state goal indices (B,) for rows idxs (B,), each in [idx + 1, episode end]."""
        end = self.episode_end[idxs]
        if self.geometric_discount is None:
            u = rng.random(len(idxs))
            goal = np.round(u * np.minimum(idxs + 1, end) + (1.0 - u) * end).astype(np.int64)
        else:
            goal = idxs + rng.geometric(1.0 - self.geometric_discount, size=len(idxs))
        return np.minimum(goal, end)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Return observations (B, obs_dim), actions (B, A), goals (B, goal_dim)."""
        idxs = self.valid_idxs[rng.integers(len(self.valid_idxs), size=batch_size)]
        goal_idxs = self.sample_goal_idxs(idxs, rng)
        return {
            "observations": self.observations[idxs],
            "actions": self.actions[idxs],
            "goals": self.goal_source[goal_idxs],
        }


@dataclass
class TransitionSampler:
    """Reward-labelled batches for offline RL: (s, a, r, mask, s') [+ the return-to-go].

    observations (N, obs_dim), actions (N, A), rewards (N,), masks (N,) (0 where s' is terminal),
    next_observations (N, obs_dim): one row per transition (OGBench's regular, non-compact layout).
    returns_to_go (N,) float32 or None: when given (`transition_returns_to_go`), batches carry it as
    'returns_to_go'; the rows and the draws from `rng` are the same either way.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    masks: np.ndarray
    next_observations: np.ndarray
    returns_to_go: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.observations)
        for name in ("actions", "rewards", "masks", "next_observations", "returns_to_go"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise DataError(f"transition arrays disagree in length: '{name}' has {len(value)}, "
                                f"'observations' has {n}")

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Return observations, actions, next_observations (B, ·) and rewards, masks (B,) [, returns_to_go (B,)]."""
        idxs = rng.integers(len(self.observations), size=batch_size)
        batch = {"observations": self.observations[idxs], "actions": self.actions[idxs],
                 "rewards": self.rewards[idxs], "masks": self.masks[idxs],
                 "next_observations": self.next_observations[idxs]}
        if self.returns_to_go is not None:
            batch["returns_to_go"] = self.returns_to_go[idxs]
        return batch


def episode_ends(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """(N,) bool: True on the last transition of each episode of a transition dataset (rows in episode order).

    From the first episode record the arrays have: `timeouts` (ExORL and Minari files: 1 on an episode's last
    transition; a Minari episode that terminates has mask 0 there instead, also an end), `terminals` (OGBench's
    regular layout: 1 on a trajectory's last transition) or `episode_lengths` (E,). Without any of them the ends
    are inferred from the rows themselves: row i ends an episode where next_observations[i] differs from
    observations[i + 1] (within an episode the next state is the following row's state, bit for bit, in every
    layout this suite writes), or where masks[i] is 0. The last row always ends one.
    """
    masks = np.asarray(arrays["masks"])
    n = len(masks)
    if "timeouts" in arrays:
        ends = np.asarray(arrays["timeouts"]) > 0
    elif "terminals" in arrays:
        ends = np.asarray(arrays["terminals"]) > 0
    elif "episode_lengths" in arrays:
        ends = np.zeros(n, dtype=bool)
        ends[np.cumsum(arrays["episode_lengths"]) - 1] = True
    else:  # inferred: a row whose next state is not the following row's state ends its episode
        obs, next_obs = arrays["observations"], arrays["next_observations"]
        ends = np.ones(n, dtype=bool)
        for start in range(0, n - 1, _CHUNK_ROWS):  # in row chunks: no full-size temporaries
            stop = min(start + _CHUNK_ROWS, n - 1)
            differs = np.asarray(next_obs[start:stop]) != np.asarray(obs[start + 1:stop + 1])
            ends[start:stop] = differs.reshape(stop - start, -1).any(axis=1)
    ends = ends | (masks == 0)
    ends[-1] = True
    return ends


def transition_returns_to_go(arrays: dict[str, np.ndarray], discount: float) -> np.ndarray:
    """Discounted return-to-go of every transition (N,) float32: R_i = r_i + discount * mask_i * R_{i+1}, with
    R_{i+1} = 0 past an episode's last transition (`episode_ends`). An episode cut by a time limit (mask 1 at its
    end) is not bootstrapped: its last returns sum only the rewards the data holds. Arrays: rewards, masks (N,)
    and the episode record `episode_ends` reads."""
    rewards = np.asarray(arrays["rewards"], dtype=np.float64).tolist()
    carry = (discount * np.asarray(arrays["masks"], dtype=np.float64) * ~episode_ends(arrays)).tolist()
    out = [0.0] * len(rewards)
    running = 0.0
    for i in range(len(rewards) - 1, -1, -1):  # one backward pass in float64 (a few seconds per 10M rows)
        running = rewards[i] + carry[i] * running
        out[i] = running
    return np.asarray(out, dtype=np.float32)


@dataclass
class SubgoalSampler(GoalSampler):
    """Hierarchical goal-conditioned batches: GoalSampler's (s_t, a_t, g) plus the subgoals of both levels.

    For a transition t with hindsight goal index g (drawn as in GoalSampler) and episode end e, k = subgoal_steps:
    - `subgoals` = goal_source[min(t + k, g, e)]: the high-level policy's target (the goal representation of
      s_{t+k}, capped at the goal and at the episode end, so a goal nearer than k steps is its own subgoal);
    - `low_goals` = goal_source[min(t + k, e)]: the low-level goal of the authors' code (OGBench's HGCDataset
      `low_actor_goals`), s_{t+k} capped only at the episode end. A low-level policy may use either key as its
      goal (the agents' `low_goal` config field chooses).
    """

    subgoal_steps: int = 25

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.subgoal_steps < 1:
            raise DataError(f"subgoal_steps must be >= 1, got {self.subgoal_steps}")

    def subgoal_idxs(self, idxs: np.ndarray, goal_idxs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(high-level target indices min(t + k, g, e), low-level goal indices min(t + k, e)), each (B,)."""
        low = np.minimum(idxs + self.subgoal_steps, self.episode_end[idxs])
        return np.minimum(low, goal_idxs), low

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Return observations (B, obs_dim), actions (B, A), goals, subgoals and low_goals (B, goal_dim).

        Draws from `rng` exactly what GoalSampler.sample draws (rows, then goal indices)."""
        idxs = self.valid_idxs[rng.integers(len(self.valid_idxs), size=batch_size)]
        goal_idxs = self.sample_goal_idxs(idxs, rng)
        sub_idxs, low_idxs = self.subgoal_idxs(idxs, goal_idxs)
        source = self.goal_source
        return {
            "observations": self.observations[idxs],
            "actions": self.actions[idxs],
            "goals": source[goal_idxs],
            "subgoals": source[sub_idxs],
            "low_goals": source[low_idxs],
        }


def make_goal_sampler(observations: np.ndarray, actions: np.ndarray, terminals: np.ndarray,
                      request: BatchRequest, goal_reps: np.ndarray | None = None) -> GoalSampler:
    """The sampler of a goal-conditioned dataset for a request of kind 'goals', 'subgoals' or 'any'."""
    if request.kind == "transitions":
        raise DataError("a goal-conditioned dataset has no rewards for a 'transitions' batch")
    if request.kind == "subgoals":
        return SubgoalSampler(observations, actions, terminals, goal_reps=goal_reps,
                              geometric_discount=request.geometric_discount, subgoal_steps=request.subgoal_steps)
    return GoalSampler(observations, actions, terminals, goal_reps=goal_reps,
                       geometric_discount=request.geometric_discount)


def make_transition_sampler(arrays: dict[str, np.ndarray], request: BatchRequest) -> TransitionSampler:
    """The sampler of a reward-labelled dataset (keys observations, actions, rewards, masks, next_observations;
    optionally timeouts, terminals or episode_lengths, see `episode_ends`) for a request of kind 'transitions' or
    'any'; with the request's `return_discount` its batches also carry 'returns_to_go'."""
    if request.kind in ("goals", "subgoals"):
        raise DataError(f"a reward-labelled dataset has no goals for a '{request.kind}' batch")
    rtg = None if request.return_discount is None else transition_returns_to_go(arrays, request.return_discount)
    return TransitionSampler(arrays["observations"], arrays["actions"], arrays["rewards"], arrays["masks"],
                             arrays["next_observations"], returns_to_go=rtg)
