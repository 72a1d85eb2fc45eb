"""FQL (Park, Li, Levine 2025, "Flow Q-Learning"): a flow BC policy distilled into a one-step policy that also
maximises a Bellman-trained Q.

Networks (the authors' code, seohongpark/fql agents/fql.py, read for the facts below):
- BC flow v(s, a_t, t): the flow-matching velocity (cfgrl.core.flow.FlowVelocity, raw t input, t ~ U[0, 1]);
- one-step policy mu(s, z): an MLP on [s, z], z ~ N(0, I) of action size (the reference's ActorVectorField
  without a time input), output clipped to [-1, 1] when acting and inside the Q terms;
- twin Q with LayerNorm and a Polyak target (cfgrl.core.iql.TwinQ), no V.
Losses of one batch, summed into one AdamW step (the reference: one Adam over every module):
- critic: mean over both heads and the batch of (Q_i(s, a) - y)^2, y = r + discount * mask * agg_i Q_target_i(s',
  clip(mu(s', z'))), z' ~ N(0, I), agg = `q_agg` (mean or min of the two heads), no gradient through y;
- actor: bc_flow + alpha * distill + q_loss, where bc_flow is the flow-matching MSE, distill = mean((mu(s, z) -
  flow(s, z))^2) with flow(s, z) the BC flow Euler-integrated from the same z with `flow_steps` steps and clipped
  (no gradient: a fixed target, as the reference computes it from the non-differentiated parameters), and
  q_loss = -mean(mean_i Q_i(s, clip(mu(s, z)))) through the critic's parameters held fixed (gradient to mu only),
  times 1 / mean|Q| (no gradient) when `normalize_q_loss`.
The target twin Q moves toward the pre-step critic (`before_step`; the reference updates it from the parameters
before its step too). Draw order from the generator: z' (critic), the flow pair (noise, t), then z.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from cfgrl.core.agent import DISCOUNT, FLOW_STEPS, POLYAK_RATE, Agent, Range, TrainConfig
from cfgrl.core.flow import FlowVelocity, flow_act, flow_matching_loss, flow_pair, row_stable
from cfgrl.core.iql import TwinQ
from cfgrl.core.nets import ACTIVATIONS, check_choice, mlp

Q_AGGREGATIONS = ("mean", "min")


@dataclass
class FQLConfig(TrainConfig):
    batch_size: int = 256  # transitions per update (FQL code: 256)
    hidden: tuple[int, ...] = (256, 256, 256)  # BC flow and one-step policy MLP widths (FQL code: 4 x 512)
    activation: str = "gelu"  # actor hidden activation (FQL code: GELU, flax's tanh form)
    layer_norm: bool = False  # LayerNorm in both actors (FQL code: actor_layer_norm False)
    value_hidden: tuple[int, ...] = (256, 256, 256)  # Q MLP widths (FQL code: 4 x 512)
    value_activation: str = "gelu"  # Q hidden activation (FQL code: GELU)
    value_layer_norm: bool = True  # LayerNorm in Q (FQL code: layer_norm True)
    discount: float = 0.99  # gamma of the Bellman target (FQL code: 0.99; its commands: 0.995 on giant, humanoid mazes)
    tau: float = 0.005  # Polyak rate of the target twin Q (FQL code: 0.005)
    q_agg: str = "mean"  # target twin aggregation (FQL code default 'mean'; its commands: 'min' on antmaze, adroit)
    # distillation weight (FQL code default 10, "tuned per environment"; its OGBench commands: 10 antmaze /
    # antsoccer, 30 humanoidmaze, 300 cube / scene, 1000 puzzle; D4RL: 10 or 3 antmaze, 3000-30000 adroit)
    alpha: float = 10.0
    flow_steps: int = 10  # Euler steps of the BC flow in the distillation target (FQL code: 10)
    normalize_q_loss: bool = False  # scale the Q loss by 1 / mean|Q| (FQL code: False, the paper's setting)

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {"q_agg": Q_AGGREGATIONS, "value_activation": tuple(ACTIVATIONS)}
    RANGES: ClassVar[dict[str, Range]] = {"discount": DISCOUNT, "tau": POLYAK_RATE,
                                          "alpha": Range(0, 1e9), "flow_steps": FLOW_STEPS}


class FQL(Agent):
    Config = FQLConfig
    guided = False
    goal_conditioned = False
    batch_kind = "transitions"

    def __init__(self, config: FQLConfig, obs_dim: int, action_dim: int, goal_dim: int, device: torch.device,
                 seed: int) -> None:
        super().__init__(config, obs_dim, action_dim, goal_dim, device, seed)
        check_choice(config.q_agg, Q_AGGREGATIONS, "q_agg")
        opts = self.net_options()
        self.critic = TwinQ(obs_dim, action_dim, config.value_hidden, config.value_activation,
                            config.value_layer_norm, config.tau, **opts)
        self.bc_flow = FlowVelocity(obs_dim, action_dim, config.hidden, config.activation, config.layer_norm, **opts)
        self.one_step = mlp(obs_dim + action_dim, config.hidden, action_dim, config.activation, config.layer_norm,
                            **opts)
        self.to(device)
        self.make_optimizer()

    def policy(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """mu(s, z), unclipped: obs (B, obs_dim), z (B, A) -> (B, A)."""
        out: torch.Tensor = self.one_step(torch.cat([obs, z], dim=-1))
        return out

    @torch.no_grad()
    def flow_actions(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The BC flow Euler-integrated from z (B, A) over `flow_steps` steps, clipped to [-1, 1]: (B, A)."""
        return flow_act(self.bc_flow, obs, None, 1.0, self.generator, self.config.flow_steps, self.action_dim,
                        noise=z)

    def loss(self, batch: dict[str, torch.Tensor], generator: torch.Generator
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Critic + actor loss of a transition batch, and metrics 'critic/...' and 'actor/...'."""
        cfg = self.config
        obs, actions, next_obs = batch["observations"], batch["actions"], batch["next_observations"]

        def normal() -> torch.Tensor:
            return torch.randn(actions.shape, generator=generator, device=actions.device, dtype=actions.dtype)

        # critic: Bellman target through the one-step policy at s'
        with torch.no_grad():
            next_actions = self.policy(next_obs, normal()).clamp(-1.0, 1.0)
            next_qs = self.critic.q_values(next_obs, next_actions, use_target=True)
            next_q = next_qs.min(0).values if cfg.q_agg == "min" else next_qs.mean(0)
            q_target = batch["rewards"] + cfg.discount * batch["masks"] * next_q
        qs = self.critic.q_values(obs, actions)
        critic_loss = (qs - q_target).pow(2).mean()

        # actor: BC flow matching + distillation of the flow into mu + Q maximisation
        a_t, t, target = flow_pair(actions, generator)
        bc_flow_loss = flow_matching_loss(self.bc_flow(obs, a_t, t), target).mean()
        z = normal()
        mu = self.policy(obs, z)
        distill_loss = (mu - self.flow_actions(obs, z)).pow(2).mean()
        q = self.critic.frozen_q_values(obs, mu.clamp(-1.0, 1.0)).mean(0)
        q_loss = -q.mean()
        if cfg.normalize_q_loss:
            q_loss = q_loss / q.abs().mean().detach()
        actor_loss = bc_flow_loss + cfg.alpha * distill_loss + q_loss

        with torch.no_grad():
            info = {
                "critic/loss": critic_loss.detach(), "critic/q_mean": qs.mean(), "critic/q_max": qs.max(),
                "critic/q_min": qs.min(), "critic/q_target_mean": q_target.mean(),
                "actor/loss": actor_loss.detach(), "actor/bc_flow_loss": bc_flow_loss.detach(),
                "actor/distill_loss": distill_loss.detach(), "actor/q_loss": q_loss.detach(), "actor/q": q.mean(),
                "actor/mse": (mu.clamp(-1.0, 1.0) - actions).pow(2).mean(),
            }
        return critic_loss + actor_loss, info

    def before_step(self) -> None:
        self.critic.update_target()

    @torch.no_grad()
    def act(self, observations: torch.Tensor, goals: torch.Tensor | None = None,
            w: torch.Tensor | float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """clip(mu(s, z)) (B, A), z = noise (B, A) (None: drawn from the agent's generator); goals, w ignored."""
        if noise is None:
            noise = torch.randn((observations.shape[0], self.action_dim), generator=self.generator,
                                device=observations.device, dtype=observations.dtype)
        return row_stable(self.policy, observations, noise.to(observations.dtype)).clamp(-1.0, 1.0)
