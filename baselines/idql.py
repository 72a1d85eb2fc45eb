"""IDQL (Hansen-Estruch et al. 2023, "IDQL: Implicit Q-Learning as an Actor-Critic Method with Diffusion
Policies"): the IQL critic, plus a generative behaviour policy whose samples the critic re-ranks when acting.

Training: the shared IQL critic (cfgrl/core/iql.py, the same fields as AWR and CFGRL) and an unconditional
flow-matching behaviour policy pi_hat(a | s), the network CFGRL samples at w = 0 trained the same way (flow matching
on every transition of the batch, no labels). Critic, value and flow losses are summed and take one AdamW step; the
target twin Q is Polyak-updated from the pre-step critic (`before_step`, as AWR and CFGRL).

Acting: N = `num_samples` candidate actions per state from the flow (Euler, `flow_steps`), each scored by the
critic, one kept per state:
- select 'argmax': the best score (the authors' evaluation, `DDPMIQLLearner.eval_actions`);
- select 'softmax': candidate i with probability proportional to exp(score_i / temperature), by Gumbel-max.
select_on 'q': min of the TARGET twin Q (the authors' code scores candidates with its target critic);
'advantage': that Q minus V(s). V(s) is the same for all N candidates of a state, so both scores pick the same
candidate under either rule (up to rounding); 'advantage' only changes the logged scale.
Randomness comes only from the row's `noise` (B, N A + N): the candidates' starting noise (N blocks of A numbers),
then one standard normal per candidate, turned into a Gumbel variate through the normal CDF (used by 'softmax';
'argmax' ignores it). With N = 1 the actions are flow BC's (baselines/flow_bc.py) on the same noise.

Not reproduced from the authors' code (philippe-eecs/IDQL, jaxrl5/agents/ddpm_iql): its DDPM policy (T = 5, VP
schedule, LN-ResNet, an EMA copy of the policy for sampling, two actor steps per critic step, expectile 0.7 on
locomotion / 0.9 on AntMaze); here the policy is CFGRL's flow so that the comparison isolates the extraction step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from cfgrl.core.agent import FLOW_STEPS, TIME_DIM, TIME_GRID, Range
from cfgrl.core.flow import TIME_EMBEDDINGS, FlowVelocity, flow_act, flow_matching_loss, flow_pair, row_stable
from cfgrl.core.iql import IQLAgent, IQLConfig, IQLCritic
from cfgrl.core.nets import check_choice

SELECTIONS = ("argmax", "softmax")
SCORES = ("q", "advantage")


@dataclass
class IDQLConfig(IQLConfig):
    # IQLConfig adds: value_hidden, value_activation, value_layer_norm, discount, tau, expectile (see cfgrl/core/iql.py)
    batch_size: int = 256  # transitions per update (paper: 1024, as CFGRL)
    # the flow policy: CFGRLConfig's fields and defaults (CFGRL at w = 0)
    hidden: tuple[int, ...] = (256, 256, 256)  # velocity MLP widths (paper: 4 x 512 OGBench, 3 x 512 ExORL)
    activation: str = "gelu"  # actor hidden activation (OGBench code: GELU)
    layer_norm: bool = False  # LayerNorm in the actor (OGBench code: no; ExORL code: yes)
    flow_steps: int = 16  # Euler steps when sampling (OGBench code: 16; ExORL code: 32)
    time_embedding: str = "scalar"  # 'scalar' raw t input (OGBench code) or 'sinusoidal' (ExORL code)
    time_dim: int = 16  # size of the sinusoidal time embedding
    time_grid: int = 0  # 0: t ~ U[0, 1]; N: t on the grid {0, 1/N, ..., 1} (ExORL code: 32)
    # action selection
    num_samples: int = 64  # N candidates per state (IDQL code: N = 64, DDPMIQLLearner and its offline launcher)
    select: str = "argmax"  # 'argmax' (IDQL code's evaluation) or 'softmax' (sample by exp(score / temperature))
    select_on: str = "q"  # 'q' (min of the target twin Q, IDQL code) or 'advantage' (Q - V)
    softmax_temperature: float = 1.0  # 'softmax' temperature (no reference value: the IDQL code evaluates with argmax)

    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {"select": SELECTIONS, "select_on": SCORES,
                                                     "time_embedding": TIME_EMBEDDINGS}
    RANGES: ClassVar[dict[str, Range]] = {"flow_steps": FLOW_STEPS, "time_dim": TIME_DIM,
                                          "time_grid": TIME_GRID, "num_samples": Range(1, 100_000),
                                          "softmax_temperature": Range(0, 1e6, low_open=True)}


class IDQL(IQLAgent):
    Config = IDQLConfig
    guided = False
    goal_conditioned = False
    batch_kind = "transitions"

    def __init__(self, config: IDQLConfig, obs_dim: int, action_dim: int, goal_dim: int, device: torch.device,
                 seed: int) -> None:
        super().__init__(config, obs_dim, action_dim, goal_dim, device, seed)
        check_choice(config.select, SELECTIONS, "select")
        check_choice(config.select_on, SCORES, "select_on")
        if config.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {config.num_samples}")
        if not config.softmax_temperature > 0:
            raise ValueError(f"softmax_temperature must be > 0, got {config.softmax_temperature}")
        self.advantage_from = "online"
        self.critic = IQLCritic.from_config(config, obs_dim, action_dim, **self.net_options())
        self.velocity = FlowVelocity(obs_dim, action_dim, config.hidden, config.activation, config.layer_norm,
                                     config.time_embedding, config.time_dim, **self.net_options())
        self.to(device)
        self.make_optimizer()

    def actor_part(self, batch: dict[str, torch.Tensor], adv: torch.Tensor, generator: torch.Generator
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The flow-matching loss of the behaviour policy and metrics 'actor/'; draws the flow pair (noise, then
        t) from `generator` (adv only reported)."""
        a_t, t, target = flow_pair(batch["actions"], generator, self.config.time_grid)
        actor_loss = flow_matching_loss(self.velocity(batch["observations"], a_t, t), target).mean()
        return actor_loss, {"actor/loss": actor_loss.detach(), "actor/adv_mean": adv.mean()}

    @property
    def noise_dim(self) -> int:
        """N A starting-noise numbers (the candidates in turn), then N normals for the Gumbel-max draw."""
        return self.config.num_samples * (self.action_dim + 1)

    @torch.no_grad()
    def candidates(self, observations: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The N flow samples of each state and their scores: observations (B, obs_dim), noise (B, noise_dim) ->
        actions (B, N, A) in [-1, 1], scores (B, N). Candidate j of row i starts from noise[i, j A:(j + 1) A]."""
        b, n, a_dim = observations.shape[0], self.config.num_samples, self.action_dim
        obs = observations.repeat_interleave(n, dim=0)  # (B N, obs_dim): a state's candidates are adjacent rows
        start = noise[:, :n * a_dim].reshape(b * n, a_dim)
        actions = flow_act(self.velocity, obs, None, 1.0, self.generator, self.config.flow_steps, a_dim,
                           noise=start)

        def score(o: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            q = self.critic.q_values(o, a, use_target=True).min(0).values
            return q - self.critic.value(o) if self.config.select_on == "advantage" else q

        return actions.reshape(b, n, a_dim), row_stable(score, obs, actions).reshape(b, n)

    def select(self, scores: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
        """The kept candidate of each row: scores (B, N), normals (B, N) standard normal -> indices (B,) int64.
        'argmax': the first best score. 'softmax': argmax of score / temperature + Gumbel, the Gumbel variate
        -log(-log Phi(z)) of each normal z (log Phi in float64: finite for |z| < 38), which draws candidate i with
        probability softmax(score / temperature)_i."""
        if self.config.select == "argmax":
            return scores.argmax(dim=1)
        log_u = torch.special.log_ndtr(normals.double())
        gumbel = -torch.log((-log_u).clamp_min(torch.finfo(torch.float64).tiny))
        return (scores.double() / self.config.softmax_temperature + gumbel).argmax(dim=1)

    @torch.no_grad()
    def act(self, observations: torch.Tensor, goals: torch.Tensor | None = None,
            w: torch.Tensor | float = 1.0, noise: torch.Tensor | None = None) -> torch.Tensor:
        """observations (B, obs_dim) -> actions (B, A) in [-1, 1], one of N critic-ranked flow samples per state;
        goals and w are ignored. noise (B, noise_dim) (None: drawn from the agent's generator)."""
        b = observations.shape[0]
        if noise is None:
            noise = torch.randn((b, self.noise_dim), generator=self.generator, device=observations.device,
                                dtype=observations.dtype)
        noise = noise.to(observations.dtype)
        actions, scores = self.candidates(observations, noise)
        idx = self.select(scores, noise[:, self.config.num_samples * self.action_dim:])
        return actions[torch.arange(b, device=actions.device), idx]
