"""Parity with the reference implementation's networks (docs/fidelity.md): initialisation statistics against the
flax formulas, layer order per reference code, embeddings and null goals, and the guided velocity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from cfgrl.core.nets import init_linear, make_null_goal, mlp
from cfgrl.methods import METHODS, method_class

CPU = torch.device("cpu")
OBS, ACT, GOAL = 11, 3, 4


def build(name: str, seed: int = 0, **overrides):
    cls = method_class(name)
    fields = cls.Config.__dataclass_fields__
    config = cls.Config(**{k: v for k, v in overrides.items() if k in fields})
    goal_dim = GOAL if cls.goal_conditioned or "subgoal_steps" in fields else 0
    return cls(config, OBS, ACT, goal_dim, CPU, seed)


def linears(module: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]


def output_layers(agent) -> set[str]:
    """Names of the Linear layers that end a network (the last Linear of each nn.Sequential)."""
    out = set()
    for name, seq in agent.named_modules():
        if isinstance(seq, nn.Sequential):
            last = [n for n, m in seq.named_children() if isinstance(m, nn.Linear)][-1]
            out.add(f"{name}.{last}")
    return out


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_linear_layer_is_initialised_as_the_reference(name):
    """Hidden and value layers: Xavier-uniform (variance_scaling(1, fan_avg, uniform)), zero bias; Gaussian mean
    layers the same with gain 0.1 (final_fc_init_scale 1e-2); the ExORL flow actor's output a flax Dense (LeCun
    truncated normal). Statistics over the layer's entries, bounds exact."""
    agent = build(name, hidden=(256, 256), value_hidden=(256, 256))
    outputs = output_layers(agent)
    gaussian = {"bc", "gcbc", "awr", "hgcbc"}
    for lname, layer in linears(agent):
        fan_out, fan_in = layer.weight.shape
        w = layer.weight.detach().double()
        assert torch.count_nonzero(layer.bias) == 0, f"{name}.{lname}: bias not zero"
        is_actor_head = lname in outputs and "critic" not in lname
        gain = 0.1 if is_actor_head and name in gaussian else 1.0
        bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
        assert w.abs().max() <= bound + 1e-7, f"{name}.{lname}: outside the Xavier bound"
        if w.numel() >= 500:  # std of U(-b, b) is b / sqrt(3); 500+ entries give it within ~6% (tolerance 15%)
            np.testing.assert_allclose(float(w.std()), bound / math.sqrt(3), rtol=0.15, err_msg=f"{name}.{lname}")


def test_exorl_flow_actor_output_is_a_flax_dense_and_its_trunk_skips_the_last_layernorm():
    agent = build("cfgrl", label_scheme="filtered", layer_norm=True, hidden=(256, 256), value_hidden=(256, 256),
                  activation="mish")
    assert agent.arch == "exorl"
    seq = agent.actor.velocity.net
    kinds = [type(m).__name__ for m in seq]
    # rlbase MLP(activate_final=True): Dense -> LayerNorm -> Mish, then Dense -> Mish (no LayerNorm), then Dense
    assert kinds == ["Linear", "LayerNorm", "Mish", "Linear", "Mish", "Linear"]
    out = seq[-1].weight.detach().double()
    std = 1 / math.sqrt(out.shape[1])  # LeCun: variance 1 / fan_in, truncated at 2 of the untruncated stds
    assert out.abs().max() <= 2 * std / 0.87962566103423978 + 1e-7
    np.testing.assert_allclose(float(out.std()), std, rtol=0.15)
    # its critic keeps LayerNorm before the activation on every hidden layer (rlbase Critic: MLP((*hidden, 1)))
    assert [type(m).__name__ for m in agent.critic.q[0]] == ["Linear", "LayerNorm", "TanhGELU", "Linear", "LayerNorm",
                                                             "TanhGELU", "Linear"]


def test_ogbench_layout_puts_layernorm_after_the_activation():
    seq = mlp(5, (8, 8), 2, "gelu", True, arch="ogbench")
    assert [type(m).__name__ for m in seq] == ["Linear", "TanhGELU", "LayerNorm", "Linear", "TanhGELU", "LayerNorm",
                                               "Linear"]
    assert all(m.eps == 1e-6 for m in seq if isinstance(m, nn.LayerNorm))  # flax's epsilon
    assert build("cfgrl").arch == "ogbench" and build("awr", std_mode="learned").arch == "exorl"
    assert build("awr", std_mode="learned", arch="ogbench").arch == "ogbench"


def test_gelu_is_flax_tanh_approximation():
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    flax_gelu = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    act = mlp(1, (1,), 1, "gelu")[1]
    torch.testing.assert_close(act(x), flax_gelu)
    exact = mlp(1, (1,), 1, "gelu_exact")[1]
    assert not torch.allclose(exact(x), flax_gelu)


def test_label_embedding_and_null_goals_are_flax_embeds():
    """nn.Embed's default init: variance_scaling(1, 'fan_in', 'normal', out_axis=0) = N(0, 1 / features)."""
    rows = torch.cat([build("cfgrl", seed=s).actor.label_embedding.weight.detach() for s in range(20)])
    np.testing.assert_allclose(float(rows.std()), 1 / math.sqrt(32), rtol=0.08)
    goals = torch.stack([build("gc_cfgrl", seed=s).null_goal.detach() for s in range(400)])
    np.testing.assert_allclose(goals.std(0).numpy(), 1 / math.sqrt(GOAL), rtol=0.12)
    np.testing.assert_allclose(goals.mean(0).numpy(), 0.0, atol=0.08)
    hier = build("hcfgrl")
    assert not torch.equal(hier.high_null_goal, hier.low_null_goal)


def test_null_goal_is_not_a_dataset_point_at_init():
    """The old zero null goal sat on a data point (in pointmaze-medium (0, 0) is a cell centre that is task 1's
    start and task 5's goal): guidance then subtracts a 'go there' branch. Under parity it is a random vector."""
    pointmaze_cell_centres = torch.tensor([[4.0 * i, 4.0 * j] for i in range(6) for j in range(6)])
    null = make_null_goal(2, "parity", torch.Generator().manual_seed(0))
    assert torch.cdist(null[None].detach(), pointmaze_cell_centres).min() > 0
    assert torch.count_nonzero(make_null_goal(2, "torch")) == 0  # the ablation keeps the old zero vector
    seeds = {tuple(build("gc_cfgrl", seed=s).null_goal.detach().tolist()) for s in range(10)}
    assert len(seeds) == 10


def test_init_is_deterministic_per_seed_and_independent_of_the_global_rng():
    a = build("cfgrl", seed=3)
    torch.manual_seed(12345)
    torch.rand(1000)
    b = build("cfgrl", seed=3)
    c = build("cfgrl", seed=4)
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.actor.velocity.net[0].weight, c.actor.velocity.net[0].weight)


def test_torch_init_keeps_pytorch_defaults_for_ablations():
    agent = build("gc_cfgrl", init="torch")
    first = agent.velocity.net[0]
    assert torch.count_nonzero(first.bias) > 0  # PyTorch's Linear has uniform(+-1/sqrt(fan_in)) biases
    assert first.weight.abs().max() <= 1 / math.sqrt(first.in_features) + 1e-7
    assert torch.count_nonzero(agent.null_goal) == 0


@pytest.mark.parametrize("w", [0.0, 1.0, 2.5])
def test_guided_velocity_known_answer(w):
    """One Euler step of the guided sampler equals noise + (v_null + w (v_cond - v_null)) / steps, computed from
    the velocity network directly: w = 0 the null branch, w = 1 the conditional one, w > 1 extrapolation."""
    agent = build("gc_cfgrl", seed=1, flow_steps=1)
    g = torch.Generator().manual_seed(7)
    obs, goals = torch.randn(5, OBS, generator=g), torch.randn(5, GOAL, generator=g)
    agent.reseed(11)
    actions = agent.act(obs, goals, w)
    agent.reseed(11)
    noise = torch.randn((5, ACT), generator=agent.generator)
    t = torch.zeros(5, 1)
    with torch.no_grad():
        v_cond = agent.velocity(torch.cat([obs, goals], -1), noise, t)
        v_null = agent.velocity(torch.cat([obs, agent.null_goal.expand(5, -1)], -1), noise, t)
    expected = (noise + v_null + w * (v_cond - v_null)).clamp(-1, 1)
    torch.testing.assert_close(actions, expected, rtol=1e-5, atol=1e-6)


def test_init_linear_lecun_matches_jax_truncation():
    layer = init_linear(nn.Linear(400, 300), "parity", kind="lecun", generator=torch.Generator().manual_seed(0))
    w = layer.weight.detach().double()
    std = 1 / math.sqrt(400)
    assert w.abs().max() <= 2 * std / 0.87962566103423978 + 1e-9
    np.testing.assert_allclose(float(w.std()), std, rtol=0.02)
