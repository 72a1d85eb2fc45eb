"""Goal-conditioned behavioural cloning with a Gaussian policy (OGBench's GCBC).

The policy is N(mu(s, g), std^2 I) with a fixed std (OGBench's `const_std`), trained by maximum likelihood on
hindsight goals (future states of the same trajectory); evaluation takes the mean action.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from cfgrl.agent import Agent, TrainConfig
from cfgrl.nets import mlp


@dataclass
class GCBCConfig(TrainConfig):
    hidden: tuple[int, ...] = (256, 256, 256)  # actor MLP widths (paper: 4 x 512)
    activation: str = "gelu"  # hidden activation
    layer_norm: bool = False  # LayerNorm after each hidden Linear
    std: float = 1.0  # fixed policy std; with a fixed std the likelihood is a scaled MSE
    geometric_discount: float | None = None  # None: uniform future goals; gamma: geometric offsets


class GCBC(Agent):
    Config = GCBCConfig
    goal_conditioned = True

    def __init__(self, config: GCBCConfig, obs_dim: int, action_dim: int, goal_dim: int, device: torch.device,
                 seed: int) -> None:
        super().__init__(config, obs_dim, action_dim, goal_dim, device, seed)
        self.actor = mlp(obs_dim + goal_dim, config.hidden, action_dim, config.activation, config.layer_norm)
        self.to(device)
        self.make_optimizer()

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mean = self.actor(torch.cat([batch["observations"], batch["goals"]], dim=-1))
        std = self.config.std
        z = (batch["actions"] - mean) / std
        log_prob = (-0.5 * z.pow(2) - math.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)
        loss = -log_prob.mean()
        self.apply_loss(loss)
        with torch.no_grad():
            mse = (batch["actions"] - mean).pow(2).mean()
        return {"actor/loss": loss.detach(), "actor/mse": mse}

    @torch.no_grad()
    def act(self, observations: torch.Tensor, goals: torch.Tensor | None = None,
            w: torch.Tensor | float = 1.0) -> torch.Tensor:
        assert goals is not None, "GCBC needs goals"
        return self.actor(torch.cat([observations, goals], dim=-1)).clamp(-1.0, 1.0)
