"""The IQL critic: its fixed point on a chain MDP with a known answer, its losses, and the Polyak target."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from cfgrl.cfgrl import CFGRL, CFGRLConfig
from cfgrl.core.iql import IQLCritic, expectile_loss

N_STATES, GAMMA = 5, 0.9

def chain_transitions() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic chain 0 .. N-1: action -1 / +1 moves left / right (clipped at the ends), reward 1 for
    landing on the last state, never terminal. The dataset holds every (s, a) once: a uniform behaviour policy."""
    s = np.repeat(np.arange(N_STATES), 2)
    a = np.tile([-1, 1], N_STATES)
    s_next = np.clip(s + a, 0, N_STATES - 1)
    return s, a, (s_next == N_STATES - 1).astype(np.float64), s_next


def expectile_fixed_point(expectile: float) -> tuple[np.ndarray, np.ndarray]:
    """(V (N,), Q (N, 2)) solving Q(s, a) = r + gamma V(s'), V(s) = the `expectile`-expectile of Q(s, .) under the
    uniform behaviour policy. With two equally likely actions the expectile condition
    expectile (q_hi - v) = (1 - expectile) (v - q_lo) gives v = expectile q_hi + (1 - expectile) q_lo
    (expectile 0.5: the behaviour value; -> 1: the optimal value). Iterated to convergence (a gamma-contraction)."""
    s, a, r, s_next = chain_transitions()
    v = np.zeros(N_STATES)
    for _ in range(1000):
        q = (r + GAMMA * v[s_next]).reshape(N_STATES, 2)
        v = expectile * q.max(1) + (1 - expectile) * q.min(1)
    return v, q


def chain_batch() -> dict[str, torch.Tensor]:
    s, a, r, s_next = chain_transitions()
    eye = torch.eye(N_STATES)
    return {"observations": eye[s], "actions": torch.tensor(a, dtype=torch.float32)[:, None],
            "rewards": torch.tensor(r, dtype=torch.float32), "masks": torch.ones(len(s)),
            "next_observations": eye[s_next]}


def test_expectile_fixed_point_reference_is_right():
    # expectile 0.5 is the behaviour value: V = (I - gamma P_beta)^-1 r_beta
    s, a, r, s_next = chain_transitions()
    p_beta, r_beta = np.zeros((N_STATES, N_STATES)), np.zeros(N_STATES)
    for si, ri, sn in zip(s, r, s_next, strict=True):
        p_beta[si, sn] += 0.5
        r_beta[si] += 0.5 * ri
    v_behaviour = np.linalg.solve(np.eye(N_STATES) - GAMMA * p_beta, r_beta)
    np.testing.assert_allclose(expectile_fixed_point(0.5)[0], v_behaviour, atol=1e-9)
    # expectile -> 1 is the optimal value: always move right, V*(s) = gamma^(N-2-s) / (1 - gamma) below the end
    v_star = np.array([GAMMA ** max(N_STATES - 2 - i, 0) / (1 - GAMMA) for i in range(N_STATES)])
    np.testing.assert_allclose(expectile_fixed_point(1.0)[0], v_star, atol=1e-9)
    assert np.all(np.diff([expectile_fixed_point(e)[0] for e in (0.5, 0.7, 0.9, 0.99)], axis=0) > 0)


@pytest.mark.parametrize("expectile", [0.5, 0.9])
def test_learned_values_reach_the_expectile_fixed_point(expectile):
    torch.manual_seed(0)
    batch = chain_batch()
    critic = IQLCritic(N_STATES, 1, (64, 64), discount=GAMMA, tau=0.05, expectile=expectile)
    opt = torch.optim.Adam([p for p in critic.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(1500):
        loss = critic.losses(batch)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        critic.update_target()
    v_true, q_true = expectile_fixed_point(expectile)
    with torch.no_grad():
        v = critic.value(torch.eye(N_STATES)).numpy()
        q = critic.q_values(batch["observations"], batch["actions"]).numpy()
    # values range 1 .. 9; 1500 full-batch steps land within ~0.01 (tolerance 0.05)
    np.testing.assert_allclose(v, v_true, atol=0.05)
    np.testing.assert_allclose(q[0], q_true.reshape(-1), atol=0.05)
    np.testing.assert_allclose(q[1], q_true.reshape(-1), atol=0.05)
    adv = critic.advantage(batch["observations"], batch["actions"]).numpy()
    np.testing.assert_allclose(adv, q_true.reshape(-1) - np.repeat(v_true, 2), atol=0.1)


def test_losses_use_the_target_min_for_v_and_the_online_v_for_the_q_target():
    torch.manual_seed(1)
    critic = IQLCritic(3, 2, (16, 16), discount=0.8, tau=0.1, expectile=0.7)
    with torch.no_grad():  # make the two target heads and the online heads all differ
        for p in critic.target_q[0].parameters():
            p.add_(0.3 * torch.randn_like(p))
    g = torch.Generator().manual_seed(2)
    batch = {"observations": torch.randn(32, 3, generator=g), "actions": torch.randn(32, 2, generator=g),
             "rewards": torch.randn(32, generator=g), "masks": (torch.rand(32, generator=g) < 0.7).float(),
             "next_observations": torch.randn(32, 3, generator=g)}
    _, info, adv_online = critic.losses(batch, advantage_from="online")
    _, _, adv_target = critic.losses(batch, advantage_from="target")
    with torch.no_grad():
        x = torch.cat([batch["observations"], batch["actions"]], -1)
        q_online = torch.stack([net(x)[:, 0] for net in critic.q])
        q_tgt = torch.stack([net(x)[:, 0] for net in critic.target_q]).min(0).values
        v = critic.v(batch["observations"])[:, 0]
        y = batch["rewards"] + 0.8 * batch["masks"] * critic.v(batch["next_observations"])[:, 0]
        diff = q_tgt - v
        value_loss = torch.where(diff >= 0, 0.7, 0.3) * diff**2
    assert not torch.allclose(q_tgt, q_online.min(0).values)
    torch.testing.assert_close(info["value/loss"], value_loss.mean())
    torch.testing.assert_close(info["critic/loss"], ((q_online - y) ** 2).sum(0).mean())
    torch.testing.assert_close(adv_online, q_online.min(0).values - v)
    torch.testing.assert_close(adv_target, q_tgt - v)
    torch.testing.assert_close(critic.advantage(batch["observations"], batch["actions"], use_target=True), adv_target)
    torch.testing.assert_close(expectile_loss(torch.tensor([2.0, -2.0]), 0.9), torch.tensor([3.6, 0.4]))


def test_target_moves_by_polyak_averaging_exactly():
    torch.manual_seed(3)
    critic = IQLCritic(3, 2, (16,), tau=0.1)
    for a, b in zip(critic.q.parameters(), critic.target_q.parameters(), strict=True):
        assert torch.equal(a, b) and not b.requires_grad  # starts as a copy, never trained
    with torch.no_grad():
        for p in critic.q.parameters():
            p.add_(torch.randn_like(p))
    online = [p.detach().clone() for p in critic.q.parameters()]
    before = [p.detach().clone() for p in critic.target_q.parameters()]
    critic.update_target()
    for o, b, after, now in zip(online, before, critic.target_q.parameters(), critic.q.parameters(), strict=True):
        torch.testing.assert_close(after, 0.9 * b + 0.1 * o, rtol=0, atol=1e-6)
        assert torch.equal(now, o)  # the online twin is untouched


def test_agent_update_polyaks_toward_the_online_critic_before_its_step():
    # both reference codes: target <- tau * online + (1 - tau) * target with the online parameters of the step
    # that produced the losses (rlbase `target_update(agent.critic, ...)`, ogbench `self.network.params`)
    torch.manual_seed(4)
    agent = CFGRL(CFGRLConfig(hidden=(16,), value_hidden=(16,), tau=0.25), 3, 2, 0, torch.device("cpu"), seed=0)
    g = torch.Generator().manual_seed(5)
    batch = {"observations": torch.randn(16, 3, generator=g), "actions": torch.rand(16, 2, generator=g) * 2 - 1,
             "rewards": torch.randn(16, generator=g), "masks": torch.ones(16),
             "next_observations": torch.randn(16, 3, generator=g)}
    for _ in range(2):
        before = copy.deepcopy(agent.critic.target_q)
        online_before = copy.deepcopy(agent.critic.q)
        agent.update(batch)
        for b, after, online, now in zip(before.parameters(), agent.critic.target_q.parameters(),
                                         online_before.parameters(), agent.critic.q.parameters(), strict=True):
            torch.testing.assert_close(after, 0.75 * b + 0.25 * online, rtol=0, atol=1e-6)
            assert not torch.equal(now, online)  # the step moved the online critic, not the target's source
    # the first step starts from target == online, so only the second one moves the target
    assert not torch.equal(before[0][0].weight, agent.critic.target_q[0][0].weight)
    # the target twin Q is not optimised: no optimiser state, no gradient
    tracked = {id(p) for group in agent.optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in tracked for p in agent.critic.target_q.parameters())
