"""CFGRL's guidance on toy problems with a known answer.

One constant state, 1-D actions a ~ pi_hat, optimality labels o ~ Bernoulli(p(o=1 | a)). The CFGRL actor is trained
by its own loss (`CFGRL.actor_loss`: positive / negative labels from the sign of an advantage, null with probability
0.1, plain flow-matching MSE) with advantage +1 for o = 1 and -1 for o = 0, then sampled by `CFGRL.act` at several w.
The theory says the guided sampler draws from pi_w(a) ∝ pi_hat(a) p(o=1 | a)^w.

Two cases:
1. pi_hat Gaussian and p(o=1 | a) = min(1, exp(beta (a - a_max))) (an exponential tilt: a_max is 3.5 sigma above
   the mean of pi_hat, so the min matters for under 1 % of the mass of pi_w, w <= 3).
   Here guidance is exact for every w: the tilted distributions stay Gaussian, each noised marginal of pi_w is
   the noised pi_hat times a tilt to the power w, so v_null + w (v_pos - v_null) is exactly the flow velocity of
   pi_w = N(mu + w beta sigma^2, sigma^2). Samples must match the moments of pi_w (computed on a grid, of the
   action clipped to [-1, 1] as the sampler clips).
2. pi_hat a two-mode mixture and a logistic p(o=1 | a). Guidance is then NOT exactly pi_w for w > 1, even with
   a perfect model: the noised marginals of pi_w are not the guided combination of the noised null and positive
   marginals. The reference is the guided Euler sampler run on the EXACT velocity fields of pi_hat and
   pi_hat p(o | a) (computed numerically on a grid); at w = 0 and 1 it equals pi_w, at w = 2 its mean is about
   0.07 above pi_w's. The learned sampler must follow that reference (run on the same noise draws).
In both, the mean of a and of p(o=1 | a) must rise over w = 0, 1, 2, 3.

Tolerances (absolute, in action units): mean and std within 0.04 at w = 0, 1, 2. With the test's seed (0) the
largest error at w <= 2 is 0.012; over training seeds 0-4 it was 0.022 (case 1: sigma = 0.4, so 5 % of sigma).
The error comes from the model (finite training of the positive branch, which sees ~27 % of the data in case 1,
amplified by w), not from the sample size (standard error of the mean ~0.006; case 2 shares the noise draws with
its reference). At w = 3 errors reached 0.044 over those seeds, so w = 3 is only checked for the rise.
A wrong guidance formula (w + 1 instead of w, swapped branches, w ignored) moves the case-1 mean by at least
beta sigma^2 = 0.16 and fails. The tolerance also covers the Euler error of 128 sampler steps (1.5 % of sigma).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cfgrl.cfgrl import CFGRL, CFGRLConfig

MEAN_TOL, STD_TOL = 0.04, 0.04
CHECKED_W = (0.0, 1.0, 2.0)  # moments checked here; the rise with w is checked over 0 .. 3


def train_toy_actor(draw_actions, p_opt, flow_steps: int, steps: int = 2500, batch: int = 512, lr: float = 1e-3,
                    seed: int = 0) -> CFGRL:
    """Train a CFGRL actor (3 x 128) on labelled toy actions; lr decays linearly to 0 to damp SGD noise."""
    torch.manual_seed(seed)
    config = CFGRLConfig(hidden=(128, 128, 128), value_hidden=(8,), lr=lr, flow_steps=flow_steps)
    agent = CFGRL(config, 1, 1, 0, torch.device("cpu"), seed)
    g = torch.Generator().manual_seed(seed + 1)
    obs = torch.zeros(batch, 1)
    for i in range(steps):
        actions = draw_actions(batch, g)[:, None]
        optimal = torch.rand(batch, generator=g) < p_opt(actions[:, 0])
        for group in agent.optimizer.param_groups:
            group["lr"] = lr * (1 - i / steps)
        agent.apply_loss(agent.actor_loss({"observations": obs, "actions": actions}, torch.where(optimal, 1.0, -1.0),
                                          agent.generator))
    return agent


def sample(agent: CFGRL, w: float, n: int = 4000) -> np.ndarray:
    agent.reseed(123)
    return agent.act(torch.zeros(n, 1), None, w)[:, 0].numpy().astype(np.float64)


def grid_moments(density: np.ndarray, grid: np.ndarray, clip: float | None = None) -> tuple[float, float]:
    """Mean and std of a (or of a clipped to [-clip, clip]) under a density given on a uniform grid."""
    d = density / density.sum()
    x = grid if clip is None else np.clip(grid, -clip, clip)
    mean = float((d * x).sum())
    return mean, math.sqrt(float((d * x**2).sum()) - mean**2)


def test_guidance_samples_the_tilted_policy_exactly_for_a_gaussian():
    mu, sigma, beta, a_max = -0.25, 0.4, 1.0, 1.15

    def p_opt(a):
        return torch.exp(beta * (a - a_max)).clamp(max=1.0)

    agent = train_toy_actor(lambda n, g: mu + sigma * torch.randn(n, generator=g), p_opt, flow_steps=128)
    grid = np.linspace(-3.0, 3.0, 12001)
    pi_hat = np.exp(-0.5 * ((grid - mu) / sigma) ** 2)
    p_grid = np.minimum(np.exp(beta * (grid - a_max)), 1.0)
    means, rewards = [], []
    for w in (0.0, 1.0, 2.0, 3.0):
        pi_w = pi_hat * p_grid**w
        # the grid product is the closed form N(mu + w beta sigma^2, sigma^2) up to the min(1, .) in p
        unclipped_mean, unclipped_std = grid_moments(pi_w, grid)
        assert abs(unclipped_mean - (mu + w * beta * sigma**2)) < 5e-3 and abs(unclipped_std - sigma) < 5e-3
        a = sample(agent, w)
        if w in CHECKED_W:
            target_mean, target_std = grid_moments(pi_w, grid, clip=1.0)
            assert abs(a.mean() - target_mean) < MEAN_TOL, (w, a.mean(), target_mean)
            assert abs(a.std() - target_std) < STD_TOL, (w, a.std(), target_std)
        means.append(a.mean())
        rewards.append(np.minimum(np.exp(beta * (a - a_max)), 1.0).mean())
    assert np.all(np.diff(means) > 0.08), means  # analytic step before clipping: 0.16 per unit w
    assert np.all(np.diff(rewards) > 0), rewards


def exact_guided_euler(density_null: np.ndarray, density_pos: np.ndarray, grid: np.ndarray, w: float,
                       noise: np.ndarray, steps: int) -> np.ndarray:
    """The guided Euler sampler on the exact rectified-flow velocities of two densities given on a grid:
    v(x, t) = (E[a1 | a_t = x] - x) / (1 - t), a_t = (1 - t) a0 + t a1, a0 ~ N(0, 1)."""

    def velocity(density, x, t):
        s = 1.0 - t
        weights = np.exp(-0.5 * ((x[:, None] - t * grid[None]) / s) ** 2) * density[None]
        return ((weights * grid).sum(1) / weights.sum(1) - x) / s

    a = noise.copy()
    for i in range(steps):
        t = i / steps
        v_null, v_pos = velocity(density_null, a, t), velocity(density_pos, a, t)
        a = a + (v_null + w * (v_pos - v_null)) / steps
    return np.clip(a, -1.0, 1.0)


def test_guidance_follows_the_exact_guided_flow_for_a_mixture():
    weights, mus, sds, k = (0.5, 0.5), (-0.45, 0.35), (0.15, 0.2), 4.0
    steps = 32

    def draw(n, g):
        first = torch.rand(n, generator=g) < weights[0]
        return torch.where(first, mus[0] + sds[0] * torch.randn(n, generator=g),
                           mus[1] + sds[1] * torch.randn(n, generator=g))

    agent = train_toy_actor(draw, lambda a: torch.sigmoid(k * a), flow_steps=steps)
    grid = np.linspace(-1.5, 1.5, 601)
    pi_hat = sum(wt * np.exp(-0.5 * ((grid - m) / s) ** 2) / s for wt, m, s in zip(weights, mus, sds, strict=True))
    p_grid = 1.0 / (1.0 + np.exp(-k * grid))
    agent.reseed(123)  # the reference starts from the noise the agent's sampler draws (see `sample`)
    noise = torch.randn((2000, 1), generator=agent.generator)[:, 0].numpy().astype(np.float64)
    means, rewards = [], []
    for w in (0.0, 1.0, 2.0, 3.0):
        ref = exact_guided_euler(pi_hat, pi_hat * p_grid, grid, w, noise, steps)
        product_mean, _ = grid_moments(pi_hat * p_grid**w, grid)
        if w in (0.0, 1.0):  # the reference is pi_w itself, up to the Euler error of 32 steps
            assert abs(ref.mean() - product_mean) < 0.02
        if w == 2.0:  # ... but not for w > 1 (a property of guidance, not of the model)
            assert ref.mean() - product_mean > 0.05
        a = sample(agent, w, n=2000)
        if w in CHECKED_W:
            assert abs(a.mean() - ref.mean()) < MEAN_TOL, (w, a.mean(), ref.mean())
            assert abs(a.std() - ref.std()) < STD_TOL, (w, a.std(), ref.std())
        means.append(a.mean())
        rewards.append((1.0 / (1.0 + np.exp(-k * a))).mean())
    assert np.all(np.diff(means) > 0), means
    assert np.all(np.diff(rewards) > 0), rewards
