"""AWR: clipped exponential weights, T = 0 is BC, positive T pulls the policy toward high-advantage actions."""

from __future__ import annotations

import math

import pytest
import torch

from baselines.awr import AWR, AWRConfig
from baselines.bc import BC, BCConfig

CPU = torch.device("cpu")




def make_batch(n: int = 64, obs_dim: int = 4, action_dim: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"observations": torch.randn(n, obs_dim, generator=g),
            "actions": torch.rand(n, action_dim, generator=g) * 2 - 1,
            "rewards": torch.randn(n, generator=g), "masks": torch.ones(n),
            "next_observations": torch.randn(n, obs_dim, generator=g)}


def test_weights_are_exp_advantage_clipped_at_100():
    agent = AWR(AWRConfig(hidden=(8,), value_hidden=(8,), temperature=3.0), 4, 2, 0, CPU, 0)
    adv = torch.tensor([-10.0, -0.5, 0.0, 0.5, 1.5, 1.6, 50.0])
    weights = agent.weights(adv)
    expected = torch.exp(3.0 * adv).clamp(max=100.0)
    torch.testing.assert_close(weights, expected)
    assert weights[-1] == 100.0 and weights[-2] == 100.0  # exp(4.8) = 121.5 is clipped
    assert weights[-3] == pytest.approx(math.exp(4.5))  # exp(4.5) = 90.0 is not
    assert weights.max() == 100.0
    # the clip is a config field; defaults follow the std mode (OGBench: fixed std, T = 10; ExORL: learned, T = 3)
    assert AWR(AWRConfig(hidden=(8,), value_hidden=(8,)), 4, 2, 0, CPU, 0).temperature == 10.0
    learned = AWR(AWRConfig(hidden=(8,), value_hidden=(8,), std_mode="learned"), 4, 2, 0, CPU, 0)
    assert learned.temperature == 3.0 and learned.actor.mean_clip == 5.0 and learned.advantage_from == "target"


@pytest.mark.parametrize("std_mode", ["fixed", "learned"])
def test_zero_temperature_is_exactly_gaussian_bc(std_mode):
    batch = make_batch()
    torch.manual_seed(0)
    awr = AWR(AWRConfig(hidden=(32, 32), value_hidden=(8,), temperature=0.0, std_mode=std_mode), 4, 2, 0, CPU, 0)
    bc = BC(BCConfig(hidden=(32, 32), std_mode=std_mode), 4, 2, 0, CPU, 0)
    with torch.no_grad():
        awr.actor.log_std.fill_(-0.7)  # a non-trivial std (for 'fixed' the buffer, which BC copies below)
    bc.actor.load_state_dict(awr.actor.state_dict())
    adv = torch.randn(64, generator=torch.Generator().manual_seed(1)) * 5  # any advantages: all weights are 1
    awr_loss, _ = awr.actor_loss(batch["observations"], batch["actions"], adv)
    bc_loss, _ = bc.loss(batch, bc.generator)
    assert torch.equal(awr_loss, bc_loss)
    # ... and it is the Gaussian negative log-likelihood
    mean = awr.actor.mean_net(batch["observations"])
    if std_mode == "learned":  # the ExORL actor clips its mean to [-5, 5]
        mean = mean.clamp(-5.0, 5.0)
    dist = torch.distributions.Normal(mean, torch.full_like(mean, math.exp(-0.7)))
    torch.testing.assert_close(awr_loss, -dist.log_prob(batch["actions"]).sum(-1).mean())


@pytest.mark.parametrize("std_mode", ["fixed", "learned"])
def test_positive_temperature_moves_the_mean_to_the_weighted_average(std_mode):
    # one state; actions spread over [-1, 1]; advantage = the action itself. The weighted Gaussian likelihood is
    # maximised by the weighted mean of the actions, sum(w a) / sum(w), w = exp(T a); T = 0 gives the plain mean.
    n = 256
    g = torch.Generator().manual_seed(2)
    actions = torch.rand(n, 1, generator=g) * 2 - 1
    obs = torch.zeros(n, 1)
    adv = actions[:, 0]
    means = {}
    for temperature in (0.0, 1.0, 3.0):
        torch.manual_seed(0)
        agent = AWR(AWRConfig(hidden=(16,), value_hidden=(8,), temperature=temperature, lr=1e-2, std_mode=std_mode),
                    1, 1, 0, CPU, 0)
        opt = torch.optim.Adam(agent.actor.parameters(), lr=1e-2)
        for _ in range(300):
            loss, _ = agent.actor_loss(obs, actions, adv)
            opt.zero_grad()
            loss.backward()
            opt.step()
        means[temperature] = agent.act(torch.zeros(1, 1))[0, 0].item()
        w = torch.exp(temperature * adv)
        assert means[temperature] == pytest.approx(float((w * adv).sum() / w.sum()), abs=0.02)
    assert means[0.0] < means[1.0] - 0.2 and means[1.0] < means[3.0] - 0.2


def test_per_sample_grad_norms_match_a_loop():
    torch.manual_seed(0)
    agent = AWR(AWRConfig(hidden=(16, 16), value_hidden=(8,), std_mode="learned"), 4, 2, 0, CPU, 0)
    batch = make_batch(n=8)
    norms = agent.per_sample_actor_grad_norms(batch)
    adv = agent.critic.advantage(batch["observations"], batch["actions"], use_target=True)
    weights = agent.weights(adv)
    for i in range(8):
        agent.zero_grad()
        loss = -(weights[i] * agent.actor.log_prob(batch["observations"][i:i + 1], batch["actions"][i:i + 1])).sum()
        loss.backward()
        norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in agent.actor.parameters()))
        torch.testing.assert_close(norms[i], norm, rtol=1e-4, atol=1e-6)
    assert norms.shape == (8,) and norms.std() > 0


def test_update_trains_critic_and_actor_and_acts_with_the_clipped_mean():
    torch.manual_seed(0)
    agent = AWR(AWRConfig(hidden=(16,), value_hidden=(16,)), 4, 2, 0, CPU, 0)
    batch = make_batch()
    info = agent.update(batch)
    assert {"critic/loss", "value/loss", "actor/loss", "actor/weight_mean"} <= set(info)
    assert all(v.ndim == 0 and not v.requires_grad for v in info.values())
    with torch.no_grad():
        agent.actor.mean_net[-1].bias.fill_(3.0)  # push the mean outside the action box
    obs = batch["observations"]
    assert torch.equal(agent.act(obs), agent.actor(obs)[0].clamp(-1, 1))
    assert torch.equal(agent.act(obs), torch.ones(64, 2))
