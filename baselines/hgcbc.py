"""Hierarchical goal-conditioned BC with Gaussian policies (the paper's Gaussian HGCBC baseline).

High level N(mu_h(s, g), std^2 I) over subgoals in goal space (the goal representation of s_{t+k}, capped at the
goal and the episode end; no tanh, no clipping), low level N(mu_l(s, z), std^2 I) over actions, both with a fixed
std (OGBench's const_std) by default, trained by maximum likelihood on cfgrl.data.samplers.SubgoalSampler batches with
one AdamW step on the sum of the two losses. Acting: the subgoal is the high-level mean, the action the
low-level mean toward it clipped to [-1, 1], recomputed every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from baselines.bc import BCConfig
from cfgrl.core.agent import GEOMETRIC_DISCOUNT, SUBGOAL_STEPS, Agent, Range
from cfgrl.core.flow import row_stable
from cfgrl.core.gaussian import GaussianPolicy, gaussian_log_prob
from cfgrl.hcfgrl import LOW_GOALS, low_level_goals


@dataclass
class HGCBCConfig(BCConfig):
    """BC's fields (widths, activation, std) for each level, plus the subgoal sampling."""

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {"low_goal": LOW_GOALS}
    RANGES: ClassVar[dict[str, Range]] = {"subgoal_steps": SUBGOAL_STEPS,
                                          "geometric_discount": GEOMETRIC_DISCOUNT}

    subgoal_steps: int = 25  # k: the subgoal is the goal representation of s_{t+k} (paper: 25)
    # the low level's training goal: 'trajectory' = goal rep of s_{min(t+k, episode end)} (the authors' code,
    # OGBench's HGCDataset `low_actor_goals`); 'subgoal' = the high-level target s_{min(t+k, g, episode end)}
    low_goal: str = "trajectory"
    geometric_discount: float | None = None  # None: uniform future goals; gamma: geometric offsets


class HGCBC(Agent):
    Config = HGCBCConfig
    guided = False
    goal_conditioned = True
    batch_kind = "subgoals"

    def __init__(self, config: HGCBCConfig, obs_dim: int, action_dim: int, goal_dim: int, device: torch.device,
                 seed: int) -> None:
        super().__init__(config, obs_dim, action_dim, goal_dim, device, seed)
        if config.low_goal not in LOW_GOALS:
            raise ValueError(f"low_goal must be one of {LOW_GOALS}, got {config.low_goal!r}")
        if goal_dim < 1:
            raise ValueError("HGCBC needs goals (goal_dim >= 1)")
        gaussian = dict(hidden=config.hidden, activation=config.activation, layer_norm=config.layer_norm,
                        std_mode=config.std_mode, fixed_std=config.std, **self.net_options())
        self.high = GaussianPolicy(obs_dim + goal_dim, goal_dim, **gaussian)  # subgoal | (s, g)
        self.low = GaussianPolicy(obs_dim + goal_dim, action_dim, **gaussian)  # action | (s, subgoal)
        self.to(device)
        self.make_optimizer()

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The sum of the two negative log-likelihoods (one AdamW step on it). batch: observations (B, obs_dim),
        actions (B, A), goals, subgoals and low_goals (B, goal_dim) (cfgrl.data.samplers.SubgoalSampler)."""
        obs = batch["observations"]
        high_mean, high_log_std = self.high(self.policy_input(obs, batch["goals"]))
        low_mean, low_log_std = self.low(self.policy_input(obs, low_level_goals(batch, self.config.low_goal)))
        high = -gaussian_log_prob(high_mean, high_log_std, batch["subgoals"]).mean()
        low = -gaussian_log_prob(low_mean, low_log_std, batch["actions"]).mean()
        loss = high + low
        with torch.no_grad():
            high_mse = (batch["subgoals"] - high_mean).pow(2).mean()
            low_mse = (batch["actions"] - low_mean).pow(2).mean()
        return loss, {"actor/loss": loss.detach(), "actor/high_loss": high.detach(), "actor/low_loss": low.detach(),
                      "actor/high_mse": high_mse, "actor/low_mse": low_mse}

    @torch.no_grad()
    def subgoals(self, observations: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        """observations (B, obs_dim), goals (B, goal_dim) -> the high-level mean subgoals (B, goal_dim), unclipped."""
        return row_stable(lambda x: self.high(x)[0], self.policy_input(observations, goals))

    @torch.no_grad()
    def act(self, observations: torch.Tensor, goals: torch.Tensor | None = None,
            w: torch.Tensor | float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """observations (B, obs_dim), goals (B, goal_dim) -> the low-level mean action (B, A) toward the
        high-level mean subgoal, clipped to [-1, 1] (w and noise are ignored)."""
        assert goals is not None, "HGCBC needs goals"
        subgoals = self.subgoals(observations, goals)
        return row_stable(lambda x: self.low(x)[0], self.policy_input(observations, subgoals)).clamp(-1.0, 1.0)

    noise_dim = 0
