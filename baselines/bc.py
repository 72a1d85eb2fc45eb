"""Behavioural cloning with a Gaussian policy that ignores the goal (the paper's 'BC' row of Table 3).

pi(a | s) = N(mu(s), std^2 I), trained by maximum likelihood on the (s, a) pairs of any batch (goal-conditioned
or reward-labelled); evaluation takes the mean action clipped to [-1, 1]. GCBC (baselines/gcbc.py) is the same
with the goal as an extra input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from cfgrl.core.agent import Agent, Range, TrainConfig
from cfgrl.core.flow import row_stable
from cfgrl.core.gaussian import STD_MODES, GaussianPolicy, gaussian_log_prob


@dataclass
class BCConfig(TrainConfig):
    hidden: tuple[int, ...] = (256, 256, 256)  # actor MLP widths (paper: 4 x 512)
    activation: str = "gelu"  # hidden activation
    layer_norm: bool = False  # LayerNorm after each hidden Linear
    std_mode: str = "fixed"  # 'fixed' std (OGBench's const_std actor) or 'learned' state-independent log-std
    std: float = 1.0  # the fixed std; with a fixed std the likelihood is a scaled MSE

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {"std_mode": STD_MODES}
    RANGES: ClassVar[dict[str, Range]] = {"std": Range(0, 1e6, low_open=True)}


class BC(Agent):
    Config = BCConfig
    guided = False
    goal_conditioned = False  # never looks at a goal
    batch_kind = "any"  # trains on goal-conditioned or reward-labelled batches alike

    def __init__(self, config: BCConfig, obs_dim: int, action_dim: int, goal_dim: int, device: torch.device,
                 seed: int) -> None:
        super().__init__(config, obs_dim, action_dim, goal_dim, device, seed)
        self.actor = GaussianPolicy(self.input_dim, action_dim, config.hidden, config.activation, config.layer_norm,
                                    std_mode=config.std_mode, fixed_std=config.std, **self.net_options())
        self.to(device)
        self.make_optimizer()

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Negative mean log-likelihood of the batch actions, and the mean action's MSE (no random draws)."""
        mean, log_std = self.actor(self.policy_input(batch["observations"], batch.get("goals")))
        loss = -gaussian_log_prob(mean, log_std, batch["actions"]).mean()
        with torch.no_grad():
            mse = (batch["actions"] - mean).pow(2).mean()
        return loss, {"actor/loss": loss.detach(), "actor/mse": mse}

    @torch.no_grad()
    def act(self, observations: torch.Tensor, goals: torch.Tensor | None = None,
            w: torch.Tensor | float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """The mean action clipped to [-1, 1] (w and noise are ignored; goals too unless goal-conditioned)."""
        return row_stable(lambda x: self.actor(x)[0], self.policy_input(observations, goals)).clamp(-1.0, 1.0)

    noise_dim = 0
