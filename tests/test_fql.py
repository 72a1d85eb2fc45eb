"""FQL: the loss is the reference's formula; with a huge alpha the one-step policy reproduces the BC flow's actions
from the same noise; with a small alpha on a two-mode bandit it moves to the rewarded mode; exact resumption."""

from __future__ import annotations

import pytest
import torch

from baselines.fql import FQL, FQLConfig
from cfgrl.core.flow import flow_matching_loss
from cfgrl.methods import method_class
from tests.conftest import assert_resume_is_exact
from tests.synthetic import bandit_batch, transition_batch

CPU = torch.device("cpu")
OBS, ACT = 3, 2


def make(seed: int = 0, obs_dim: int = OBS, action_dim: int = ACT, **overrides) -> FQL:
    config = FQLConfig(**{"hidden": (32, 32), "value_hidden": (32, 32), **overrides})
    return FQL(config, obs_dim, action_dim, 0, CPU, seed)


def toy(n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Unimodal state-dependent actions tanh(0.8 s[:2] + 0.3 eps) (a smooth noise-to-action map), reward a_0."""
    return transition_batch(n, g, OBS, ACT, state_gain=0.8)


def test_registry_and_defaults():
    cls = method_class("fql")
    assert cls is FQL and not cls.guided and not cls.goal_conditioned and cls.batch_kind == "transitions"
    config = FQLConfig()
    assert (config.alpha, config.flow_steps, config.q_agg, config.normalize_q_loss) == (10.0, 10, "mean", False)
    assert make().noise_dim == ACT
    with pytest.raises(ValueError, match="q_agg"):
        make(q_agg="max")


@pytest.mark.parametrize(("q_agg", "normalize"), [("mean", False), ("min", True)])
def test_loss_is_the_reference_formula(q_agg, normalize):
    agent = make(q_agg=q_agg, normalize_q_loss=normalize, alpha=3.0)
    batch = toy(32, torch.Generator().manual_seed(0))
    for _ in range(3):
        agent.update(batch)
    agent.reseed(5)
    loss, info = agent.loss(batch, agent.generator)
    obs, actions, next_obs = batch["observations"], batch["actions"], batch["next_observations"]

    agent.reseed(5)  # the same draws, in the documented order: z', the flow pair (noise, t), z
    z_next = torch.randn(32, ACT, generator=agent.generator)
    noise = torch.randn(32, ACT, generator=agent.generator)
    t = torch.rand(32, 1, generator=agent.generator)
    z = torch.randn(32, ACT, generator=agent.generator)
    with torch.no_grad():
        mu_next = agent.one_step(torch.cat([next_obs, z_next], -1)).clamp(-1, 1)
        heads = torch.stack([net(torch.cat([next_obs, mu_next], -1))[:, 0] for net in agent.critic.target_q])
        y = batch["rewards"] + 0.99 * batch["masks"] * (heads.min(0).values if q_agg == "min" else heads.mean(0))
        a_t = (1 - t) * noise + t * actions
        bc = flow_matching_loss(agent.bc_flow(obs, a_t, t), actions - noise).mean()
        a = z  # the BC flow from z: 10 Euler steps, clipped
        for i in range(10):
            a = a + agent.bc_flow(obs, a, torch.full((32, 1), i / 10)) / 10
        mu = agent.one_step(torch.cat([obs, z], -1))
        distill = ((mu - a.clamp(-1, 1)) ** 2).mean()
        q = torch.stack([net(torch.cat([obs, mu.clamp(-1, 1)], -1))[:, 0] for net in agent.critic.q]).mean(0)
        q_loss = -q.mean() / (q.abs().mean() if normalize else 1.0)
    qs = torch.stack([net(torch.cat([obs, actions], -1))[:, 0] for net in agent.critic.q])
    critic = ((qs - y) ** 2).mean()
    torch.testing.assert_close(info["critic/loss"], critic)
    # the critic's gradient of the whole loss is that of its own term (the actor's Q term holds it fixed)
    agent.zero_grad()
    loss.backward()
    whole = [p.grad.clone() for p in agent.critic.q.parameters()]
    agent.zero_grad()
    critic.backward()
    for a, b in zip(whole, [p.grad for p in agent.critic.q.parameters()], strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(info["actor/bc_flow_loss"], bc)
    torch.testing.assert_close(info["actor/distill_loss"], distill)
    torch.testing.assert_close(info["actor/q_loss"], q_loss)
    torch.testing.assert_close(loss, critic + bc + 3.0 * distill + q_loss)
    assert all(k.split("/")[0] in ("critic", "actor") for k in info)
    assert {"critic/loss", "actor/loss", "actor/bc_flow_loss", "actor/distill_loss", "actor/q_loss"} <= set(info)


def test_gradients_go_where_the_reference_sends_them():
    """The Q term moves only the one-step policy (the critic is held fixed in it); the distillation target sends
    nothing into the BC flow; the critic loss reaches only the critic."""
    agent = make()
    batch = toy(32, torch.Generator().manual_seed(1))

    def grads(term: str) -> dict[str, bool]:
        agent.zero_grad()
        obs, z = batch["observations"], torch.randn(32, ACT, generator=torch.Generator().manual_seed(2))
        mu = agent.policy(obs, z)
        if term == "q":  # the actor's Q term as `loss` computes it
            out = -agent.critic.frozen_q_values(obs, mu.clamp(-1, 1)).mean()
        else:  # the distillation term
            out = (mu - agent.flow_actions(obs, z)).pow(2).mean()
        out.backward()
        return {name: any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters())
                for name, module in (("critic", agent.critic), ("bc_flow", agent.bc_flow),
                                     ("one_step", agent.one_step))}

    assert grads("q") == {"critic": False, "bc_flow": False, "one_step": True}
    assert grads("distill") == {"critic": False, "bc_flow": False, "one_step": True}
    agent.zero_grad()
    qs = agent.critic.q_values(batch["observations"], batch["actions"])
    qs.pow(2).mean().backward()
    assert all(p.grad is None for p in agent.one_step.parameters())


def test_with_a_huge_alpha_the_one_step_policy_is_the_bc_flow():
    torch.manual_seed(0)
    agent = make(hidden=(64, 64), value_hidden=(64, 64), lr=3e-3, alpha=1e4)
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        agent.update(toy(256, g))
    obs = torch.randn(1000, OBS, generator=g)
    z, other = torch.randn(1000, ACT, generator=g), torch.randn(1000, ACT, generator=g)
    flow = agent.flow_actions(obs, z)
    gap = float((agent.act(obs, noise=z) - flow).abs().mean())
    spread = float((agent.flow_actions(obs, other) - flow).abs().mean())  # how much the noise moves the flow
    assert gap < 0.08 and gap < 0.4 * spread, (gap, spread)


def test_on_a_two_mode_bandit_the_one_step_policy_moves_to_the_rewarded_mode():
    torch.manual_seed(0)
    agent = FQL(FQLConfig(hidden=(64, 64), value_hidden=(64, 64), lr=3e-3, alpha=0.1), 2, 1, 0, CPU, 0)
    g = torch.Generator().manual_seed(1)
    for _ in range(400):
        agent.update(bandit_batch(256, g))
    obs, z = torch.randn(1000, 2, generator=g), torch.randn(1000, 1, generator=g)
    flow = agent.flow_actions(obs, z)[:, 0]  # the BC flow stays bimodal
    assert float(((flow + 0.7).abs() < 0.2).float().mean()) > 0.3
    assert float(((flow - 0.7).abs() < 0.2).float().mean()) > 0.3
    actions = agent.act(obs, noise=z)[:, 0]
    assert float((actions > 0.3).float().mean()) > 0.95, actions.mean()


def test_act_is_bounded_row_independent_and_resume_is_exact():
    agent = make(lr=3e-3)
    batch = toy(64, torch.Generator().manual_seed(3))
    rows = [agent.update(batch) for _ in range(100)]
    first, last = sum(float(r["critic/loss"]) for r in rows[:10]), sum(float(r["critic/loss"]) for r in rows[-10:])
    assert last < 0.5 * first
    with torch.no_grad():
        agent.one_step[-1].bias.add_(4.0)  # push mu out of the action box
    noise = torch.randn(20, ACT, generator=torch.Generator().manual_seed(4))
    actions = agent.act(batch["observations"][:20], noise=noise)
    assert bool((actions.abs() <= 1).all()) and bool((actions == 1).any())
    single = torch.cat([agent.act(batch["observations"][i:i + 1], noise=noise[i:i + 1]) for i in range(20)])
    assert torch.equal(single, actions)
    assert_resume_is_exact(lambda seed: make(seed=seed), batch)
