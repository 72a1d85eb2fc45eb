"""The IQL critic shared by the offline-RL methods (CFGRL, AWR): twin Q, V, and a Polyak-averaged target twin Q.

Losses (Kostrikov et al. 2022, as in the authors' OGBench and ExORL code):
- V(s): expectile regression, weight |expectile - 1[q - V < 0]| on (q - V)^2, q = min of the TARGET twin Q(s, a).
- Q_i(s, a): MSE to r + discount * mask * V(s') (V of the online value network, no gradient), summed over i
  (OGBench code) or averaged over i (ExORL code: `arch='exorl'`).
- target twin Q <- (1 - tau) target + tau online, once per gradient step from the online parameters before that
  step (`update_target`; both reference codes update the target from the pre-step critic).

The critic is a module, not an agent: an agent adds the critic losses to its actor loss and steps one optimiser,
calling `update_target` between the backward pass and the step (its `before_step`, cfgrl.core.agent.Agent).
`losses` also returns the advantage A = min_i Q_i(s, a) - V(s) of the batch from the forward passes the losses
already made, so a method needs no extra critic forward pass for its actor.

`TwinQ` (the twin Q, its target copy and the Polyak update) is the part a method with another critic loss shares
(FQL's Bellman critic, baselines/fql.py); IQLCritic is a TwinQ plus V.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.func import functional_call

from cfgrl.core.agent import DISCOUNT, POLYAK_RATE, Agent, Range, TrainConfig
from cfgrl.core.nets import ACTIVATIONS, mlp

ADVANTAGE_SOURCES = ("online", "target")


@dataclass
class IQLConfig(TrainConfig):
    """Critic fields shared by every method built on the IQL critic (each method's config subclasses this)."""

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {"value_activation": tuple(ACTIVATIONS)}
    RANGES: ClassVar[dict[str, Range]] = {"discount": DISCOUNT, "tau": POLYAK_RATE,
                                          "expectile": Range(0, 1, low_open=True, high_open=True)}

    value_hidden: tuple[int, ...] = (256, 256, 256)  # Q and V MLP widths (paper: 4 x 512 OGBench, 3 x 512 ExORL)
    value_activation: str = "gelu"  # Q / V hidden activation (OGBench code: GELU; ExORL code: Mish)
    value_layer_norm: bool = True  # LayerNorm in Q / V (both codes: yes)
    discount: float = 0.99  # gamma in the Q target r + gamma * mask * V(s')
    tau: float = 0.005  # Polyak rate of the target twin Q
    expectile: float = 0.9  # IQL expectile of the V loss (paper: 0.9; 0.5 makes V the behaviour value)


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Per-element asymmetric squared loss: expectile * diff^2 where diff >= 0, (1 - expectile) * diff^2 else."""
    weight = torch.where(diff >= 0, expectile, 1.0 - expectile)
    return weight * diff.pow(2)


class TwinQ(nn.Module):
    """Two Q(s, a) MLPs on [s, a] (cfgrl.core.nets.mlp) and a target copy of them (no gradient), updated by
    `update_target`. Initialisation draws from `generator`: head 1, then head 2 (the target starts as a copy)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], activation: str = "gelu",
                 layer_norm: bool = True, tau: float = 0.005, *, arch: str = "ogbench", init: str = "parity",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.tau = tau
        self.q = nn.ModuleList([mlp(obs_dim + action_dim, hidden, 1, activation, layer_norm, arch=arch, init=init,
                                    generator=generator) for _ in range(2)])
        self.target_q = copy.deepcopy(self.q).requires_grad_(False)

    def q_values(self, obs: torch.Tensor, actions: torch.Tensor, use_target: bool = False) -> torch.Tensor:
        """Both Q heads: obs (B, obs_dim), actions (B, A) -> (2, B)."""
        x = torch.cat([obs, actions], dim=-1)
        nets = self.target_q if use_target else self.q
        return torch.stack([net(x).squeeze(-1) for net in nets])

    def frozen_q_values(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Both online heads (2, B) with their parameters detached: a loss on them sends gradient to the inputs
        (an actor's actions) and none to the critic (a DDPG-style actor term in a summed loss)."""
        x = torch.cat([obs, actions], dim=-1)
        outs = []
        for net in self.q:
            frozen = {k: p.detach() for k, p in net.named_parameters()}
            outs.append(functional_call(net, (frozen, dict(net.named_buffers())), (x,)).squeeze(-1))
        return torch.stack(outs)

    @torch.no_grad()
    def update_target(self) -> None:
        """target <- target + tau (online - target), for every parameter of the twin Q."""
        torch._foreach_lerp_(list(self.target_q.parameters()), list(self.q.parameters()), self.tau)


class IQLCritic(TwinQ):
    """Twin Q(s, a) and V(s) MLPs (cfgrl.core.nets.mlp) plus a target copy of the twin Q.

    Batch keys: 'observations' (B, obs_dim), 'actions' (B, A), 'rewards' (B,), 'masks' (B,) (0 where s' is
    terminal), 'next_observations' (B, obs_dim).
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], activation: str = "gelu",
                 layer_norm: bool = True, discount: float = 0.99, tau: float = 0.005,
                 expectile: float = 0.9, *, arch: str = "ogbench", init: str = "parity",
                 generator: torch.Generator | None = None) -> None:
        super().__init__(obs_dim, action_dim, hidden, activation, layer_norm, tau, arch=arch, init=init,
                         generator=generator)
        self.discount, self.expectile = discount, expectile
        self.head_reduction = "mean" if arch == "exorl" else "sum"
        self.v = mlp(obs_dim, hidden, 1, activation, layer_norm, arch=arch, init=init, generator=generator)

    @classmethod
    def from_config(cls, config: IQLConfig, obs_dim: int, action_dim: int, **net_options: Any) -> IQLCritic:
        """The critic of a method config; net_options: arch, init, generator (`Agent.net_options()`)."""
        return cls(obs_dim, action_dim, config.value_hidden, config.value_activation, config.value_layer_norm,
                   config.discount, config.tau, config.expectile, **net_options)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V: obs (B, obs_dim) -> (B,)."""
        out: torch.Tensor = self.v(obs).squeeze(-1)
        return out

    @torch.no_grad()
    def advantage(self, obs: torch.Tensor, actions: torch.Tensor, use_target: bool = False) -> torch.Tensor:
        """A(s, a) = min_i Q_i(s, a) - V(s), with the online or the target twin Q (no gradient): (B,)."""
        return self.q_values(obs, actions, use_target).min(0).values - self.value(obs)

    def losses(self, batch: dict[str, torch.Tensor], advantage_from: str = "online"
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Critic + value loss, detached metrics, and the batch advantage (B,) (no gradient).

        advantage_from: 'online' (min of the online twin Q, OGBench code) or 'target' (min of the target twin
        Q, ExORL code); either way V(s) is the online V, and A comes from forward passes the losses make anyway.
        """
        if advantage_from not in ADVANTAGE_SOURCES:
            raise ValueError(f"advantage_from must be 'online' or 'target', got {advantage_from!r}")
        loss, info, advantages = self.losses_all(batch)
        return loss, info, advantages[advantage_from]

    def losses_all(self, batch: dict[str, torch.Tensor]
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """`losses` with the advantage (B,) from both sources: {'online': ..., 'target': ...} (several actors on
        one critic, `shared_critic_update`)."""
        obs, actions = batch["observations"], batch["actions"]
        with torch.no_grad():
            next_v = self.value(batch["next_observations"])
            q_target = batch["rewards"] + self.discount * batch["masks"] * next_v
            q_min_target = self.q_values(obs, actions, use_target=True).min(0).values
        qs = self.q_values(obs, actions)
        squared = (qs - q_target).pow(2)
        critic_loss = (squared.sum(0) if self.head_reduction == "sum" else squared.mean(0)).mean()
        v = self.value(obs)
        value_loss = expectile_loss(q_min_target - v, self.expectile).mean()
        with torch.no_grad():
            v_const = v.detach()
            advantages = {"online": qs.detach().min(0).values - v_const, "target": q_min_target - v_const}
            info = {
                "critic/loss": critic_loss.detach(),
                "critic/q_mean": qs.mean(),
                "critic/q_target_mean": q_target.mean(),
                "value/loss": value_loss.detach(),
                "value/v_mean": v.mean(),
                "value/v_max": v.max(),
                "value/v_min": v.min(),
            }
        return critic_loss + value_loss, info, advantages


# fields of an IQL agent's config that its critic's training depends on (with the batch stream and the init)
CRITIC_FIELDS = ("value_hidden", "value_activation", "value_layer_norm", "discount", "tau", "expectile", "steps",
                 "batch_size", "lr", "weight_decay", "init", "device", "precision")


class IQLAgent(Agent):
    """An agent trained on the IQL critic's losses plus an actor loss on the critic's advantage A(s, a) (CFGRL,
    AWR, IDQL): `loss` = critic + value + `actor_part`, one optimiser step, the target twin Q Polyak-updated
    before it. The critic's training never depends on the actor (A carries no gradient), so entries whose critics
    are trained alike (`critic_signature`) can share one critic (`shared_critic_update`)."""

    critic: IQLCritic
    advantage_from = "online"  # which twin Q the actor's A comes from ('online' or 'target'; see IQLCritic.losses)

    @classmethod
    def critic_signature(cls, config: Any) -> tuple[Any, ...]:
        """What the critic's training depends on: two entries with equal signatures, the same env, seed and
        batches train bit-identical critics (the init draws the critic first; `share_critic` checks it)."""
        return (tuple(getattr(config, name) for name in CRITIC_FIELDS), cls.resolved_arch(config), cls.batch_kind,
                tuple(sorted(cls.batch_options(config).items())))

    def actor_part(self, batch: dict[str, torch.Tensor], adv: torch.Tensor, generator: torch.Generator
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The actor's loss on a batch given its advantages adv (B,) (no gradient), and detached 'actor/' metrics."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Critic + value + actor loss of a transition batch, and metrics 'critic/', 'value/', 'actor/'."""
        critic_loss, info, advantages = self.critic.losses_all(batch)
        actor_loss, actor_info = self.actor_part(batch, advantages[self.advantage_from], generator)
        info.update(actor_info)
        return critic_loss + actor_loss, info

    def before_step(self) -> None:
        self.critic.update_target()

    def share_critic(self, leader: IQLAgent) -> None:
        """Train on `leader`'s critic from now on: this agent's critic becomes the leader's module (equal to it at
        this point, or a ValueError), and its optimiser keeps only its own networks (the leader's steps the
        critic). Step both with `shared_critic_update`."""
        mine, theirs = self.critic.state_dict(), leader.critic.state_dict()
        if mine.keys() != theirs.keys() or not all(torch.equal(mine[k], theirs[k]) for k in mine):
            raise ValueError(f"{type(self).__name__} cannot share the critic of {type(leader).__name__}: the two "
                             "critics differ at initialisation")
        self.critic = leader.critic
        self.make_optimizer(exclude=leader.critic)


def shared_critic_update(agents: Sequence[IQLAgent], batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """One gradient step of several agents on one critic (agents[0]'s, the others `share_critic` it) and one
    batch: the critic's losses once, each agent's actor loss on the advantage its source gives, one backward pass
    of the sum, one Polyak update, every optimiser stepped. Each agent's parameters and metrics are bit for bit
    those of its own `update(batch)` with a critic of its own (the critic's gradient comes from its losses alone,
    each actor's from its own loss alone). Returns each agent's metrics."""
    leader = agents[0]
    device = next(leader.parameters()).device.type
    with torch.autocast(device, dtype=torch.bfloat16, enabled=leader.config.precision == "bf16"):
        total, critic_info, advantages = leader.critic.losses_all(batch)
        infos = []
        for agent in agents:
            actor_loss, actor_info = agent.actor_part(batch, advantages[agent.advantage_from], agent.generator)
            total = total + actor_loss
            infos.append({**critic_info, **actor_info})
    for agent in agents:
        assert agent.optimizer is not None
        agent.optimizer.zero_grad(set_to_none=True)
    total.float().backward()  # type: ignore[no-untyped-call]
    leader.critic.update_target()
    for agent in agents:
        assert agent.optimizer is not None
        agent.optimizer.step()
        agent.step += 1
    return infos
