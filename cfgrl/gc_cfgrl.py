"""Goal-conditioned CFGRL: a flow-matching GCBC policy with a learned null goal, sampled with guidance.

Training: flow matching on (s, g, a) with hindsight goals g (future states of the same trajectory); with
probability `null_goal_prob` the goal is replaced by a learned null vector (initialised as flax's nn.Embed, like the
reference's UnconditionalEmbedding: not at a dataset point), so one network learns both
pi(a | s, g) and pi(a | s). Sampling: v = v(s, null) + w (v(s, g) - v(s, null)), integrated by Euler steps.
w = 0 is flow BC, w = 1 flow GCBC, w > 1 the guided (improved) policy. No value function is learned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from cfgrl.core.agent import FLOW_STEPS, GEOMETRIC_DISCOUNT, NULL_PROB, Agent, Range, TrainConfig
from cfgrl.core.flow import FlowVelocity, drop_to_null, flow_act, flow_matching_loss, flow_pair
from cfgrl.core.nets import make_null_goal


@dataclass
class GCCFGRLConfig(TrainConfig):
    hidden: tuple[int, ...] = (256, 256, 256)  # velocity MLP widths (paper: 4 x 512)
    activation: str = "gelu"  # hidden activation (paper: GELU)
    layer_norm: bool = False  # the authors' actor has no LayerNorm
    null_goal_prob: float = 0.1  # probability of replacing the goal by the learned null goal in training
    flow_steps: int = 16  # Euler steps when sampling
    geometric_discount: float | None = None  # None: uniform future goals (authors' code); gamma: geometric

    RANGES: ClassVar[dict[str, Range]] = {"null_goal_prob": NULL_PROB, "flow_steps": FLOW_STEPS,
                                          "geometric_discount": GEOMETRIC_DISCOUNT}


class GCCFGRL(Agent):
    Config = GCCFGRLConfig
    guided = True
    goal_conditioned = True
    batch_kind = "goals"

    def __init__(self, config: GCCFGRLConfig, obs_dim: int, action_dim: int, goal_dim: int,
                 device: torch.device, seed: int) -> None:
        super().__init__(config, obs_dim, action_dim, goal_dim, device, seed)
        # v(observation + goal, a_t, t), time as a raw scalar input
        self.velocity = FlowVelocity(obs_dim + goal_dim, action_dim, config.hidden, config.activation,
                                     config.layer_norm, **self.net_options())
        self.null_goal = make_null_goal(goal_dim, config.init, self.init_generator)
        self.to(device)
        self.make_optimizer()

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Flow-matching loss of a goal batch (observations, actions, goals), goals dropped to the null goal with
        probability null_goal_prob. Draws the flow pair (noise, then time), then the dropout, from `generator`."""
        obs, goals = batch["observations"], batch["goals"]
        a_t, t, target = flow_pair(batch["actions"], generator)
        goals = drop_to_null(goals, self.null_goal, self.config.null_goal_prob, generator)
        loss = flow_matching_loss(self.velocity(torch.cat([obs, goals], dim=-1), a_t, t), target).mean()
        return loss, {"actor/flow_loss": loss.detach()}

    @torch.no_grad()
    def act(self, observations: torch.Tensor, goals: torch.Tensor | None = None,
            w: torch.Tensor | float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """observations (B, obs_dim), goals (B, goal_dim), w scalar or (B,) -> actions (B, A) (guided between the
        goal and the learned null goal; see cfgrl.core.flow.flow_act); noise: the starting noise (B, A) or None."""
        assert goals is not None, "goal-conditioned CFGRL needs goals"
        cond = torch.cat([observations, goals], dim=-1)
        null = torch.cat([observations, self.null_goal.expand_as(goals)], dim=-1)
        return flow_act(self.velocity, cond, null, w, self.generator, self.config.flow_steps, self.action_dim,
                        noise=noise)
