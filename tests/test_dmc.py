"""dm_control tasks stepped directly: flat observations, custom ExORL tasks, relabelling, batched evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from cfgrl.envs.dmc import TASKS, evaluate, make_env, parse_task, relabel_rewards

EXPECTED = {  # obs_dim, action_dim, episode steps (dm_control 1.0.50)
    "walker": (24, 6, 1000), "quadruped": (78, 12, 1000), "cheetah": (17, 6, 1000), "jaco": (42, 9, 250),
}


def test_task_names():
    assert set(TASKS) == {"walker-stand", "walker-walk", "walker-run", "quadruped-walk", "quadruped-run",
                          "cheetah-run", "cheetah-run-backward", "jaco-reach-top-left", "jaco-reach-top-right"}
    assert parse_task("cheetah_run_backward") == parse_task("cheetah-run-backward") == ("cheetah", "run_backward")
    with pytest.raises(KeyError, match="walker-stand"):
        parse_task("walker-fly")


@pytest.mark.parametrize("name", TASKS)
def test_episode_shapes_and_relabelling(name):
    env = make_env(name, seed=1)
    obs_dim, action_dim, steps = EXPECTED[env.domain]
    assert (env.obs_dim, env.action_dim, env.episode_steps) == (obs_dim, action_dim, steps)
    obs = env.reset(seed=5)
    assert obs.shape == (obs_dim,) and obs.dtype == np.float32
    rng = np.random.default_rng(0)
    rewards, states, done, n = [], [], False, 0
    while not done:
        obs, r, done = env.step(rng.uniform(-1.5, 1.5, action_dim))  # out-of-range actions are clipped
        rewards.append(r)
        states.append(env.physics_state())
        n += 1
    assert n == steps and obs.shape == (obs_dim,) and np.isfinite(obs).all()
    sample = np.arange(0, steps, 7)  # every 7th step keeps the test short
    relabelled = relabel_rewards(name, np.asarray(states)[sample])
    np.testing.assert_allclose(relabelled, np.asarray(rewards, np.float32)[sample], rtol=0, atol=1e-6)
    # the same seed replays the same initial state
    env.reset(seed=5)
    first = env.physics_state()
    env.reset(seed=5)
    np.testing.assert_array_equal(env.physics_state(), first)


def test_cheetah_run_backward_rewards_negative_speed():
    fwd, back = make_env("cheetah-run", 0), make_env("cheetah-run-backward", 0)
    state = fwd.physics_state()
    nq = fwd.physics.model.nq
    for v, expect_fwd, expect_back in ((-5.0, 0.0, 0.5), (5.0, 0.5, 0.0), (-12.0, 0.0, 1.0), (0.0, 0.0, 0.0)):
        s = state.copy()
        s[nq:] = 0.0
        s[nq] = v  # rootx velocity: the whole body moves at v
        assert fwd.reward_of_state(s) == pytest.approx(expect_fwd, abs=1e-6)
        assert back.reward_of_state(s) == pytest.approx(expect_back, abs=1e-6)
    # the ground plane is drawn behind the start (ExORL's model); physics otherwise identical
    assert back.physics.named.model.geom_size["ground"][0] == 200
    assert fwd.physics.model.nq == back.physics.model.nq


@pytest.mark.parametrize("name, target", [("jaco-reach-top-left", (-0.09, 0.09, 0.001)),
                                          ("jaco-reach-top-right", (0.09, 0.09, 0.001))])
def test_jaco_reach_targets_and_reward(name, target):
    from dm_control.utils import rewards

    env = make_env(name, seed=0)
    tcp = env.task._hand.tool_center_point
    for seed in range(5):
        env.reset(seed=seed)
        pos = env.physics.bind(tcp).xpos.copy()
        assert (pos[:2] >= -0.21).all() and (pos[:2] <= 0.21).all() and 0.01 <= pos[2] <= 0.41  # spawn box
        dist = np.linalg.norm(pos - np.asarray(target))
        expected = rewards.tolerance(dist, bounds=(0, 0.05), margin=0.05)
        assert env.reward_of_state(env.physics_state()) == pytest.approx(expected, abs=1e-9)


def test_batched_evaluation_is_deterministic_and_batch_independent():
    w = np.random.default_rng(0).normal(size=(6, 17)) * 0.3
    # (N, 17) -> (N, 6), row by row: a batched matmul may round differently for different batch sizes
    policy = lambda obs: np.stack([np.tanh(w @ o) for o in obs])
    a = evaluate("cheetah-run", policy, num_episodes=3, seed=11, max_steps=200)
    b = evaluate("cheetah-run", policy, num_episodes=3, seed=11, max_steps=200)
    c = evaluate("cheetah-run", policy, num_episodes=2, seed=11, max_steps=200)
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_array_equal(a.returns[:2], c.returns)
    assert a.returns.shape == (3,) and (a.lengths == 200).all() and len(set(a.returns)) == 3
    # the same as stepping one env by hand
    env = make_env("cheetah-run", int(a.seeds[1]))
    obs, total = env.reset(int(a.seeds[1])), 0.0
    for _ in range(200):
        obs, r, _ = env.step(policy(obs[None])[0])
        total += r
    assert total == pytest.approx(a.returns[1], abs=1e-9)
    # two settings on identical episodes in one batch: rows [0, 3) use scale 1, rows [3, 6) scale 0
    both = evaluate("cheetah-run", lambda o: policy(o) * np.repeat([1.0, 0.0], 3)[:, None], num_episodes=3, seed=11,
                    max_steps=200, repeats=2)
    np.testing.assert_array_equal(both.returns[:3], a.returns)
    np.testing.assert_array_equal(both.seeds[:3], both.seeds[3:])
    zero = evaluate("cheetah-run", lambda o: np.zeros((len(o), 6)), num_episodes=3, seed=11, max_steps=200)
    np.testing.assert_array_equal(both.returns[3:], zero.returns)
    full = evaluate("walker-stand", lambda o: np.zeros((len(o), 6)), num_episodes=2, seed=0)
    assert (full.lengths == 1000).all()
    with pytest.raises(ValueError, match="policy returned shape"):
        evaluate("cheetah-run", lambda o: np.zeros((len(o), 5)), num_episodes=2, seed=0, max_steps=3)
