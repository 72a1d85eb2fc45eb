"""The offline-RL and BC-family methods through the Agent interface: registry, learning on a fixed batch, act,
exact resumption, and CFGRL's branches and loss."""

from __future__ import annotations

import pytest
import torch

from cfgrl.cfgrl import CFGRL, NULL, POSITIVE, CFGRLConfig
from cfgrl.core.flow import flow_matching_loss, flow_pair, row_stable
from cfgrl.core.gaussian import GaussianPolicy
from cfgrl.methods import method_class
from tests.conftest import assert_resume_is_exact
from tests.synthetic import assert_grad_norms_match_a_loop

CPU = torch.device("cpu")
OBS, ACT, GOAL = 5, 3, 2

# (registry name, config overrides, the metric that must fall; AWR's weighted loss moves with its weights, so
# for AWR the negative log-likelihood of the batch actions, which the weighted fit also lowers)
CASES = [
    ("cfgrl", {}, "actor/loss"),
    ("cfgrl", {"label_scheme": "filtered", "time_grid": 8, "time_embedding": "sinusoidal", "flow_steps": 8},
     "actor/loss"),
    ("awr", {}, "-actor/log_prob"),
    ("awr", {"std_mode": "learned"}, "-actor/log_prob"),
    ("bc", {}, "actor/loss"),
    ("bc", {"std_mode": "learned"}, "actor/loss"),
    ("flow_bc", {}, "actor/flow_loss"),
    ("flow_gcbc", {}, "actor/flow_loss"),
]
IDS = [f"{name}-{'-'.join(f'{v}' for v in over.values()) or 'default'}" for name, over, _ in CASES]




def make_agent(name: str, overrides: dict, seed: int = 0, **extra):
    cls = method_class(name)
    sizes = {"hidden": (32, 32)}
    if "value_hidden" in cls.Config.__dataclass_fields__:
        sizes["value_hidden"] = (32, 32)
    torch.manual_seed(seed)
    return cls(cls.Config(**{**sizes, **overrides, **extra}), OBS, ACT, GOAL if cls.batch_kind == "goals" else 0,
               CPU, seed)


def make_batch(n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, OBS, generator=g)
    actions = torch.tanh(obs[:, :ACT] + 0.3 * torch.randn(n, ACT, generator=g))  # learnable: actions depend on s
    return {"observations": obs, "actions": actions, "rewards": actions[:, 0], "masks": torch.ones(n),
            "next_observations": torch.randn(n, OBS, generator=g), "goals": torch.randn(n, GOAL, generator=g)}


def test_registry_and_class_attributes():
    expected = {"cfgrl": (True, False, "transitions"), "awr": (False, False, "transitions"),
                "bc": (False, False, "any"), "flow_bc": (False, False, "any"),
                "flow_gcbc": (False, True, "goals"), "gcbc": (False, True, "goals"), "gc_cfgrl": (True, True, "goals")}
    for name, (guided, goal_conditioned, batch_kind) in expected.items():
        cls = method_class(name)
        assert (cls.guided, cls.goal_conditioned, cls.batch_kind) == (guided, goal_conditioned, batch_kind), name
        cls.Config()  # every field has a default


@pytest.mark.parametrize(("name", "overrides", "key"), CASES, ids=IDS)
def test_update_lowers_the_loss_on_a_fixed_batch(name, overrides, key):
    agent = make_agent(name, overrides, lr=3e-3)
    batch = make_batch()
    losses, critic_losses = [], []
    for _ in range(100):
        info = agent.update(batch)
        assert all(isinstance(v, torch.Tensor) and v.ndim == 0 and not v.requires_grad for v in info.values())
        assert all(k.split("/")[0] in ("critic", "value", "actor") for k in info)
        losses.append(-float(info[key[1:]]) if key.startswith("-") else float(info[key]))
        critic_losses.append(info.get("critic/loss", torch.zeros(())))
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < first - 0.05 * abs(first), (first, last)
    if "critic/loss" in info:
        critic = [float(row) for row in critic_losses]
        assert sum(critic[-10:]) < 0.5 * sum(critic[:10]), critic
    assert agent.step == 100


def output_layer(agent) -> torch.nn.Linear:
    """The last Linear of the agent's policy network."""
    if hasattr(agent, "velocity"):
        return agent.velocity.net[-1]
    if isinstance(agent.actor, GaussianPolicy):
        return agent.actor.mean_net[-1]
    return agent.actor.velocity.net[-1]


@pytest.mark.parametrize(("name", "overrides", "key"), CASES, ids=IDS)
def test_act_returns_bounded_actions(name, overrides, key):
    agent = make_agent(name, overrides)
    batch = make_batch(n=16)
    goals = batch["goals"] if agent.goal_conditioned else None
    for push in (0.0, 4.0):
        with torch.no_grad():  # push = 4: the raw policy output leaves the action box
            output_layer(agent).bias.add_(push)
        for w in (0.0, 1.0, 3.0, torch.linspace(0, 5, 16)):
            a = agent.act(batch["observations"], goals, w)
            assert a.shape == (16, ACT) and a.dtype == torch.float32 and not a.requires_grad
            assert bool((a.abs() <= 1.0).all())
            if push:
                assert bool((a == 1.0).any())


@pytest.mark.parametrize(("name", "overrides", "key"), CASES, ids=IDS)
def test_full_state_round_trip_reproduces_the_next_update_bit_for_bit(name, overrides, key):
    assert_resume_is_exact(lambda seed: make_agent(name, overrides, seed=seed), make_batch())

def euler_with_label(agent: CFGRL, obs: torch.Tensor, label: int, seed: int) -> torch.Tensor:
    """Plain Euler integration of the actor's velocity for one label, with the noise `act` draws after reseed (each
    network call through row_stable, as `act` computes a row)."""
    b, steps = obs.shape[0], agent.config.flow_steps
    agent.reseed(seed)
    a = torch.randn((b, agent.action_dim), generator=agent.generator)
    labels = torch.full((b,), label, dtype=torch.long)
    with torch.no_grad():
        for i in range(steps):
            a = a + row_stable(agent.actor, obs, labels, a, torch.full((b, 1), i / steps)) / steps
    return a.clamp(-1, 1)


@pytest.mark.parametrize("scheme", ["dropout", "filtered"])
def test_cfgrl_act_is_the_null_branch_at_w0_and_the_positive_branch_at_w1(scheme):
    agent = make_agent("cfgrl", {"label_scheme": scheme, "flow_steps": 4})
    batch = make_batch(n=32)
    for _ in range(5):  # make the label embeddings differ from their initialisation
        agent.update(batch)
    obs = batch["observations"]
    agent.reseed(11)
    at_w0 = agent.act(obs, None, 0.0)
    agent.reseed(11)
    at_w1 = agent.act(obs, None, torch.ones(32))
    assert torch.equal(at_w0, euler_with_label(agent, obs, NULL, 11))
    assert torch.equal(at_w1, euler_with_label(agent, obs, POSITIVE, 11))
    assert not torch.equal(at_w0, at_w1)
    # mixed weights in one batch (one stacked 2B forward pass): w = 0 / 1 rows agree with the branches
    agent.reseed(11)
    mixed = agent.act(obs, None, torch.tensor([0.0, 1.0, 3.0, 0.5] * 8))
    torch.testing.assert_close(mixed[0::4], at_w0[0::4], atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed[1::4], at_w1[1::4], atol=1e-5, rtol=0)
    assert not torch.allclose(mixed[2::4], at_w1[2::4])


@pytest.mark.parametrize("scheme", ["dropout", "filtered"])
def test_cfgrl_actor_loss_is_the_papers_formula(scheme):
    agent = make_agent("cfgrl", {"label_scheme": scheme, "null_prob": 0.3})
    batch = make_batch(n=256)
    adv = torch.randn(256, generator=torch.Generator().manual_seed(3))
    adv[:8] = 0.0  # the boundary: positive for 'dropout' (A >= 0), not for 'filtered' (A > 0)
    agent.reseed(5)
    loss = agent.actor_loss(batch, adv, agent.generator)

    agent.reseed(5)  # the same draws, in the order documented by `_actor_terms`
    a_t, t, target = flow_pair(batch["actions"], agent.generator, agent.config.time_grid)
    obs = batch["observations"]

    def v(label):
        return agent.actor(obs, label, a_t, t)

    if scheme == "dropout":
        drop = torch.rand(256, generator=agent.generator) < 0.3
        labels = torch.where(drop, NULL, torch.where(adv >= 0, POSITIVE, 1))
        assert 0.2 < drop.float().mean() < 0.4
        expected = ((v(labels) - target) ** 2).mean(-1).mean()
    else:
        pos = torch.full((256,), POSITIVE)
        expected = ((adv > 0).float() * flow_matching_loss(v(pos), target)
                    + 0.1 * flow_matching_loss(v(torch.full((256,), NULL)), target)).mean()
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("scheme", ["dropout", "filtered"])
def test_cfgrl_per_sample_grad_norms_match_a_loop(scheme):
    agent = make_agent("cfgrl", {"label_scheme": scheme})
    batch = make_batch(n=6)
    assert_grad_norms_match_a_loop(agent, batch, use_target=scheme == "filtered")


def test_cfgrl_rejects_unknown_label_scheme():
    with pytest.raises(ValueError, match="label_scheme"):
        CFGRL(CFGRLConfig(label_scheme="weighted"), 2, 1, 0, CPU, 0)
