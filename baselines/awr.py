"""Advantage-weighted regression (AWR) on the IQL critic: the paper's main offline-RL baseline.

Actor loss: -mean(min(exp(A T), max_weight) log pi(a | s)), A = min(Q1, Q2)(s, a) - V(s) (no gradient), T the
inverse temperature (1 / beta). Gaussian policy, no tanh; evaluation takes the mean action clipped to [-1, 1].
std_mode 'fixed' (OGBench code): std 1, default T = 10. std_mode 'learned' (ExORL code): state-independent
learned log-std clipped to [-5, 2], mean clipped to [-5, 5], default T = 3, advantage from the target twin Q.
Critic, value and actor losses are summed and take one AdamW step; the target twin Q is Polyak-updated from the
pre-step critic (both reference codes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from cfgrl.core.agent import Range
from cfgrl.core.flow import row_stable
from cfgrl.core.gaussian import STD_MODES, GaussianPolicy, gaussian_log_prob
from cfgrl.core.gradients import per_sample_grad_norms
from cfgrl.core.iql import IQLAgent, IQLConfig, IQLCritic

DEFAULT_TEMPERATURE = {"fixed": 10.0, "learned": 3.0}
DEFAULT_MEAN_CLIP = {"fixed": None, "learned": 5.0}


@dataclass
class AWRConfig(IQLConfig):
    # IQLConfig adds: value_hidden, value_activation, value_layer_norm, discount, tau, expectile (see cfgrl/core/iql.py)
    batch_size: int = 256  # transitions per update (paper: 1024)
    hidden: tuple[int, ...] = (256, 256, 256)  # actor mean MLP widths (paper: 4 x 512 OGBench, 3 x 512 ExORL)
    activation: str = "gelu"  # actor hidden activation
    layer_norm: bool = False  # LayerNorm in the actor
    std_mode: str = "fixed"  # 'fixed' std 1 (OGBench code) or 'learned' state-independent log-std (ExORL code)
    temperature: float | None = None  # T in exp(A T); None: 10 for 'fixed', 3 for 'learned' (paper sweeps 1-30)
    max_weight: float = 100.0  # clip of the exponentiated advantage weights (both codes: 100)
    mean_clip: float | None = None  # clip of the mean; None: none for 'fixed', 5 for 'learned'
    advantage_from: str | None = None  # 'online' or 'target' twin Q; None: online for 'fixed', target for 'learned'

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {"std_mode": STD_MODES, "advantage_from": ("online", "target")}
    RANGES: ClassVar[dict[str, Range]] = {"temperature": Range(0, 1e6), "max_weight": Range(0, 1e12, low_open=True),
                                          "mean_clip": Range(0, 1e6, low_open=True)}


class AWR(IQLAgent):
    Config = AWRConfig
    guided = False
    goal_conditioned = False
    batch_kind = "transitions"

    @staticmethod
    def resolved_temperature(config: AWRConfig) -> float:
        """T in use: the config's, or the std mode's default (also read by spec sweeps over T)."""
        return DEFAULT_TEMPERATURE.get(config.std_mode, 0.0) if config.temperature is None else config.temperature

    def __init__(self, config: AWRConfig, obs_dim: int, action_dim: int, goal_dim: int, device: torch.device,
                 seed: int) -> None:
        super().__init__(config, obs_dim, action_dim, goal_dim, device, seed)
        if config.std_mode not in DEFAULT_TEMPERATURE:
            raise ValueError(f"std_mode must be 'fixed' or 'learned', got {config.std_mode!r}")
        self.temperature = self.resolved_temperature(config)
        mean_clip = DEFAULT_MEAN_CLIP[config.std_mode] if config.mean_clip is None else config.mean_clip
        default_source = "online" if config.std_mode == "fixed" else "target"
        self.advantage_from = config.advantage_from or default_source
        if self.advantage_from not in ("online", "target"):
            raise ValueError(f"advantage_from must be 'online' or 'target', got {config.advantage_from!r}")
        self.critic = IQLCritic.from_config(config, obs_dim, action_dim, **self.net_options())
        self.actor = GaussianPolicy(obs_dim, action_dim, config.hidden, config.activation, config.layer_norm,
                                    std_mode=config.std_mode, mean_clip=mean_clip, **self.net_options())
        self.to(device)
        self.make_optimizer()

    @classmethod
    def resolved_arch(cls, config: AWRConfig) -> str:
        """The 'learned' std is the ExORL code's actor, so its networks follow that code unless `arch` says
        otherwise."""
        return config.arch or ("exorl" if config.std_mode == "learned" else "ogbench")

    def weights(self, adv: torch.Tensor) -> torch.Tensor:
        """AWR weights min(exp(A T), max_weight): (B,) -> (B,)."""
        return torch.exp(adv * self.temperature).clamp(max=self.config.max_weight)

    def actor_loss(self, obs: torch.Tensor, actions: torch.Tensor, adv: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, log_prob (B,)): -mean(weights(A) log pi(a | s)); A carries no gradient."""
        log_prob = self.actor.log_prob(obs, actions)
        return -(self.weights(adv.detach()) * log_prob).mean(), log_prob

    def actor_part(self, batch: dict[str, torch.Tensor], adv: torch.Tensor, generator: torch.Generator
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The actor loss and metrics 'actor/' of a transition batch given its advantages (B,) (AWR draws nothing
        at random)."""
        actor_loss, log_prob = self.actor_loss(batch["observations"], batch["actions"], adv)
        with torch.no_grad():
            weights = self.weights(adv)
            info = {"actor/loss": actor_loss.detach(), "actor/log_prob": log_prob.mean(),
                    "actor/adv_mean": adv.mean(), "actor/weight_mean": weights.mean(),
                    "actor/weight_max": weights.max(),
                    "actor/clipped_frac": (weights >= self.config.max_weight).float().mean(),
                    "actor/std_mean": self.actor.clipped_log_std().exp().mean()}
        return actor_loss, info

    def per_sample_actor_grad_norms(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) norms of the gradient of each sample's own actor-loss term -w_i log pi(a_i | s_i) (not divided by
        B) w.r.t. the actor's parameters (paper Fig. 2)."""
        adv = self.critic.advantage(batch["observations"], batch["actions"], use_target=self.advantage_from == "target")

        def loss(call, obs, actions, weight):
            mean, log_std = call(obs)
            return -(weight * gaussian_log_prob(mean, log_std, actions))

        return per_sample_grad_norms(self.actor, loss, (batch["observations"], batch["actions"], self.weights(adv)))

    @torch.no_grad()
    def act(self, observations: torch.Tensor, goals: torch.Tensor | None = None,
            w: torch.Tensor | float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """The mean action clipped to [-1, 1] (goals, w and noise are ignored)."""
        return row_stable(lambda x: self.actor(x)[0], observations).clamp(-1.0, 1.0)

    noise_dim = 0
