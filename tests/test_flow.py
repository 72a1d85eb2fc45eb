import torch

from cfgrl.core.flow import flow_matching_loss, flow_pair, guide, guided_euler_sample
from cfgrl.gc_cfgrl import GCCFGRL, GCCFGRLConfig


def test_flow_pair_interpolates_and_targets_velocity():
    g = torch.Generator().manual_seed(0)
    actions = torch.rand(512, 3) * 2 - 1
    a_t, t, target = flow_pair(actions, g)
    noise = actions - target  # target = a1 - a0
    assert t.shape == (512, 1) and bool(((t >= 0) & (t <= 1)).all())
    torch.testing.assert_close(a_t, (1 - t) * noise + t * actions)
    # the noise is standard normal, independent of the actions
    assert abs(noise.mean().item()) < 0.1 and abs(noise.std().item() - 1) < 0.1
    # following the target velocity from a_t for the remaining time lands on the data action
    torch.testing.assert_close(a_t + (1 - t) * target, actions, atol=1e-5, rtol=0)


def test_flow_matching_loss_is_mean_squared_error_per_sample():
    pred, target = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [3.0, 1.0]])
    torch.testing.assert_close(flow_matching_loss(pred, target), torch.tensor([2.5, 5.0]))


def test_guide_is_exact_at_zero_and_one():
    g = torch.Generator().manual_seed(1)
    v_cond, v_null = torch.randn(64, 4, generator=g) * 7, torch.randn(64, 4, generator=g) * 7
    assert torch.equal(guide(v_cond, v_null, torch.zeros(64, 1)), v_null)
    assert torch.equal(guide(v_cond, v_null, torch.ones(64, 1)), v_cond)
    torch.testing.assert_close(guide(v_cond, v_null, torch.full((64, 1), 3.0)), v_null + 3 * (v_cond - v_null))


def test_guided_sampler_reduces_to_each_branch():
    # two different velocity fields; the sampler at w = 0 must follow the null one, at w = 1 the conditional
    def velocity(a, t):
        return -a + 1.0 + t, 0.5 * a - 2.0

    noise = torch.randn(32, 2, generator=torch.Generator().manual_seed(2))

    def euler(field, steps=8):
        a = noise
        for i in range(steps):
            a = a + field(a, torch.full((32, 1), i / steps)) / steps
        return a.clamp(-1, 1)

    out0 = guided_euler_sample(velocity, noise, torch.zeros(32), 8)
    out1 = guided_euler_sample(velocity, noise, torch.ones(32), 8)
    assert torch.equal(out0, euler(lambda a, t: velocity(a, t)[1]))
    assert torch.equal(out1, euler(lambda a, t: velocity(a, t)[0]))
    assert not torch.equal(out0, out1)


def test_gc_cfgrl_act_matches_branches_exactly():
    torch.manual_seed(0)
    agent = GCCFGRL(GCCFGRLConfig(hidden=(32, 32), flow_steps=4), 2, 2, 2, torch.device("cpu"), seed=0)
    with torch.no_grad():
        agent.null_goal.copy_(torch.tensor([0.3, -0.7]))
    obs, goals = torch.randn(16, 2), torch.randn(16, 2)

    def sample_with_goal(goal_rows):
        agent.reseed(5)
        a = torch.randn((16, 2), generator=agent.generator)
        for i in range(4):
            t = torch.full((16, 1), i / 4)
            a = a + agent.velocity(torch.cat([obs, goal_rows], dim=-1), a, t) / 4
        return a.clamp(-1, 1)

    agent.reseed(5)
    at_w0 = agent.act(obs, goals, 0.0)
    agent.reseed(5)
    at_w1 = agent.act(obs, goals, 1.0)
    assert torch.equal(at_w0, sample_with_goal(agent.null_goal.detach().expand(16, 2)))
    assert torch.equal(at_w1, sample_with_goal(goals))
    # mixed w in one batch: rows with w = 1 agree with the conditional branch (one stacked forward pass)
    agent.reseed(5)
    mixed = agent.act(obs, goals, torch.tensor([1.0, 3.0] * 8))
    torch.testing.assert_close(mixed[::2], at_w1[::2], atol=1e-5, rtol=0)
    assert not torch.allclose(mixed[1::2], at_w1[1::2])
