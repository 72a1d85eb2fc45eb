"""The hierarchical goal-conditioned methods (HCFGRL, Gaussian HGCBC, Flow HGCBC): the subgoal sampler, learning
on a fixed batch, act, HCFGRL's branches at w = 0 / 1, resumption, and one train + evaluate run each."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from baselines.hgcbc import HGCBC
from cfgrl.core.flow import row_stable
from cfgrl.data.samplers import GoalSampler, SubgoalSampler
from cfgrl.envs.registry import resolve_env
from cfgrl.hcfgrl import HCFGRL, HCFGRLConfig, low_level_goals
from cfgrl.methods import method_class
from tests.conftest import assert_resume_is_exact, toy_episodes

CPU = torch.device("cpu")
OBS, ACT, GOAL = 5, 3, 2
METHODS = ["hcfgrl", "hgcbc", "flow_hgcbc"]
# the losses each method reports per level, which must both fall on a fixed batch
LEVEL_LOSSES = {"hcfgrl": ("actor/high_flow_loss", "actor/low_flow_loss"),
                "flow_hgcbc": ("actor/high_flow_loss", "actor/low_flow_loss"),
                "hgcbc": ("actor/high_loss", "actor/low_loss")}


def make_agent(name: str, seed: int = 0, **overrides):
    cls = method_class(name)
    torch.manual_seed(seed)
    return cls(cls.Config(**{"hidden": (32, 32), **overrides}), OBS, ACT, GOAL, CPU, seed)


def subgoal_of(obs: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
    """The toy problems' subgoal, a fixed function of (s, g): (B, OBS), (B, GOAL) -> (B, GOAL)."""
    return 0.5 * (obs[:, :GOAL] + goals)


def make_batch(n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, OBS, generator=g)
    goals = torch.randn(n, GOAL, generator=g)
    subgoals = subgoal_of(obs, goals)
    low_goals = subgoals + 0.1 * torch.randn(n, GOAL, generator=g)
    actions = torch.tanh(obs[:, :ACT] + 0.5 * torch.cat([low_goals, low_goals[:, :1]], -1)
                         + 0.1 * torch.randn(n, ACT, generator=g))
    return {"observations": obs, "actions": actions, "goals": goals, "subgoals": subgoals, "low_goals": low_goals}


# ------------------------------------------------------------------------------------------ registry and spec

def test_registry_class_attributes_and_spec_batch_kind():
    expected = {"hcfgrl": True, "hgcbc": False, "flow_hgcbc": False}
    for name, guided in expected.items():
        cls = method_class(name)
        assert (cls.guided, cls.goal_conditioned, cls.batch_kind) == (guided, True, "subgoals"), name
        config = cls.Config()  # every field has a default
        assert config.subgoal_steps == 25 and config.low_goal == "trajectory", name
        gc, single = resolve_env("pointmaze-medium-navigate-v0"), resolve_env("pointmaze-medium-navigate-singletask-v0")
        assert gc.kind.batch_problem(gc, cls.batch_kind) is None
        assert "goal-conditioned" in single.kind.batch_problem(single, cls.batch_kind)
    assert HCFGRLConfig().null_goal_prob == 0.1
    assert "null_goal_prob" not in method_class("flow_hgcbc").Config.__dataclass_fields__
    for name in METHODS:
        with pytest.raises(ValueError, match="low_goal"):
            make_agent(name, low_goal="final")


# ------------------------------------------------------------------------------------------------ the sampler

@pytest.mark.parametrize("geometric_discount", [None, 0.9])
@pytest.mark.parametrize("oracle", [False, True])
def test_subgoal_sampler_targets_the_capped_state_k_steps_ahead(geometric_discount, oracle):
    lengths, k = [3, 12, 40, 1, 90], 7
    data = toy_episodes(lengths)
    n = sum(lengths)
    data["observations"][:, 0] = np.arange(n)  # each row names its own index
    ends = np.repeat(np.cumsum(lengths) - 1, lengths)
    reps = np.stack([np.arange(n) * 10.0 + 0.5, -np.arange(n, dtype=float)], 1).astype(np.float32) if oracle else None
    sampler = SubgoalSampler(data["observations"], data["actions"], data["terminals"], goal_reps=reps,
                             geometric_discount=geometric_discount, subgoal_steps=k)
    batch = sampler.sample(4000, np.random.default_rng(0))
    assert set(batch) == {"observations", "actions", "goals", "subgoals", "low_goals"}
    source = sampler.goal_source

    def index_of(rows: np.ndarray) -> np.ndarray:
        """Row indices of goal_source rows (B, goal_dim), exact."""
        idx = ((rows[:, 0] - 0.5) / 10.0) if oracle else rows[:, 0]
        idx = np.rint(idx).astype(np.int64)
        np.testing.assert_array_equal(source[idx], rows)
        return idx

    t = index_of(batch["observations"]) if not oracle else np.rint(batch["observations"][:, 0]).astype(np.int64)
    g, sub, low = index_of(batch["goals"]), index_of(batch["subgoals"]), index_of(batch["low_goals"])
    end = ends[t]
    assert bool((t < end).all())  # a transition, never an episode's last row
    assert bool(((g > t) & (g <= end)).all())  # hindsight goal in the same episode's future
    np.testing.assert_array_equal(sub, np.minimum(np.minimum(t + k, g), end))
    np.testing.assert_array_equal(low, np.minimum(t + k, end))
    assert bool(((sub > t) & (sub <= end) & (ends[sub] == end)).all())  # inside the trajectory
    # every cap is exercised: the goal (nearer than k), the episode end, and the plain k-step state
    assert (sub == g).any() and ((sub == t + k) & (g > t + k)).any() and ((low == end) & (t + k > end)).any()
    assert ((low == t + k) & (sub < low)).any()  # the low-level goal ignores the goal cap
    # the same draws as the flat sampler: observations, actions and goals agree with GoalSampler's batch
    flat = GoalSampler(data["observations"], data["actions"], data["terminals"], goal_reps=reps,
                       geometric_discount=geometric_discount).sample(4000, np.random.default_rng(0))
    for key in flat:
        np.testing.assert_array_equal(flat[key], batch[key])
    np.testing.assert_array_equal(batch["actions"], data["actions"][t])


def test_low_level_goals_follow_the_config():
    batch = make_batch(8)
    assert low_level_goals(batch, "trajectory") is batch["low_goals"]
    assert low_level_goals(batch, "subgoal") is batch["subgoals"]
    # 'subgoal' needs no low_goals key: the low level trains on the high-level target
    agent = make_agent("hgcbc", low_goal="subgoal")
    agent.update({k: v for k, v in batch.items() if k != "low_goals"})


# ------------------------------------------------------------------------------------------- learning and act

@pytest.mark.parametrize("name", METHODS)
def test_update_lowers_both_levels_losses_on_a_fixed_batch(name):
    agent = make_agent(name, lr=3e-3)
    batch = make_batch()
    curves: dict[str, list[float]] = {k: [] for k in LEVEL_LOSSES[name]}
    for _ in range(100):
        info = agent.update(batch)
        assert all(isinstance(v, torch.Tensor) and v.ndim == 0 and not v.requires_grad for v in info.values())
        assert all(k.startswith("actor/") for k in info)
        for k in curves:
            curves[k].append(float(info[k]))
    for k, losses in curves.items():
        first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
        assert last < first - 0.05 * abs(first), (k, first, last)
    assert agent.step == 100


def test_gaussian_hgcbc_high_level_mean_approaches_the_subgoal():
    agent = make_agent("hgcbc", lr=3e-3)
    test = make_batch(256, seed=99)
    target = test["subgoals"]

    def error() -> float:
        return float((agent.subgoals(test["observations"], test["goals"]) - target).pow(2).mean())

    before = error()
    for i in range(300):
        agent.update(make_batch(128, seed=i + 1))
    after = error()
    assert after < 0.02 and after < 0.05 * before, (before, after)


def output_layers(agent) -> tuple[torch.nn.Linear, torch.nn.Linear]:
    """The last Linear of the high- and the low-level network."""
    if isinstance(agent, HGCBC):
        return agent.high.mean_net[-1], agent.low.mean_net[-1]
    return agent.high.net[-1], agent.low.net[-1]


def subgoals_of(agent, obs: torch.Tensor, goals: torch.Tensor, w: float) -> torch.Tensor:
    return agent.subgoals(obs, goals) if isinstance(agent, HGCBC) else agent.sample_subgoals(obs, goals, w)


@pytest.mark.parametrize("name", METHODS)
def test_act_is_bounded_and_deterministic_and_subgoals_are_not_clipped(name):
    agent = make_agent(name, flow_steps=4) if name != "hgcbc" else make_agent(name)
    batch = make_batch(n=16)
    obs, goals = batch["observations"], batch["goals"]
    for push in (0.0, 4.0):
        high_out, low_out = output_layers(agent)
        with torch.no_grad():  # push = 4: both raw outputs leave the box
            high_out.bias.add_(push)
            low_out.bias.add_(push)
        for w in (0.0, 1.0, 3.0, torch.linspace(0, 5, 16)):
            agent.reseed(3)
            a = agent.act(obs, goals, w)
            assert a.shape == (16, ACT) and a.dtype == torch.float32 and not a.requires_grad
            assert bool((a.abs() <= 1.0).all())
            agent.reseed(3)
            assert torch.equal(agent.act(obs, goals, w), a)  # deterministic given the generator seed
            if push:
                assert bool((a == 1.0).any())
                z = subgoals_of(agent, obs, goals, 1.0)
                assert z.shape == (16, GOAL) and bool((z > 1.5).any())  # goal space is not clipped
            elif name != "hgcbc":  # sampled policies draw new noise on each call
                assert not torch.equal(agent.act(obs, goals, w), a)


def two_stage(agent, obs: torch.Tensor, high_goals: torch.Tensor, low_goal_rows, seed: int
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain Euler integration of the high level on [s, high_goals], then of the low level on [s, low_goal_rows(z)],
    with the noise `act` draws after reseed(seed); each network call through row_stable, as `act` computes a row.
    Returns (subgoals, actions clipped to [-1, 1])."""
    b, steps = obs.shape[0], agent.config.flow_steps
    agent.reseed(seed)
    with torch.no_grad():
        z = torch.randn((b, agent.goal_dim), generator=agent.generator)
        for i in range(steps):
            z = z + row_stable(agent.high, torch.cat([obs, high_goals], -1), z, torch.full((b, 1), i / steps)) / steps
        a = torch.randn((b, agent.action_dim), generator=agent.generator)
        low_rows = low_goal_rows(z)
        for i in range(steps):
            a = a + row_stable(agent.low, torch.cat([obs, low_rows], -1), a, torch.full((b, 1), i / steps)) / steps
    return z, a.clamp(-1, 1)


def test_hcfgrl_uses_only_null_branches_at_w0_and_only_conditional_branches_at_w1():
    agent = make_agent("hcfgrl", flow_steps=4, lr=3e-3)
    batch = make_batch(n=32)
    for _ in range(5):
        agent.update(batch)
    with torch.no_grad():  # null goals clearly apart from the goals and from each other
        agent.high_null_goal.copy_(torch.tensor([0.3, -0.7]))
        agent.low_null_goal.copy_(torch.tensor([-1.1, 0.4]))
    obs, goals = batch["observations"], batch["goals"]
    high_null, low_null = agent.high_null_goal.detach().expand(32, 2), agent.low_null_goal.detach().expand(32, 2)

    z0, a0 = two_stage(agent, obs, high_null, lambda z: low_null, 11)
    z1, a1 = two_stage(agent, obs, goals, lambda z: z, 11)
    for w in (0.0, torch.zeros(32)):
        agent.reseed(11)
        assert torch.equal(agent.sample_subgoals(obs, goals, w), z0)
        agent.reseed(11)
        assert torch.equal(agent.act(obs, goals, w), a0)
    for w in (1.0, torch.ones(32)):
        agent.reseed(11)
        assert torch.equal(agent.sample_subgoals(obs, goals, w), z1)
        agent.reseed(11)
        assert torch.equal(agent.act(obs, goals, w), a1)
    assert not torch.equal(a0, a1) and not torch.equal(z0, z1)
    # w = 0 ignores the goal entirely (both levels unconditional)
    agent.reseed(11)
    assert torch.equal(agent.act(obs, torch.randn(32, 2), 0.0), a0)
    # mixed w in one batch (one stacked 2B-row pass per level): w = 0 / 1 rows agree with the branches
    agent.reseed(11)
    mixed = agent.act(obs, goals, torch.tensor([0.0, 1.0, 3.0, 0.5] * 8))
    torch.testing.assert_close(mixed[0::4], a0[0::4], atol=1e-5, rtol=0)
    torch.testing.assert_close(mixed[1::4], a1[1::4], atol=1e-5, rtol=0)
    assert not torch.allclose(mixed[2::4], a1[2::4])


def test_flow_hgcbc_is_the_unguided_two_stage_sampler():
    agent = make_agent("flow_hgcbc", flow_steps=4)
    assert agent.high_null_goal is None and agent.low_null_goal is None
    assert not any("null" in k for k in agent.state_dict())
    batch = make_batch(n=32)
    agent.update(batch)
    obs, goals = batch["observations"], batch["goals"]
    z, a = two_stage(agent, obs, goals, lambda z: z, 5)
    for w in (0.0, 1.0, 7.0):  # w is ignored
        agent.reseed(5)
        assert torch.equal(agent.act(obs, goals, w), a)
    agent.reseed(5)
    assert torch.equal(agent.sample_subgoals(obs, goals), z)


def test_hcfgrl_trains_each_level_with_its_own_null_goal():
    agent = make_agent("hcfgrl", null_goal_prob=1.0)  # every goal dropped: only the null goals get gradients
    agent.update(make_batch())
    assert bool(agent.high_null_goal.detach().abs().sum() > 0) and bool(agent.low_null_goal.detach().abs().sum() > 0)
    assert not torch.equal(agent.high_null_goal, agent.low_null_goal)
    assert isinstance(agent, HCFGRL) and isinstance(agent.config, HCFGRLConfig)


@pytest.mark.parametrize("name", METHODS)
def test_full_state_round_trip_reproduces_the_next_update_bit_for_bit(name):
    assert_resume_is_exact(lambda seed: make_agent(name, seed=seed), make_batch())


@pytest.mark.parametrize("method", METHODS)
def test_train_then_load_and_evaluate(tmp_path, tiny_navigate_data, method):
    from cfgrl.pipeline.evaluate import evaluate
    from cfgrl.pipeline.spec import load_spec
    from cfgrl.pipeline.train import load_agent, make_sampler, train

    env = "pointmaze-medium-navigate-v0"
    cls = method_class(method)
    sampler = make_sampler(resolve_env(env), tiny_navigate_data, cls, cls.Config(subgoal_steps=10))
    assert isinstance(sampler, SubgoalSampler) and sampler.subgoal_steps == 10
    gcbc = method_class("gcbc")  # the same data as plain goal batches for a flat method
    assert type(make_sampler(resolve_env(env), tiny_navigate_data, gcbc, gcbc.Config())) is GoalSampler

    config = {"steps": 20, "batch_size": 32, "hidden": [32, 32], "log_every": 10, "checkpoint_every": 25,
              "device": "cpu", "subgoal_steps": 10}
    if method != "hgcbc":
        config["flow_steps"] = 4
    raw = {"name": "t", "seeds": [0], "envs": {env: {"data": {"source": "generate", "episodes": 4}}},
           "methods": {method: {"config": config}}}
    if method == "hcfgrl":
        raw["methods"][method]["w"] = [0, 3]
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(raw))
    spec = load_spec(tmp_path / "spec.yaml")
    out = train(spec, method, env, 0, tiny_navigate_data, tmp_path / "run")
    assert out["steps"] == 20 and (tmp_path / "run" / "model.pt").exists()
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert "actor/high" in header and "actor/low" in header

    agent, record = load_agent(tmp_path / "run" / "model.pt")
    assert record["method"] == method and agent.config.subgoal_steps == 10
    assert agent.goal_dim == sampler.goal_source.shape[1]
    res = evaluate(agent, resolve_env(env), [1], 1, 3.0 if method == "hcfgrl" else None, 0, 0)
    assert len(res["episodes"]) == 1 and isinstance(res["episodes"][0]["success"], bool)
    assert res["episodes"][0]["length"] >= 1 and 0.0 <= res["success"] <= 1.0
