"""CFGRL's ablation label schemes 'quantile' (advantage bins of the batch) and 'return' (return-to-go conditioning),
the returns-to-go of the transition sampler, and the unchanged numbers of the reference schemes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import numpy as np
import pytest
import torch

from cfgrl.cfgrl import CFGRL, NULL, CFGRLConfig, quantile_labels
from cfgrl.core import fast_gelu
from cfgrl.data.samplers import (
    BatchRequest,
    TransitionSampler,
    episode_ends,
    make_transition_sampler,
    transition_returns_to_go,
)
from cfgrl.pipeline.provenance import cpu_info
from tests.conftest import assert_resume_is_exact
from tests.synthetic import assert_grad_norms_match_a_loop, transition_batch

CPU = torch.device("cpu")
OBS, ACT = 5, 3

# sha256 (first 16 hex digits) of 5 updates' metrics, the parameters after them and one act() call, computed by
# `digest` with the code of cfgrl/cfgrl.py BEFORE 'quantile' and 'return' existed (commit 3b81001, this machine's
# CPU kernels, one thread): the existing schemes must still compute exactly these bits.
# Training bits differ across CPU kinds (MKL and oneDNN pick other kernels on Intel, by instruction set;
# docs/default-run.md): one digest per kind, recorded on AMD EPYC (AVX2 and Zen 4 agree) and on an Intel Xeon with
# AVX-512 and AMX, with MKL's own kernels and with MKL capped at AVX2 (MKL_ENABLE_INSTRUCTIONS=AVX2).
GOLDEN_BY_KIND = {
    "AuthenticAMD": {"dropout": "662458deeb6cd849", "filtered": "ed9d247c9d500720"},
    "GenuineIntel AVX-512": {"dropout": "262848e89c1cb3e7", "filtered": "1f78757f321b4ad3"},
    "GenuineIntel AVX-512, MKL at AVX2": {"dropout": "7c1d9264366f6e99", "filtered": "53d0f6b406714b54"},
}


def cpu_kind() -> str:
    """The CPU vendor; on Intel with the widest instruction set MKL may use ('AVX2' where AVX-512 is missing)."""
    cpu = cpu_info()
    vendor = cpu.get("vendor") or "unknown"
    if vendor != "GenuineIntel":
        return vendor
    if "avx512f" not in cpu.get("simd", []):
        return "GenuineIntel AVX2"
    mkl = os.environ.get("MKL_ENABLE_INSTRUCTIONS")
    return "GenuineIntel AVX-512" + (f", MKL at {mkl}" if mkl else "")


GOLDEN_CONFIG = {"dropout": {}, "filtered": {"label_scheme": "filtered", "time_grid": 8,
                                             "time_embedding": "sinusoidal", "flow_steps": 8}}


def make(seed: int = 0, **overrides) -> CFGRL:
    config = CFGRLConfig(**{"hidden": (32, 32), "value_hidden": (32, 32), **overrides})
    return CFGRL(config, OBS, ACT, 0, CPU, seed)


def make_batch(n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = transition_batch(n, g, OBS, ACT)
    return {**batch, "returns_to_go": 10 * batch["actions"][:, 0] + torch.randn(n, generator=g)}


def digest(overrides: dict) -> str:
    agent = CFGRL(CFGRLConfig(hidden=(32, 32), value_hidden=(32, 32), lr=3e-3, **overrides), 5, 3, 0, CPU, 0)
    g = torch.Generator().manual_seed(0)
    n = 64
    obs = torch.randn(n, 5, generator=g)
    actions = torch.tanh(obs[:, :3] + 0.3 * torch.randn(n, 3, generator=g))
    batch = {"observations": obs, "actions": actions, "rewards": actions[:, 0], "masks": torch.ones(n),
             "next_observations": torch.randn(n, 5, generator=g)}
    h = hashlib.sha256()
    for _ in range(5):
        info = agent.update(batch)
        for k in sorted(info):
            h.update(k.encode())
            h.update(info[k].numpy().tobytes())
    for k, v in agent.state_dict().items():
        h.update(k.encode())
        h.update(v.numpy().tobytes())
    h.update(agent.act(obs, None, torch.linspace(0, 3, n), noise=torch.randn(n, 3, generator=g)).numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("scheme", ["dropout", "filtered"])
def test_the_reference_schemes_compute_the_same_bits_as_before(scheme, monkeypatch):
    kind = cpu_kind()
    if kind not in GOLDEN_BY_KIND:
        pytest.skip(f"no digest recorded for CPU kind {kind!r}")
    # the digests were recorded with PyTorch's GELU kernel (CFGRL_GELU=aten), before cfgrl.core.fast_gelu
    monkeypatch.setattr(fast_gelu, "_loaded", lambda: (None, {"kernel": "aten", "reason": "test"}))
    assert digest(GOLDEN_CONFIG[scheme]) == GOLDEN_BY_KIND[kind][scheme]
    assert make(label_scheme=scheme).actor.label_embedding.num_embeddings == 3


# ------------------------------------------------------------------------------------------------------ quantile

def test_quantile_labels_are_the_batch_quantile_bins():
    adv = torch.tensor([3.0, 0.0, 7.0, 1.0, 5.0, 2.0, 6.0, 4.0])
    # quartiles of 0..7 (linear interpolation): 1.75, 3.5, 5.25 -> bins {0, 1}, {2, 3}, {4, 5}, {6, 7}
    assert quantile_labels(adv, 4).tolist() == [2, 1, 4, 1, 3, 2, 4, 3]
    assert quantile_labels(adv, 2).tolist() == [1, 1, 2, 1, 2, 1, 2, 2]  # median 3.5
    ties = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 2.0])  # quartiles 0, 0.5, 1: a value on an edge goes up
    assert quantile_labels(ties, 4).tolist() == [2, 2, 2, 4, 4, 4]
    rand = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    labels = quantile_labels(rand, 5)
    assert labels.min() == 1 and labels.max() == 5 and labels[rand.argmax()] == 5
    assert torch.bincount(labels, minlength=6)[1:].tolist() == [200] * 5  # distinct values: equal bins


def test_quantile_training_labels_embedding_and_sampling():
    agent = make(label_scheme="quantile", label_bins=5, null_prob=0.3)
    assert agent.actor.label_embedding.num_embeddings == 6  # null + 5 bins
    assert agent.resolved_arch(agent.config) == "ogbench"
    batch = make_batch(n=2000)
    adv = torch.randn(2000, generator=torch.Generator().manual_seed(1))
    labels = agent._actor_terms(batch, adv, torch.Generator().manual_seed(2))[0]
    kept = labels != NULL
    assert 0.25 < float((~kept).float().mean()) < 0.35
    assert torch.equal(labels[kept], quantile_labels(adv, 5)[kept])
    # act guides from null toward the top bin: w = 1 is the label-5 branch
    agent.reseed(3)
    acted = agent.act(batch["observations"][:16], None, 1.0)
    agent.reseed(3)
    noise = torch.randn(16, ACT, generator=agent.generator)
    a = noise
    with torch.no_grad():
        for i in range(agent.config.flow_steps):
            t = torch.full((16, 1), i / agent.config.flow_steps)
            a = a + agent.actor(batch["observations"][:16], torch.full((16,), 5), a, t) / agent.config.flow_steps
    torch.testing.assert_close(acted, a.clamp(-1, 1), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="label_bins"):
        make(label_scheme="quantile", label_bins=1)


def train_on_two_modes(label_scheme: str, labels: Callable[[torch.Tensor, torch.Generator], tuple[dict, torch.Tensor]]
                       ) -> CFGRL:
    """A 1-d CFGRL actor trained 600 steps on one state with actions in two modes (-0.5, +0.5, +- 0.1), batch 256.
    labels(plus (256,) bool, g) -> (extra batch fields, advantages (256,)), drawn after each batch's actions."""
    torch.manual_seed(0)
    steps, lr = 600, 3e-3
    agent = CFGRL(CFGRLConfig(hidden=(64, 64), value_hidden=(8,), lr=lr, label_scheme=label_scheme), 1, 1, 0, CPU, 0)
    g = torch.Generator().manual_seed(1)
    obs = torch.zeros(256, 1)
    for i in range(steps):
        plus = torch.rand(256, generator=g) < 0.5
        actions = (torch.where(plus, 0.5, -0.5) + 0.1 * torch.randn(256, generator=g))[:, None]
        extra, adv = labels(plus, g)
        for group in agent.optimizer.param_groups:
            group["lr"] = lr * (1 - i / steps)  # decay to damp SGD noise (as tests/test_toy_guidance.py)
        agent.apply_loss(agent.actor_loss({"observations": obs, "actions": actions, **extra}, adv, agent.generator))
    return agent


def plus_fractions(agent: CFGRL, ws: tuple[float, ...]) -> list[float]:
    """The fraction of 2000 samples in the + mode at each w, from the same noise."""
    fractions = []
    for w in ws:
        agent.reseed(123)
        fractions.append(float((agent.act(torch.zeros(2000, 1), None, w) > 0).float().mean()))
    return fractions


def test_quantile_guidance_moves_samples_toward_the_high_advantage_mode():
    """One state, actions in two modes (-0.5, +0.5); a noisy advantage A = +-0.5 + N(0, 1), so the top quartile
    holds about 79 % + mode. Guiding toward the top bin, w = 0 is the data (50 %), w = 1 the top-bin policy, and
    w > 1 goes further toward the + mode (ideal pi_hat p(top | a)^w: 50, 79, 93 %)."""
    agent = train_on_two_modes("quantile", lambda plus, g: ({}, torch.where(plus, 0.5, -0.5)
                                                              + torch.randn(256, generator=g)))
    plus_frac = plus_fractions(agent, (0.0, 1.0, 2.0, 3.0))
    assert 0.35 < plus_frac[0] < 0.65, plus_frac
    assert abs(plus_frac[1] - 0.79) < 0.1, plus_frac
    assert plus_frac[2] > plus_frac[1] + 0.08 and plus_frac[2] > 0.85, plus_frac
    assert np.all(np.diff(plus_frac) > 0), plus_frac


# ------------------------------------------------------------------------------------------- returns-to-go data

def test_returns_to_go_follow_episodes_masks_and_the_discount():
    rewards = np.array([1.0, 1.0, 1.0, 1.0, 1.0], dtype=np.float32)
    obs = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]], dtype=np.float32)
    next_obs = np.array([[1.0], [2.0], [3.0], [11.0], [12.0]], dtype=np.float32)
    masks = np.ones(5, dtype=np.float32)
    base = {"rewards": rewards, "masks": masks, "observations": obs, "next_observations": next_obs}
    expected = [1.75, 1.5, 1.0, 1.5, 1.0]  # episodes [0, 2] and [3, 4], discount 0.5, not bootstrapped at ends
    records = [{"timeouts": np.array([0, 0, 1, 0, 1], dtype=np.float32)},
               {"terminals": np.array([0, 0, 1, 0, 1], dtype=np.float32)},
               {"episode_lengths": np.array([3, 2])}, {}]  # {}: inferred from next_obs[i] != obs[i + 1]
    for record in records:
        arrays = {**base, **record}
        assert episode_ends(arrays).tolist() == [False, False, True, False, True], record
        np.testing.assert_allclose(transition_returns_to_go(arrays, 0.5), expected)
    terminal = {**base, "masks": np.array([1, 0, 1, 1, 1], dtype=np.float32), **records[0]}  # s_2 terminal
    np.testing.assert_allclose(transition_returns_to_go(terminal, 0.5), [1.5, 1.0, 1.0, 1.5, 1.0])
    assert transition_returns_to_go(base, 0.5).dtype == np.float32


def test_the_sampler_adds_returns_to_go_without_changing_the_batches():
    rng = np.random.default_rng(0)
    n = 50
    arrays = {"observations": rng.normal(size=(n, 3)).astype(np.float32),
              "actions": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
              "rewards": rng.normal(size=n).astype(np.float32), "masks": np.ones(n, dtype=np.float32),
              "timeouts": (np.arange(n) % 10 == 9).astype(np.float32)}
    arrays["next_observations"] = np.roll(arrays["observations"], -1, axis=0)
    plain = make_transition_sampler(arrays, BatchRequest("transitions"))
    with_rtg = make_transition_sampler(arrays, BatchRequest("transitions", return_discount=0.9))
    assert plain.returns_to_go is None and "returns_to_go" not in plain.sample(4, np.random.default_rng(1))
    a, b = plain.sample(32, np.random.default_rng(2)), with_rtg.sample(32, np.random.default_rng(2))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    rtg = transition_returns_to_go(arrays, 0.9)
    idxs = np.random.default_rng(2).integers(n, size=32)
    np.testing.assert_array_equal(b["returns_to_go"], rtg[idxs])
    with pytest.raises(ValueError, match="returns_to_go"):
        TransitionSampler(arrays["observations"], arrays["actions"], arrays["rewards"], arrays["masks"],
                          arrays["next_observations"], returns_to_go=rtg[:-1])


# ------------------------------------------------------------------------------------------------------- return

def test_return_scheme_freezes_its_normalisation_at_the_first_batch():
    agent = make(label_scheme="return", null_prob=0.0)
    assert CFGRL.batch_options(agent.config) == {"return_discount": 0.99}
    assert CFGRL.batch_options(make().config) == {}
    with pytest.raises(RuntimeError, match="first training batch"):
        agent.act(torch.zeros(2, OBS))
    batch = make_batch()
    agent.update(batch)
    r = batch["returns_to_go"]
    low, high, target = agent.return_stats.tolist()
    assert (low, high) == (float(r.min()), float(r.max()))
    assert target == pytest.approx(float(torch.quantile(r, 0.9)))
    agent.update(make_batch(seed=1))  # later batches do not move them
    assert agent.return_stats.tolist() == [low, high, target]
    labels = agent._actor_terms(batch, torch.zeros(64), agent.generator)[0]
    torch.testing.assert_close(labels, (r - low) / (high - low))
    # a null row (NaN label) is conditioned on the learned null vector; others on the projection
    cond = agent.actor.cond(batch["observations"][:2], torch.tensor([float("nan"), 0.5]))
    torch.testing.assert_close(cond[0, OBS:], agent.actor.null_label)
    torch.testing.assert_close(cond[1, OBS:], agent.actor.return_projection(torch.tensor([0.5])))
    assert "actor/return_to_go_mean" in agent.update(batch)
    with pytest.raises(ValueError, match="target_return_quantile"):
        make(label_scheme="return", target_return_quantile=1.5)


@pytest.mark.parametrize("scheme", ["quantile", "return"])
def test_new_schemes_resume_exactly_and_their_grad_norms_match_a_loop(scheme):
    assert_resume_is_exact(lambda seed: make(seed=seed, label_scheme=scheme, null_prob=0.3), make_batch())
    agent = make(label_scheme=scheme, null_prob=0.5)
    batch = {k: v[:6] for k, v in make_batch().items()}
    agent.update(make_batch())
    assert_grad_norms_match_a_loop(agent, batch, use_target=False)


def test_return_guidance_moves_samples_toward_the_high_return_mode():
    """One state, actions in two modes (-0.5, +0.5); the + mode's returns-to-go are N(1, 0.3^2), the - mode's
    N(0, 0.3^2). Guided toward the 0.9 quantile of the returns, samples move to the + mode as w grows."""
    agent = train_on_two_modes("return", lambda plus, g: (
        {"returns_to_go": plus.float() + 0.3 * torch.randn(256, generator=g)}, torch.zeros(256)))
    plus_frac = plus_fractions(agent, (0.0, 1.0, 2.0))
    assert 0.35 < plus_frac[0] < 0.65, plus_frac
    assert plus_frac[1] > 0.8 and plus_frac[2] >= plus_frac[1] - 0.02, plus_frac
