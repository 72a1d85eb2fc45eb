"""Goal-conditioned CFGRL: a flow-matching GCBC policy with a learned null goal, sampled with guidance.

Training: flow matching on (s, g, a) with hindsight goals g (future states of the same trajectory); with
probability `null_goal_prob` the goal is replaced by a learned null vector, so one network learns both
pi(a | s, g) and pi(a | s). Sampling: v = v(s, null) + w (v(s, g) - v(s, null)), integrated by Euler steps.
w = 0 is flow BC, w = 1 flow GCBC, w > 1 the guided (improved) policy. No value function is learned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cfgrl.agent import Agent, TrainConfig
from cfgrl.flow import flow_matching_loss, flow_matching_pair, guided_euler_sample
from cfgrl.nets import mlp


@dataclass
class GCCFGRLConfig(TrainConfig):
    hidden: tuple[int, ...] = (256, 256, 256)  # velocity MLP widths (paper: 4 x 512)
    activation: str = "gelu"  # hidden activation (paper: GELU)
    layer_norm: bool = False  # the authors' actor has no LayerNorm
    null_goal_prob: float = 0.1  # probability of replacing the goal by the learned null goal in training
    flow_steps: int = 16  # Euler steps when sampling
    geometric_discount: float | None = None  # None: uniform future goals (authors' code); gamma: geometric


class GCCFGRL(Agent):
    Config = GCCFGRLConfig
    guided = True
    goal_conditioned = True

    def __init__(self, config: GCCFGRLConfig, obs_dim: int, action_dim: int, goal_dim: int,
                 device: torch.device, seed: int) -> None:
        super().__init__(config, obs_dim, action_dim, goal_dim, device, seed)
        # input: observation, noisy action a_t, time t (raw scalar), goal
        self.velocity = mlp(obs_dim + action_dim + 1 + goal_dim, config.hidden, action_dim, config.activation,
                            config.layer_norm)
        self.null_goal = nn.Parameter(torch.zeros(goal_dim))
        self.to(device)
        self.make_optimizer()

    def _v(self, obs: torch.Tensor, a_t: torch.Tensor, t: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        return self.velocity(torch.cat([obs, a_t, t, goals], dim=-1))

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        obs, goals = batch["observations"], batch["goals"]
        a_t, t, target = flow_matching_pair(batch["actions"], self.generator)
        drop = torch.rand(obs.shape[0], 1, generator=self.generator, device=obs.device) < self.config.null_goal_prob
        goals = torch.where(drop, self.null_goal.expand_as(goals), goals)
        loss = flow_matching_loss(self._v(obs, a_t, t, goals), target).mean()
        self.apply_loss(loss)
        return {"actor/flow_loss": loss.detach()}

    @torch.no_grad()
    def act(self, observations: torch.Tensor, goals: torch.Tensor | None = None,
            w: torch.Tensor | float = 1.0) -> torch.Tensor:
        """observations (B, obs_dim), goals (B, goal_dim), w scalar or (B,) -> actions (B, A).

        Rows with different w share one forward pass per Euler step; the conditional and null branches are
        stacked into one batch of 2B rows. When every w is 0 (or 1) only the needed branch is computed.
        """
        assert goals is not None, "goal-conditioned CFGRL needs goals"
        b = observations.shape[0]
        w = torch.as_tensor(w, dtype=observations.dtype, device=observations.device).expand(b)
        null = self.null_goal.expand_as(goals)
        need_cond, need_null = bool((w != 0).any()), bool((w != 1).any())

        def velocity(a: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if need_cond and need_null:
                v = self._v(observations.repeat(2, 1), a.repeat(2, 1), t.repeat(2, 1), torch.cat([goals, null]))
                return v[:b], v[b:]
            v = self._v(observations, a, t, goals if need_cond else null)
            return v, v

        noise = torch.randn((b, self.action_dim), generator=self.generator, device=observations.device)
        return guided_euler_sample(velocity, noise, w, self.config.flow_steps)
