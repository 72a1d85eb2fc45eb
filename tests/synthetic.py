"""Synthetic inputs for the tests: cells tables with hand-controlled effects per method (analysis tests, no
training, no files), training batches, and small agents with their acting inputs (device tests)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

ENVS = ["walker-stand", "cheetah-run", "pointmaze-large-navigate-singletask-v0"]
W_GRID = [0.0, 1.0, 1.5, 2.0, 3.0, 5.0]
TEMPERATURES = [1.0, 3.0, 10.0, 30.0]


def _cfgrl_curve(w: float, peak: float) -> float:
    """Rises from w = 0 to a peak near w = 2-3, then falls a little: the paper's Fig. 4 shape."""
    return 0.25 + (peak - 0.25) * (1 - np.exp(-1.2 * w)) - 0.02 * max(0.0, w - 3.0) ** 2


def synthetic_cells(seeds: int = 4, envs: list[str] | None = None, validation_seeds: int = 0, noise: float = 0.04,
                    seed: int = 0, gc: bool = True) -> pd.DataFrame:
    """A cells table (one row per method, env, seed, w; success = per-seed mean) with columns method, env, seed,
    w, temperature, success, episodes, split.

    Methods: awr (w NaN, temperature grid, saturates near T = 10), cfgrl (w grid, peaks at w ~ 3, better than AWR
    on the first env by a wide margin, equal on the last), and with gc=True gcbc and bc (w NaN), gc_cfgrl (w grid),
    hgcbc (w NaN), hcfgrl (w grid). Validation seeds (split 'validation') are numbered after the test seeds.
    """
    envs = envs or ENVS
    rng = np.random.default_rng(seed)
    rows = []
    n_total = seeds + validation_seeds

    def add(method: str, env: str, s: int, w: float, t: float, mean: float) -> None:
        value = float(np.clip(mean + noise * rng.normal(), 0.0, 1.0))
        split = "test" if s < seeds else "validation"
        rows.append({"method": method, "env": env, "seed": s, "w": w, "temperature": t, "success": value,
                     "episodes": 50, "split": split})

    for e, env in enumerate(envs):
        gap = [0.30, 0.12, 0.0, 0.05][e % 4]  # CFGRL's advantage over AWR on this env
        for s in range(n_total):
            for t in TEMPERATURES:
                add("awr", env, s, np.nan, t, 0.45 + 0.1 * (1 - np.exp(-t / 4)))
            for w in W_GRID:
                add("cfgrl", env, s, w, np.nan, _cfgrl_curve(w, 0.55 + gap))
            if gc:
                add("gcbc", env, s, np.nan, np.nan, 0.2)
                add("bc", env, s, np.nan, np.nan, 0.1)
                add("hgcbc", env, s, np.nan, np.nan, 0.35)
                for w in W_GRID:
                    add("gc_cfgrl", env, s, w, np.nan, _cfgrl_curve(w, 0.5))
                    add("hcfgrl", env, s, w, np.nan, _cfgrl_curve(w, 0.7))
    return pd.DataFrame(rows)


def transition_batch(n: int, g: torch.Generator, obs_dim: int, action_dim: int, state_gain: float = 1.0
                     ) -> dict[str, torch.Tensor]:
    """Unimodal state-dependent transitions: states N(0, I) (n, obs_dim), actions tanh(state_gain s[:action_dim] +
    0.3 eps) (n, action_dim), reward a_0, never terminal, next states N(0, I)."""
    obs = torch.randn(n, obs_dim, generator=g)
    actions = torch.tanh(state_gain * obs[:, :action_dim] + 0.3 * torch.randn(n, action_dim, generator=g))
    return {"observations": obs, "actions": actions, "rewards": actions[:, 0], "masks": torch.ones(n),
            "next_observations": torch.randn(n, obs_dim, generator=g)}


def bandit_batch(n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """A one-step bandit: states N(0, I) (2-d, irrelevant), 1-d actions at -0.7 or +0.7 (+- 0.05), reward 1 for
    the + mode, terminal."""
    obs = torch.randn(n, 2, generator=g)
    plus = torch.rand(n, generator=g) < 0.5
    actions = torch.where(plus, 0.7, -0.7) + 0.05 * torch.randn(n, generator=g)
    return {"observations": obs, "actions": actions[:, None], "rewards": plus.float(), "masks": torch.zeros(n),
            "next_observations": obs}


def assert_grad_norms_match_a_loop(agent, batch: dict[str, torch.Tensor], use_target: bool) -> None:
    """A CFGRL agent's per_sample_actor_grad_norms equal each sample's own loss gradient by plain autograd, drawn
    with the same labels, noise and times (reseeded)."""
    n = len(batch["observations"])
    agent.reseed(9)
    norms = agent.per_sample_actor_grad_norms(batch)
    assert bool(torch.isfinite(norms).all())
    agent.reseed(9)
    adv = agent.critic.advantage(batch["observations"], batch["actions"], use_target=use_target)
    terms = agent._actor_terms(batch, adv, agent.generator)
    for i in range(n):
        agent.zero_grad()
        row = [x[i:i + 1] for x in (batch["observations"], *terms)]
        agent._sample_losses(agent.actor, *row).sum().backward()
        norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in agent.actor.parameters() if p.grad is not None))
        torch.testing.assert_close(norms[i], norm, rtol=1e-4, atol=1e-6)


# small agents for device tests (tests/test_cuda.py, bench/cuda_parity.py): 2 x 64 nets, batch 64
SMALL = {"hidden": (64, 64), "value_hidden": (64, 64), "batch_size": 64, "flow_steps": 4, "subgoal_steps": 5,
         "num_samples": 4}


def small_config(cls, **overrides):
    fields = cls.Config.__dataclass_fields__
    return cls.Config(**{k: v for k, v in {**SMALL, **overrides}.items() if k in fields})


def method_batch(cls, config, data_path, env: str = "pointmaze-medium-navigate-v0"
                 ) -> tuple[dict[str, torch.Tensor], int, int, int]:
    """A training batch the method accepts (CPU tensors) and its (obs_dim, action_dim, goal_dim): reward methods
    get synthetic transitions, the others a batch of the real sampler of `env`'s file (the pointmaze navigate
    layout by default)."""
    if cls.batch_kind == "transitions":
        return transition_batch(64, torch.Generator().manual_seed(0), 5, 2), 5, 2, 0
    from cfgrl.data.samplers import GoalSampler
    from cfgrl.envs.registry import resolve_env
    from cfgrl.pipeline.train import make_sampler

    sampler = make_sampler(resolve_env(env), data_path, cls, config)
    batch = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in
             sampler.sample(64, np.random.default_rng(0)).items()}
    goal_dim = sampler.goal_source.shape[1] if isinstance(sampler, GoalSampler) else 0
    return batch, sampler.observations.shape[1], sampler.actions.shape[1], goal_dim


def act_inputs(agent, n: int = 16, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor,
                                                              torch.Tensor | None]:
    """observations (n, obs_dim), goals (n, goal_dim) or None, w (n,) cycling 0, 1, 1.5, 3, and each row's noise
    (n, noise_dim) or None: CPU tensors."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, agent.obs_dim, generator=g)
    goals = torch.randn(n, agent.goal_dim, generator=g) if agent.goal_dim else None
    w = torch.tensor([0.0, 1.0, 1.5, 3.0] * math.ceil(n / 4))[:n]
    noise = torch.randn(n, agent.noise_dim, generator=g) if agent.noise_dim else None
    return obs, goals, w, noise
