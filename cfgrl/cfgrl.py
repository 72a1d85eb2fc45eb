"""CFGRL for offline RL: a flow-matching policy conditioned on an optimality label from an IQL critic, sampled
with classifier-free guidance between the null and the positive label.

One network v(s, o, a_t, t) learns pi(a | s, o = 1) and pi(a | s) at once; sampling with
v = v(s, null) + w (v(s, pos) - v(s, null)) draws from pi_hat(a | s) p(o = 1 | s, a)^w, so w >= 0 is a test-time
knob: w = 0 is flow BC, w = 1 the label-conditioned (filtered) policy, w > 1 extrapolates.

Two label schemes, both from the authors' code (cfgrl/docs: paper.md section 2):
- 'dropout' (OGBench single-task code, the paper's text): A = min(Q1, Q2)(s, a) - V(s) from the ONLINE critic;
  label positive if A >= 0 else negative (three classes: null 0, negative 1, positive 2, through a learned
  embedding); with probability `null_prob` the label is replaced by null; plain unweighted flow-matching MSE.
- 'filtered' (ExORL code): A from the TARGET twin Q (and the online V); no dropout, no negative class; loss
  mean(1[A > 0] |v(s, pos) - target|^2 + null_loss_weight |v(s, null) - target|^2), both branches on the same
  noisy action and time. The authors' ExORL code also draws t from the 33-point grid {0, 1/32, ..., 1}, embeds
  it sinusoidally (16-d) and samples with 32 steps: time_grid=32, time_embedding='sinusoidal', flow_steps=32.
  It uses separate Adam optimisers (lr 3e-4) for actor, critic and value; with weight_decay 0 and one lr that is
  exactly one AdamW over all parameters, which is what is used here for both schemes.
Critic, value and actor losses are summed and take one optimiser step; the target twin Q is Polyak-updated from
the pre-step critic (both reference codes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from cfgrl.core.agent import Agent
from cfgrl.core.flow import TIME_EMBEDDINGS, FlowVelocity, flow_act, flow_matching_loss, flow_pair
from cfgrl.core.gradients import per_sample_grad_norms
from cfgrl.core.iql import IQLConfig, IQLCritic
from cfgrl.core.nets import check_choice, init_embedding

NULL, NEGATIVE, POSITIVE = 0, 1, 2  # label classes of the embedding
LABEL_SCHEMES = ("dropout", "filtered")


@dataclass
class CFGRLConfig(IQLConfig):
    # IQLConfig adds: value_hidden, value_activation, value_layer_norm, discount, tau, expectile (see cfgrl/core/iql.py)
    batch_size: int = 256  # transitions per update (paper: 1024)
    hidden: tuple[int, ...] = (256, 256, 256)  # velocity MLP widths (paper: 4 x 512 OGBench, 3 x 512 ExORL)
    activation: str = "gelu"  # actor hidden activation (OGBench code: GELU)
    layer_norm: bool = False  # LayerNorm in the actor (OGBench code: no; ExORL code: yes)
    label_scheme: str = "dropout"  # 'dropout' (OGBench code) or 'filtered' (ExORL code); see the module docstring
    label_dim: int = 32  # size of the learned label embedding (both codes: 32)
    null_prob: float = 0.1  # 'dropout': probability of replacing the label by null in training
    null_loss_weight: float = 0.1  # 'filtered': weight of the null-branch flow loss
    flow_steps: int = 16  # Euler steps when sampling (OGBench code: 16; ExORL code: 32)
    time_embedding: str = "scalar"  # 'scalar' raw t input (OGBench code) or 'sinusoidal' (ExORL code)
    time_dim: int = 16  # size of the sinusoidal time embedding
    time_grid: int = 0  # 0: t ~ U[0, 1]; N: t on the grid {0, 1/N, ..., 1} (ExORL code: 32)

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {"label_scheme": LABEL_SCHEMES, "time_embedding": TIME_EMBEDDINGS}


class CFGRLActor(nn.Module):
    """Label embedding + velocity network: v(s, label, a_t, t).

    The embedding is initialised as flax's nn.Embed under init 'parity' (N(0, 1 / label_dim), as both reference
    codes' label embeddings); net_options: arch, init, generator (`Agent.net_options()`)."""

    def __init__(self, config: CFGRLConfig, obs_dim: int, action_dim: int, **net_options) -> None:
        super().__init__()
        self.label_embedding = nn.Embedding(3, config.label_dim)
        init_embedding(self.label_embedding.weight, net_options["init"], net_options["generator"])
        self.velocity = FlowVelocity(obs_dim + config.label_dim, action_dim, config.hidden, config.activation,
                                     config.layer_norm, config.time_embedding, config.time_dim, **net_options)

    def cond(self, obs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """obs (B, obs_dim), labels (B,) int64 -> conditioning rows (B, obs_dim + label_dim)."""
        return torch.cat([obs, self.label_embedding(labels)], dim=-1)

    def forward(self, obs: torch.Tensor, labels: torch.Tensor, a_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.velocity(self.cond(obs, labels), a_t, t)


class CFGRL(Agent):
    Config = CFGRLConfig
    guided = True
    goal_conditioned = False
    batch_kind = "transitions"

    def __init__(self, config: CFGRLConfig, obs_dim: int, action_dim: int, goal_dim: int, device: torch.device,
                 seed: int) -> None:
        super().__init__(config, obs_dim, action_dim, goal_dim, device, seed)
        check_choice(config.label_scheme, LABEL_SCHEMES, "label_scheme")
        self.critic = IQLCritic.from_config(config, obs_dim, action_dim, **self.net_options())
        self.actor = CFGRLActor(config, obs_dim, action_dim, **self.net_options())
        self.to(device)
        self.make_optimizer()

    @classmethod
    def resolved_arch(cls, config: CFGRLConfig) -> str:
        """'filtered' is the ExORL code's scheme, so its networks follow that code unless `arch` says otherwise."""
        return config.arch or ("exorl" if config.label_scheme == "filtered" else "ogbench")

    def _actor_terms(self, batch: dict[str, torch.Tensor], adv: torch.Tensor, generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random draws of one actor loss: labels (B,) and, per sample, a_t, t, target, loss weight (B,)."""
        a_t, t, target = flow_pair(batch["actions"], generator, self.config.time_grid)
        if self.config.label_scheme == "dropout":
            labels = torch.where(adv >= 0, POSITIVE, NEGATIVE)
            drop = torch.rand(adv.shape, generator=generator, device=adv.device) < self.config.null_prob
            labels = torch.where(drop, NULL, labels)
            weight = torch.ones_like(adv)
        else:
            labels = torch.full_like(adv, POSITIVE, dtype=torch.long)
            weight = (adv > 0).to(adv.dtype)
        return labels, a_t, t, target, weight

    def _sample_losses(self, actor: nn.Module, obs: torch.Tensor, labels: torch.Tensor, a_t: torch.Tensor,
                       t: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Per-sample actor loss (B,) ('filtered': weighted positive branch + weighted null branch, one pass)."""
        if self.config.label_scheme == "dropout":
            return flow_matching_loss(actor(obs, labels, a_t, t), target)
        b = obs.shape[0]
        v = actor(obs.repeat(2, 1), torch.cat([labels, torch.full_like(labels, NULL)]), a_t.repeat(2, 1),
                  t.repeat(2, 1))
        return weight * flow_matching_loss(v[:b], target) + self.config.null_loss_weight * \
            flow_matching_loss(v[b:], target)

    def actor_loss(self, batch: dict[str, torch.Tensor], adv: torch.Tensor, generator: torch.Generator
                   ) -> torch.Tensor:
        """The flow-matching actor loss of a batch ('observations', 'actions') given its advantages adv (B,)
        (labels: 'dropout' positive where adv >= 0, else negative, null with prob. null_prob; 'filtered'
        weight 1[adv > 0] on the positive branch). Draws noise, times and dropout from `generator`."""
        labels, a_t, t, target, weight = self._actor_terms(batch, adv, generator)
        return self._sample_losses(self.actor, batch["observations"], labels, a_t, t, target, weight).mean()

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Critic + value + actor loss of a transition batch, and metrics 'critic/', 'value/', 'actor/'."""
        source = "online" if self.config.label_scheme == "dropout" else "target"
        critic_loss, info, adv = self.critic.losses(batch, advantage_from=source)
        actor_loss = self.actor_loss(batch, adv, generator)
        with torch.no_grad():
            positive = (adv >= 0) if self.config.label_scheme == "dropout" else (adv > 0)
            info.update({"actor/loss": actor_loss.detach(), "actor/adv_mean": adv.mean(),
                         "actor/positive_frac": positive.float().mean()})
        return critic_loss + actor_loss, info

    def before_step(self) -> None:
        self.critic.update_target()

    def per_sample_actor_grad_norms(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) norms of the gradient of each sample's own actor-loss term (not divided by B) w.r.t. the actor's
        parameters (paper Fig. 2), with labels, noise and times drawn as in `update` (consumes the sampling RNG;
        changes no parameter)."""
        source = "online" if self.config.label_scheme == "dropout" else "target"
        adv = self.critic.advantage(batch["observations"], batch["actions"], use_target=source == "target")
        labels, a_t, t, target, weight = self._actor_terms(batch, adv, self.generator)
        return per_sample_grad_norms(self.actor, self._sample_losses,
                                     (batch["observations"], labels, a_t, t, target, weight))

    @torch.no_grad()
    def act(self, observations: torch.Tensor, goals: torch.Tensor | None = None,
            w: torch.Tensor | float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """observations (B, obs_dim), w scalar or (B,) -> actions (B, A) in [-1, 1]; goals are ignored.

        Null and positive branches share one forward pass of 2B rows per Euler step; only the needed branch runs
        when every w is 0 (or 1). noise: the starting noise (B, A) (None: drawn from the agent's generator)."""
        b = observations.shape[0]
        labels = torch.full((b,), POSITIVE, dtype=torch.long, device=observations.device)
        return flow_act(self.actor.velocity, self.actor.cond(observations, labels),
                        self.actor.cond(observations, torch.full_like(labels, NULL)), w, self.generator,
                        self.config.flow_steps, self.action_dim, noise=noise)
