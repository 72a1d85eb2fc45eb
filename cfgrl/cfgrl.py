"""CFGRL for offline RL: a flow-matching policy conditioned on an optimality label from an IQL critic, sampled
with classifier-free guidance between the null and the positive label.

One network v(s, o, a_t, t) learns pi(a | s, o = 1) and pi(a | s) at once; sampling with
v = v(s, null) + w (v(s, pos) - v(s, null)) draws from pi_hat(a | s) p(o = 1 | s, a)^w, so w >= 0 is a test-time
knob: w = 0 is flow BC, w = 1 the label-conditioned (filtered) policy, w > 1 extrapolates.

Two label schemes from the authors' code (cfgrl/docs: paper.md section 2):
- 'dropout' (OGBench single-task code, the paper's text): A = min(Q1, Q2)(s, a) - V(s) from the ONLINE critic;
  label positive if A >= 0 else negative (three classes: null 0, negative 1, positive 2, through a learned
  embedding); with probability `null_prob` the label is replaced by null; plain unweighted flow-matching MSE.
- 'filtered' (ExORL code): A from the TARGET twin Q (and the online V); no dropout, no negative class; loss
  mean(1[A > 0] |v(s, pos) - target|^2 + null_loss_weight |v(s, null) - target|^2), both branches on the same
  noisy action and time. The authors' ExORL code also draws t from the 33-point grid {0, 1/32, ..., 1}, embeds
  it sinusoidally (16-d) and samples with 32 steps: time_grid=32, time_embedding='sinusoidal', flow_steps=32.
  It uses separate Adam optimisers (lr 3e-4) for actor, critic and value; with weight_decay 0 and one lr that is
  exactly one AdamW over all parameters, which is what is used here for both schemes.
Two more, ablations of the label with no reference code (same dropout, loss and guided sampler as 'dropout'):
- 'quantile': A (online critic) binned into K = `label_bins` quantiles of the batch (`quantile_labels`), label
  bin + 1 in 1..K through a (K + 1)-row embedding (null 0), null with probability `null_prob`; sampled guided
  toward the top bin, v = v(s, null) + w (v(s, K) - v(s, null)).
- 'return': return-to-go conditioning. The batch's 'returns_to_go' (cfgrl.data.samplers, discount = `discount`)
  normalised to [0, 1] by the range of the first batch the agent sees, projected by a learned Linear(1, label_dim);
  null a learned vector (initialised as the null goals); null with probability `null_prob`. Sampled guided toward
  the `target_return_quantile` quantile of that first batch's returns-to-go. The range and the target are frozen
  into the buffer `return_stats` at that first batch (an estimate of the dataset's, from batch_size rows), so
  act() is deterministic and a checkpoint or model.pt carries them. The IQL critic is still trained (its metrics
  are logged) but the labels do not use it.
The 3-row embedding of 'dropout' and 'filtered' and every number they compute are as before these two were added.
Critic, value and actor losses are summed and take one optimiser step; the target twin Q is Polyak-updated from
the pre-step critic (both reference codes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from cfgrl.core.agent import FLOW_STEPS, NULL_PROB, TIME_DIM, TIME_GRID, Range
from cfgrl.core.flow import TIME_EMBEDDINGS, FlowVelocity, flow_act, flow_matching_loss, flow_pair
from cfgrl.core.gradients import per_sample_grad_norms
from cfgrl.core.iql import IQLAgent, IQLConfig, IQLCritic
from cfgrl.core.nets import check_choice, init_embedding, init_linear, make_null_goal

NULL, NEGATIVE, POSITIVE = 0, 1, 2  # label classes of the embedding ('quantile': NULL, then bins 1..K)
LABEL_SCHEMES = ("dropout", "filtered", "quantile", "return")
NULL_RETURN = float("nan")  # 'return': the label value of a null row (its condition is the learned null vector)


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
    label_bins: int = 4  # 'quantile': K advantage bins per batch (no reference code; 4: quartiles)
    target_return_quantile: float = 0.9  # 'return': act toward this quantile of the returns-to-go (no reference)

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {"label_scheme": LABEL_SCHEMES, "time_embedding": TIME_EMBEDDINGS}
    RANGES: ClassVar[dict[str, Range]] = {"label_dim": Range(1, 65_536), "null_prob": NULL_PROB,
                                          "null_loss_weight": Range(0, 1e6), "flow_steps": FLOW_STEPS,
                                          "time_dim": TIME_DIM, "time_grid": TIME_GRID,
                                          "label_bins": Range(2, 10_000), "target_return_quantile": Range(0, 1)}


def quantile_labels(adv: torch.Tensor, bins: int) -> torch.Tensor:
    """'quantile' labels of a batch: adv (B,) -> (B,) int64 in 1..bins, the advantage's bin among the batch's
    quantiles q_k = quantile(adv, k / bins), k = 1 .. bins - 1 (torch.quantile, linear interpolation); bin k + 1
    holds q_k <= A < q_{k+1}, so the largest advantage is always in the top bin."""
    levels = torch.arange(1, bins, device=adv.device, dtype=adv.dtype) / bins
    edges = torch.quantile(adv, levels)
    return torch.bucketize(adv, edges, right=True) + 1


class CFGRLActor(nn.Module):
    """Label embedding + velocity network: v(s, label, a_t, t).

    The embedding is initialised as flax's nn.Embed under init 'parity' (N(0, 1 / label_dim), as both reference
    codes' label embeddings): 3 rows (null, negative, positive), K + 1 for 'quantile'. 'return' has no embedding:
    a Linear(1, label_dim) of the normalised return-to-go and a learned null vector. net_options: arch, init,
    generator (`Agent.net_options()`)."""

    def __init__(self, config: CFGRLConfig, obs_dim: int, action_dim: int, **net_options) -> None:
        super().__init__()
        self.scheme = config.label_scheme
        init, generator = net_options["init"], net_options["generator"]
        if self.scheme == "return":
            self.return_projection = init_linear(nn.Linear(1, config.label_dim), init, generator=generator)
            self.null_label = make_null_goal(config.label_dim, init, generator)
        else:
            rows = config.label_bins + 1 if self.scheme == "quantile" else 3
            self.label_embedding = nn.Embedding(rows, config.label_dim)
            init_embedding(self.label_embedding.weight, init, generator)
        self.velocity = FlowVelocity(obs_dim + config.label_dim, action_dim, config.hidden, config.activation,
                                     config.layer_norm, config.time_embedding, config.time_dim, **net_options)

    def cond(self, obs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """obs (B, obs_dim), labels (B,) -> conditioning rows (B, obs_dim + label_dim). labels: int64 classes, or
        for 'return' the normalised return-to-go (float, NULL_RETURN (NaN) on null rows)."""
        if self.scheme != "return":
            return torch.cat([obs, self.label_embedding(labels)], dim=-1)
        null = torch.isnan(labels)[:, None]
        projected = self.return_projection(torch.nan_to_num(labels, nan=0.0)[:, None])  # NaN kept out of grads
        return torch.cat([obs, torch.where(null, self.null_label.expand_as(projected), projected)], dim=-1)

    def forward(self, obs: torch.Tensor, labels: torch.Tensor, a_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.velocity(self.cond(obs, labels), a_t, t)


class CFGRL(IQLAgent):
    Config = CFGRLConfig
    guided = True
    goal_conditioned = False
    batch_kind = "transitions"
    return_stats: torch.Tensor  # 'return' only: the buffer (low, high, target) of the returns-to-go

    def __init__(self, config: CFGRLConfig, obs_dim: int, action_dim: int, goal_dim: int, device: torch.device,
                 seed: int) -> None:
        super().__init__(config, obs_dim, action_dim, goal_dim, device, seed)
        check_choice(config.label_scheme, LABEL_SCHEMES, "label_scheme")
        if config.label_scheme == "quantile" and config.label_bins < 2:
            raise ValueError(f"label_bins must be >= 2, got {config.label_bins}")
        if config.label_scheme == "return" and not 0.0 <= config.target_return_quantile <= 1.0:
            raise ValueError(f"target_return_quantile must be in [0, 1], got {config.target_return_quantile}")
        # the ExORL code's labels take A from the target twin Q, the OGBench code's from the online one
        self.advantage_from = "target" if config.label_scheme == "filtered" else "online"
        self.critic = IQLCritic.from_config(config, obs_dim, action_dim, **self.net_options())
        self.actor = CFGRLActor(config, obs_dim, action_dim, **self.net_options())
        if config.label_scheme == "return":
            # (low, high, target) returns-to-go, NaN until the first batch (`normalised_returns`)
            self.register_buffer("return_stats", torch.full((3,), float("nan")))
        self.to(device)
        self.make_optimizer()

    @classmethod
    def batch_options(cls, config: CFGRLConfig) -> dict[str, Any]:
        """'return' asks for batches with a return-to-go, discounted by the critic's discount."""
        options = super().batch_options(config)
        if config.label_scheme == "return":
            options["return_discount"] = config.discount
        return options

    @classmethod
    def resolved_arch(cls, config: CFGRLConfig) -> str:
        """'filtered' is the ExORL code's scheme, so its networks follow that code unless `arch` says otherwise."""
        return config.arch or ("exorl" if config.label_scheme == "filtered" else "ogbench")

    @torch.no_grad()
    def normalised_returns(self, returns_to_go: torch.Tensor) -> torch.Tensor:
        """'return': returns-to-go (B,) -> (R - low) / (high - low) (B,). The first call freezes low, high (the
        batch's range) and the target (its `target_return_quantile` quantile) into `return_stats`; later calls
        keep them (branch-free: no host sync)."""
        r = returns_to_go.to(self.return_stats.dtype)
        first = torch.stack([r.min(), r.max(), torch.quantile(r, self.config.target_return_quantile)])
        self.return_stats.copy_(torch.where(torch.isnan(self.return_stats), first, self.return_stats))
        low, high = self.return_stats[0], self.return_stats[1]
        return (r - low) / (high - low).clamp_min(1e-6)

    def _actor_terms(self, batch: dict[str, torch.Tensor], adv: torch.Tensor, generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random draws of one actor loss: labels (B,) and, per sample, a_t, t, target, loss weight (B,).
        Draw order: the flow pair (noise, t), then ('dropout', 'quantile', 'return') one uniform per row for the
        null dropout."""
        scheme = self.config.label_scheme
        a_t, t, target = flow_pair(batch["actions"], generator, self.config.time_grid)
        if scheme == "filtered":
            labels = torch.full_like(adv, POSITIVE, dtype=torch.long)
            return labels, a_t, t, target, (adv > 0).to(adv.dtype)
        if scheme == "dropout":
            labels = torch.where(adv >= 0, POSITIVE, NEGATIVE)
        elif scheme == "quantile":
            labels = quantile_labels(adv, self.config.label_bins)
        else:
            labels = self.normalised_returns(batch["returns_to_go"])
        drop = torch.rand(adv.shape, generator=generator, device=adv.device) < self.config.null_prob
        labels = torch.where(drop, NULL_RETURN if scheme == "return" else NULL, labels)
        weight = torch.ones_like(adv)
        return labels, a_t, t, target, weight

    def _sample_losses(self, actor: nn.Module, obs: torch.Tensor, labels: torch.Tensor, a_t: torch.Tensor,
                       t: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Per-sample actor loss (B,) ('filtered': weighted positive branch + weighted null branch, one pass)."""
        if self.config.label_scheme != "filtered":
            return flow_matching_loss(actor(obs, labels, a_t, t), target)
        b = obs.shape[0]
        v = actor(obs.repeat(2, 1), torch.cat([labels, torch.full_like(labels, NULL)]), a_t.repeat(2, 1),
                  t.repeat(2, 1))
        return weight * flow_matching_loss(v[:b], target) + self.config.null_loss_weight * \
            flow_matching_loss(v[b:], target)

    def actor_loss(self, batch: dict[str, torch.Tensor], adv: torch.Tensor, generator: torch.Generator
                   ) -> torch.Tensor:
        """The flow-matching actor loss of a batch ('observations', 'actions'; 'returns_to_go' for 'return')
        given its advantages adv (B,) (labels: 'dropout' positive where adv >= 0, else negative; 'quantile' the
        batch quantile bin of adv; 'return' the normalised return-to-go; each null with prob. null_prob;
        'filtered' weight 1[adv > 0] on the positive branch). Draws noise, times and dropout from `generator`."""
        labels, a_t, t, target, weight = self._actor_terms(batch, adv, generator)
        return self._sample_losses(self.actor, batch["observations"], labels, a_t, t, target, weight).mean()

    def actor_part(self, batch: dict[str, torch.Tensor], adv: torch.Tensor, generator: torch.Generator
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The actor loss (`actor_loss`) and metrics 'actor/' of a transition batch given its advantages (B,)."""
        actor_loss = self.actor_loss(batch, adv, generator)
        with torch.no_grad():
            positive = (adv > 0) if self.config.label_scheme == "filtered" else (adv >= 0)
            info = {"actor/loss": actor_loss.detach(), "actor/adv_mean": adv.mean(),
                    "actor/positive_frac": positive.float().mean()}
            if self.config.label_scheme == "return":
                info["actor/return_to_go_mean"] = batch["returns_to_go"].mean()
        return actor_loss, info

    def per_sample_actor_grad_norms(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) norms of the gradient of each sample's own actor-loss term (not divided by B) w.r.t. the actor's
        parameters (paper Fig. 2), with labels, noise and times drawn as in `update` (consumes the sampling RNG;
        changes no parameter)."""
        adv = self.critic.advantage(batch["observations"], batch["actions"], use_target=self.advantage_from == "target")
        labels, a_t, t, target, weight = self._actor_terms(batch, adv, self.generator)
        return per_sample_grad_norms(self.actor, self._sample_losses,
                                     (batch["observations"], labels, a_t, t, target, weight))

    @torch.no_grad()
    def act(self, observations: torch.Tensor, goals: torch.Tensor | None = None,
            w: torch.Tensor | float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """observations (B, obs_dim), w scalar or (B,) -> actions (B, A) in [-1, 1]; goals are ignored.

        Guided from null toward the positive label ('dropout', 'filtered'), the top bin ('quantile') or the target
        return ('return'). Both branches share one forward pass of 2B rows per Euler step; only the needed branch
        runs when every w is 0 (or 1). noise: the starting noise (B, A) (None: drawn from the agent's generator)."""
        b, device = observations.shape[0], observations.device
        if self.config.label_scheme == "return":
            if bool(torch.isnan(self.return_stats).any()):
                raise RuntimeError("label_scheme 'return' acts toward a return fixed by its first training batch; "
                                   "train (or load a trained model) first")
            low, high, target = self.return_stats
            labels = ((target - low) / (high - low).clamp_min(1e-6)).expand(b)
            null = torch.full_like(labels, NULL_RETURN)
        else:
            top = self.config.label_bins if self.config.label_scheme == "quantile" else POSITIVE
            labels = torch.full((b,), top, dtype=torch.long, device=device)
            null = torch.full_like(labels, NULL)
        return flow_act(self.actor.velocity, self.actor.cond(observations, labels),
                        self.actor.cond(observations, null), w, self.generator,
                        self.config.flow_steps, self.action_dim, noise=noise)
