"""IDQL: N critic-ranked samples of a flow behaviour policy. N = 1 is flow BC; on a two-mode bandit argmax picks the
rewarded mode while the flow stays bimodal; softmax selection draws candidates by softmax(score / temperature)."""

from __future__ import annotations

import math

import pytest
import torch

from baselines.flow_bc import FlowBC, FlowBCConfig
from baselines.idql import IDQL, IDQLConfig
from cfgrl.methods import method_class
from tests.conftest import assert_resume_is_exact
from tests.synthetic import bandit_batch, transition_batch

CPU = torch.device("cpu")
OBS, ACT = 4, 2


def make(seed: int = 0, obs_dim: int = OBS, action_dim: int = ACT, **overrides) -> IDQL:
    config = IDQLConfig(**{"hidden": (32, 32), "value_hidden": (32, 32), "num_samples": 4, **overrides})
    return IDQL(config, obs_dim, action_dim, 0, CPU, seed)


def make_batch(n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    return transition_batch(n, torch.Generator().manual_seed(seed), OBS, ACT)


def test_registry_defaults_and_noise_layout():
    cls = method_class("idql")
    assert cls is IDQL and not cls.guided and not cls.goal_conditioned and cls.batch_kind == "transitions"
    config = IDQLConfig()
    assert (config.num_samples, config.select, config.select_on) == (64, "argmax", "q")
    assert make(num_samples=5).noise_dim == 5 * ACT + 5
    for bad in ({"select": "max"}, {"select_on": "v"}, {"num_samples": 0}, {"softmax_temperature": 0.0}):
        with pytest.raises(ValueError):
            make(**bad)


def test_with_one_sample_the_actions_are_flow_bcs():
    agent = make(num_samples=1)
    batch = make_batch()
    for _ in range(5):
        agent.update(batch)
    bc = FlowBC(FlowBCConfig(hidden=(32, 32)), OBS, ACT, 0, CPU, 3)
    bc.velocity.load_state_dict(agent.velocity.state_dict())
    noise = torch.randn(64, agent.noise_dim, generator=torch.Generator().manual_seed(4))
    expected = bc.act(batch["observations"], noise=noise[:, :ACT])
    assert torch.equal(agent.act(batch["observations"], noise=noise), expected)
    for select in ("argmax", "softmax"):  # one candidate: the selection rule cannot matter
        agent.config.select = select
        assert torch.equal(agent.act(batch["observations"], noise=noise), expected)


def test_the_flow_is_trained_as_cfgrl_at_w0_and_the_critic_as_iql():
    agent = make()
    batch = make_batch()
    agent.reseed(5)
    loss, info = agent.loss(batch, agent.generator)
    critic_loss, _, _ = agent.critic.losses(batch)
    agent.reseed(5)
    noise = torch.randn(64, ACT, generator=agent.generator)
    t = torch.rand(64, 1, generator=agent.generator)
    a_t = (1 - t) * noise + t * batch["actions"]
    flow = ((agent.velocity(batch["observations"], a_t, t) - (batch["actions"] - noise)) ** 2).mean()
    torch.testing.assert_close(info["actor/loss"], flow)
    torch.testing.assert_close(loss, critic_loss + flow)
    assert {"critic/loss", "value/loss", "actor/loss"} <= set(info)


@pytest.mark.parametrize("select", ["argmax", "softmax"])
def test_act_is_bounded_deterministic_given_noise_and_independent_of_the_batch(select):
    agent = make(select=select, num_samples=3)
    batch = make_batch(n=20)
    for _ in range(3):
        agent.update(batch)
    obs = batch["observations"]
    noise = torch.randn(20, agent.noise_dim, generator=torch.Generator().manual_seed(6))
    actions = agent.act(obs, noise=noise)
    assert actions.shape == (20, ACT) and bool((actions.abs() <= 1).all())
    rows = torch.cat([agent.act(obs[i:i + 1], noise=noise[i:i + 1]) for i in range(20)])
    assert torch.equal(rows, actions)  # a row's action depends on its own state and noise only
    cands, scores = agent.candidates(obs, noise)
    idx = agent.select(scores, noise[:, 3 * ACT:])
    assert torch.equal(actions, cands[torch.arange(20), idx])
    # the candidates are the flow's samples from their own noise blocks, scored by min of the target twin Q
    second = agent.candidates(obs, torch.cat([noise[:, ACT:2 * ACT]] * 3 + [noise[:, 3 * ACT:]], dim=1))
    assert torch.equal(second[0][:, 0], cands[:, 1])
    q = agent.critic.q_values(obs, cands[:, 1], use_target=True).min(0).values
    torch.testing.assert_close(scores[:, 1], q)


def test_argmax_picks_the_rewarded_mode_while_the_flow_is_bimodal():
    torch.manual_seed(0)
    agent = IDQL(IDQLConfig(hidden=(64, 64), value_hidden=(64, 64), lr=3e-3, num_samples=16), 2, 1, 0, CPU, 0)
    g = torch.Generator().manual_seed(1)
    for _ in range(400):
        agent.update(bandit_batch(256, g))
    obs = torch.randn(500, 2, generator=g)
    noise = torch.randn(500, agent.noise_dim, generator=g)
    flow = agent.candidates(obs, noise)[0][..., 0]  # (500, 16) behaviour samples
    assert 0.3 < float((flow > 0).float().mean()) < 0.7
    assert float(((flow - 0.7).abs() < 0.2).float().mean()) > 0.3  # both modes are there
    assert float(((flow + 0.7).abs() < 0.2).float().mean()) > 0.3
    chosen = agent.act(obs, noise=noise)[:, 0]
    assert float((chosen > 0).float().mean()) > 0.97
    # the other scoring gives the same choice: V(s) is shared by a state's candidates
    agent.config.select_on = "advantage"
    assert float((agent.act(obs, noise=noise)[:, 0] == chosen).float().mean()) > 0.99


def test_softmax_selection_draws_by_softmax_of_scores_over_temperature():
    agent = make(select="softmax", softmax_temperature=1.0)
    n = 40_000
    normals = torch.randn(n, 4, generator=torch.Generator().manual_seed(7))
    scores = torch.log(torch.tensor([1.0, 2.0, 3.0, 4.0])).expand(n, 4)  # softmax = 0.1, 0.2, 0.3, 0.4
    freq = torch.bincount(agent.select(scores, normals), minlength=4).double() / n
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64), atol=0.01, rtol=0)
    agent.config.softmax_temperature = 0.5  # p ∝ exp(2 score) = 1, 4, 9, 16
    freq = torch.bincount(agent.select(scores, normals), minlength=4).double() / n
    torch.testing.assert_close(freq, torch.tensor([1.0, 4.0, 9.0, 16.0], dtype=torch.float64) / 30, atol=0.01,
                               rtol=0)
    agent.config.softmax_temperature = 1e9  # huge temperature: close to uniform over the candidates
    scores = torch.tensor([0.0, 5.0, 10.0, 100.0]).expand(n, 4)
    freq = torch.bincount(agent.select(scores, normals), minlength=4).double() / n
    torch.testing.assert_close(freq, torch.full((4,), 0.25, dtype=torch.float64), atol=0.01, rtol=0)
    agent.config.softmax_temperature = 1e-9  # tiny: the argmax
    assert bool((agent.select(scores, normals) == 3).all())
    # the Gumbel variate of a normal through its CDF is finite far in both tails
    extreme = torch.tensor([[-30.0, 0.0, 30.0, 8.0]])
    assert agent.select(torch.zeros(1, 4), extreme).item() == 2
    assert math.isfinite(float(-torch.log(-torch.special.log_ndtr(torch.tensor(30.0, dtype=torch.float64)))))


def test_softmax_with_a_huge_temperature_acts_with_uniform_candidates():
    agent = make(select="softmax", softmax_temperature=1e9, num_samples=4)
    batch = make_batch(n=16)
    for _ in range(3):
        agent.update(batch)
    obs = batch["observations"][:1].expand(4000, OBS)
    noise = torch.randn(4000, agent.noise_dim, generator=torch.Generator().manual_seed(8))
    cands, scores = agent.candidates(obs, noise)
    assert float(scores[0].max() - scores[0].min()) > 1e-3  # the critic does prefer some candidates
    idx = agent.select(scores, noise[:, 4 * ACT:])
    freq = torch.bincount(idx, minlength=4).double() / 4000
    assert bool(((freq - 0.25).abs() < 0.03).all()), freq
    assert torch.equal(agent.act(obs, noise=noise), cands[torch.arange(4000), idx])


@pytest.mark.parametrize("select", ["argmax", "softmax"])
def test_update_lowers_losses_and_resume_is_exact(select):
    agent = make(select=select, lr=3e-3)
    batch = make_batch()
    rows = [agent.update(batch) for _ in range(100)]
    for key in ("actor/loss", "critic/loss"):
        first = sum(float(r[key]) for r in rows[:10])
        last = sum(float(r[key]) for r in rows[-10:])
        assert last < 0.8 * first, (key, first, last)
    assert all(k.split("/")[0] in ("critic", "value", "actor") for k in rows[0])
    assert all(v.ndim == 0 and not v.requires_grad for v in rows[0].values())
    assert_resume_is_exact(lambda seed: make(seed=seed, select=select), batch)
