"""Flow BC: an unconditional flow-matching policy pi(a | s) (CFGRL at w = 0, trained without labels).

Trained by flow matching on the (s, a) pairs of the goal-conditioned batches (the goal is ignored); sampled by
Euler steps from noise, actions clipped to [-1, 1]. `FlowBC` is also the base of Flow GCBC (baselines/flow_gcbc.py),
which only adds the goal to the conditioning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from cfgrl.core.agent import FLOW_STEPS, Agent, Range, TrainConfig
from cfgrl.core.flow import FlowVelocity, flow_act, flow_matching_loss, flow_pair


@dataclass
class FlowBCConfig(TrainConfig):
    hidden: tuple[int, ...] = (256, 256, 256)  # velocity MLP widths (paper: 4 x 512)
    activation: str = "gelu"  # hidden activation (paper: GELU)
    layer_norm: bool = False  # the authors' actor has no LayerNorm
    flow_steps: int = 16  # Euler steps when sampling (paper: 16)

    RANGES: ClassVar[dict[str, Range]] = {"flow_steps": FLOW_STEPS}


class FlowBC(Agent):
    Config = FlowBCConfig
    guided = False
    goal_conditioned = False  # never looks at a goal
    batch_kind = "any"  # trains on goal-conditioned or reward-labelled batches alike

    def __init__(self, config: FlowBCConfig, obs_dim: int, action_dim: int, goal_dim: int, device: torch.device,
                 seed: int) -> None:
        super().__init__(config, obs_dim, action_dim, goal_dim, device, seed)
        self.velocity = FlowVelocity(self.input_dim, action_dim, config.hidden, config.activation, config.layer_norm,
                                     **self.net_options())
        self.to(device)
        self.make_optimizer()

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Flow-matching loss of the batch's (s[, g], a); draws the flow pair from `generator`."""
        a_t, t, target = flow_pair(batch["actions"], generator)
        cond = self.policy_input(batch["observations"], batch.get("goals"))
        loss = flow_matching_loss(self.velocity(cond, a_t, t), target).mean()
        return loss, {"actor/flow_loss": loss.detach()}

    @torch.no_grad()
    def act(self, observations: torch.Tensor, goals: torch.Tensor | None = None,
            w: torch.Tensor | float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """observations (B, obs_dim) (goals (B, goal_dim) when goal-conditioned) -> actions (B, A); w ignored;
        noise: the starting noise (B, A) or None."""
        return flow_act(self.velocity, self.policy_input(observations, goals), None, 1.0, self.generator,
                        self.config.flow_steps, self.action_dim, noise=noise)
