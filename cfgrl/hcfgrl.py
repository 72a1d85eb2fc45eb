"""Hierarchical goal-conditioned CFGRL (HCFGRL): two flow-matching policies, each with a learned null goal.

- High level pi_h(z | s, g): proposes a subgoal z in goal space, the goal representation of s_{t+k} (k =
  `subgoal_steps`, capped at the goal and at the episode end, so a goal nearer than k steps is its own subgoal).
- Low level pi_l(a | s, z): acts toward the subgoal.
Both are trained by flow matching on hindsight batches from cfgrl.data.samplers.SubgoalSampler (keys observations,
actions, goals, subgoals, low_goals), each level's goal replaced by its own learned null vector with probability
`null_goal_prob`, so each network learns its conditional and its unconditional policy. One AdamW step on the sum
of the two losses per update (the authors' code).

Acting (every environment step, the subgoal is resampled): z is sampled from the high-level flow guided with w
between (s, g) and (s, null_h), unclipped (goal space is not the action box); then a from the low-level flow
guided with the same w between (s, z) and (s, null_l), clipped to [-1, 1]. w = 0 is hierarchical flow BC (both
levels unconditional, so the goal is ignored), w = 1 hierarchical flow GCBC, w > 1 the guided policy.

`HierarchicalFlow` is the shared implementation: with `guided = False` (baselines/flow_hgcbc.py) it has no null
goals, trains without dropout and samples both levels with w = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from cfgrl.core.agent import FLOW_STEPS, GEOMETRIC_DISCOUNT, NULL_PROB, SUBGOAL_STEPS, Agent, Range, TrainConfig
from cfgrl.core.flow import FlowVelocity, drop_to_null, flow_act, flow_matching_loss, flow_pair
from cfgrl.core.nets import make_null_goal

LOW_GOALS = ("trajectory", "subgoal")


@dataclass
class HierarchicalFlowConfig(TrainConfig):
    """Fields of both hierarchical flow methods (HCFGRL adds the null-goal dropout)."""

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {"low_goal": LOW_GOALS}
    RANGES: ClassVar[dict[str, Range]] = {"flow_steps": FLOW_STEPS, "subgoal_steps": SUBGOAL_STEPS,
                                          "geometric_discount": GEOMETRIC_DISCOUNT}

    hidden: tuple[int, ...] = (256, 256, 256)  # velocity MLP widths of each level (paper: 4 x 512)
    activation: str = "gelu"  # hidden activation (paper: GELU)
    layer_norm: bool = False  # the authors' actors have no LayerNorm
    flow_steps: int = 16  # Euler steps per level when sampling (paper: 16)
    subgoal_steps: int = 25  # k: the subgoal is the goal representation of s_{t+k} (paper: 25)
    # the low level's training goal: 'trajectory' = goal rep of s_{min(t+k, episode end)} (the authors' code,
    # OGBench's HGCDataset `low_actor_goals`); 'subgoal' = the high-level target s_{min(t+k, g, episode end)}
    low_goal: str = "trajectory"
    geometric_discount: float | None = None  # None: uniform future goals (authors' code); gamma: geometric


@dataclass
class HCFGRLConfig(HierarchicalFlowConfig):
    null_goal_prob: float = 0.1  # probability of replacing each level's goal by its learned null goal (paper: 0.1)

    RANGES: ClassVar[dict[str, Range]] = {"null_goal_prob": NULL_PROB}


def low_level_goals(batch: dict[str, torch.Tensor], low_goal: str) -> torch.Tensor:
    """The low-level policy's goal rows (B, goal_dim) of a SubgoalSampler batch (`low_goal` as in the config)."""
    if low_goal == "trajectory":
        return batch["low_goals"]
    if low_goal == "subgoal":
        return batch["subgoals"]
    raise ValueError(f"low_goal must be one of {LOW_GOALS}, got {low_goal!r}")


class HierarchicalFlow(Agent):
    """Two-level flow-matching policy; guided (learned null goals, w at both levels) when `guided` is True."""

    Config = HierarchicalFlowConfig
    guided = False
    goal_conditioned = True
    batch_kind = "subgoals"

    def __init__(self, config: HierarchicalFlowConfig, obs_dim: int, action_dim: int, goal_dim: int,
                 device: torch.device, seed: int) -> None:
        super().__init__(config, obs_dim, action_dim, goal_dim, device, seed)
        if config.low_goal not in LOW_GOALS:
            raise ValueError(f"low_goal must be one of {LOW_GOALS}, got {config.low_goal!r}")
        if goal_dim < 1:
            raise ValueError(f"{type(self).__name__} needs goals (goal_dim >= 1)")
        # high level: v_h([s, g], z_t, t) in goal space; low level: v_l([s, z], a_t, t) in action space
        self.high = FlowVelocity(obs_dim + goal_dim, goal_dim, config.hidden, config.activation, config.layer_norm,
                                 **self.net_options())
        self.low = FlowVelocity(obs_dim + goal_dim, action_dim, config.hidden, config.activation, config.layer_norm,
                                **self.net_options())
        self.high_null_goal: nn.Parameter | None = None
        self.low_null_goal: nn.Parameter | None = None
        if self.guided:
            self.high_null_goal = make_null_goal(goal_dim, config.init, self.init_generator)
            self.low_null_goal = make_null_goal(goal_dim, config.init, self.init_generator)
        self.to(device)
        self.make_optimizer()

    def level_loss(self, net: FlowVelocity, null_goal: nn.Parameter | None, obs: torch.Tensor, goals: torch.Tensor,
                   targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Flow-matching loss (scalar) of one level: targets (B, D) given obs (B, obs_dim) and goals (B, goal_dim).

        Draws from `generator`, in this order: the flow pair (noise, then time), then (guided only) the dropout of
        the goal to `null_goal` with probability `null_goal_prob`."""
        a_t, t, target = flow_pair(targets, generator)
        if null_goal is not None:
            goals = drop_to_null(goals, null_goal, self.config.null_goal_prob, generator)
        return flow_matching_loss(net(torch.cat([obs, goals], dim=-1), a_t, t), target).mean()

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """High + low flow-matching loss (one AdamW step on their sum, as the authors' code). batch: observations
        (B, obs_dim), actions (B, A), goals, subgoals and low_goals (B, goal_dim)
        (cfgrl.data.samplers.SubgoalSampler). The high level's draws come before the low's."""
        obs = batch["observations"]
        high = self.level_loss(self.high, self.high_null_goal, obs, batch["goals"], batch["subgoals"], generator)
        low = self.level_loss(self.low, self.low_null_goal, obs, low_level_goals(batch, self.config.low_goal),
                              batch["actions"], generator)
        loss = high + low
        return loss, {"actor/flow_loss": loss.detach(), "actor/high_flow_loss": high.detach(),
                      "actor/low_flow_loss": low.detach()}

    def _null_rows(self, observations: torch.Tensor, null_goal: nn.Parameter | None) -> torch.Tensor | None:
        """[s, null goal] rows (B, obs_dim + goal_dim), or None when unguided."""
        if null_goal is None:
            return None
        return torch.cat([observations, null_goal.expand(observations.shape[0], -1)], dim=-1)

    @torch.no_grad()
    def sample_subgoals(self, observations: torch.Tensor, goals: torch.Tensor,
                        w: torch.Tensor | float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """observations (B, obs_dim), goals (B, goal_dim), w scalar or (B,) -> subgoals (B, goal_dim), unclipped,
        from the high-level flow guided with w between the goal and the high-level null goal (w ignored when
        unguided); noise: its starting noise (B, goal_dim) or None."""
        cond = self.policy_input(observations, goals)
        return flow_act(self.high, cond, self._null_rows(observations, self.high_null_goal), w, self.generator,
                        self.config.flow_steps, self.goal_dim, clip=None, noise=noise)

    @torch.no_grad()
    def act(self, observations: torch.Tensor, goals: torch.Tensor | None = None,
            w: torch.Tensor | float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """observations (B, obs_dim), goals (B, goal_dim), w scalar or (B,) -> actions (B, A) in [-1, 1].

        A fresh subgoal is sampled at every call (high level, guided with w), then the action from the low level
        conditioned on it (guided with the same w). noise (B, goal_dim + A): the subgoal's starting noise, then the
        action's; None draws them, in that order, from the agent's generator."""
        assert goals is not None, f"{type(self).__name__} needs goals"
        sub_noise, act_noise = (None, None) if noise is None else (noise[:, :self.goal_dim], noise[:, self.goal_dim:])
        subgoals = self.sample_subgoals(observations, goals, w, sub_noise)
        return flow_act(self.low, self.policy_input(observations, subgoals),
                        self._null_rows(observations, self.low_null_goal), w, self.generator, self.config.flow_steps,
                        self.action_dim, noise=act_noise)

    @property
    def noise_dim(self) -> int:
        return self.goal_dim + self.action_dim


class HCFGRL(HierarchicalFlow):
    """HCFGRL: both levels guided with the same w between the (sub)goal and a learned null goal."""

    Config = HCFGRLConfig
    guided = True
