"""One evaluation job per checkpoint: every (w, split) cell of a checkpoint in one lockstep batch gives, cell by
cell, exactly what evaluating each cell alone gives (on CPU), for every kind of policy."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from cfgrl.envs.registry import resolve_env
from cfgrl.methods import method_class
from cfgrl.pipeline.evaluate import evaluate, evaluate_checkpoint

CPU = torch.device("cpu")
BASES = {"test": 10_000, "validation": 20_000}


def agent_for(name: str, obs_dim: int, action_dim: int, goal_dim: int, **config):
    cls = method_class(name)
    fields = cls.Config.__dataclass_fields__
    cfg = cls.Config(**{k: v for k, v in {"hidden": (32, 32), "value_hidden": (8,), "flow_steps": 3,
                                          "subgoal_steps": 5, **config}.items() if k in fields})
    agent = cls(cfg, obs_dim, action_dim, goal_dim, CPU, seed=3)
    with torch.no_grad():  # a policy that reacts to its inputs (untrained nets are nearly constant)
        for p in agent.parameters():
            p.mul_(3.0)
    return agent.eval()


CASES = [  # (method, env, obs, action, goal, w grid, tasks, episodes per task)
    ("gc_cfgrl", "pointmaze-medium-navigate-v0", 2, 2, 2, [0.0, 2.5], [1, 3], 1),
    ("hcfgrl", "pointmaze-medium-navigate-v0", 2, 2, 2, [1.5], [2], 1),
    ("gcbc", "pointmaze-medium-navigate-v0", 2, 2, 2, [None], [1], 1),
    ("cfgrl", "cheetah-run", 17, 6, 0, [0.0, 3.0], [1], 2),
    ("awr", "cheetah-run", 17, 6, 0, [None], [1], 1),
]


@pytest.mark.parametrize("name, env, obs, act, goal, ws, tasks, eps", CASES, ids=[c[0] for c in CASES])
def test_all_cells_in_one_batch_equal_each_cell_alone(name, env, obs, act, goal, ws, tasks, eps):
    info = resolve_env(env)
    agent = agent_for(name, obs, act, goal)
    together = evaluate_checkpoint(agent, info, tasks, eps, ws, BASES, train_seed=4)
    assert set(together) == {(s, w) for s in BASES for w in ws}
    for (split, w), cell in together.items():
        alone = evaluate(agent, info, tasks, eps, w, BASES[split], train_seed=4)
        assert cell["episodes"] == alone["episodes"], (split, w)
        assert cell["return"] == alone["return"] and cell["per_task"] == alone["per_task"]
        assert cell["cells_in_batch"] == len(BASES) * len(ws) and alone["cells_in_batch"] == 1
    if info.kind.has_success:  # an untrained policy fails every maze episode: nothing tells the cells apart
        return
    # the splits are different episodes, and (guided) different w are different cells
    first = ws[0]
    assert together[("test", first)]["episodes"] != together[("validation", first)]["episodes"]
    if len(ws) > 1:
        assert together[("test", ws[0])]["episodes"] != together[("test", ws[-1])]["episodes"]


def test_episodes_of_one_seed_share_their_noise_across_w():
    """Common random numbers: at w = 0 and at w = 0 again (two rows of the same episode) the actions agree, and a
    cell evaluated twice gives the same numbers."""
    info = resolve_env("cheetah-run")
    agent = agent_for("cfgrl", 17, 6, 0)
    cells = evaluate_checkpoint(agent, info, [1], 2, [0.0, 0.0], {"test": 5}, train_seed=0)
    again = evaluate(agent, info, [1], 2, 0.0, 5, train_seed=0)
    assert cells[("test", 0.0)]["episodes"] == again["episodes"]
    other_seed = evaluate(agent, info, [1], 2, 0.0, 5, train_seed=1)
    assert other_seed["episodes"] != again["episodes"]
    assert np.isnan(again["success"]) and all(e["success"] is None for e in again["episodes"])


@pytest.mark.parametrize("name, obs, act, goal, hidden", [
    ("gc_cfgrl", 2, 2, 2, (256, 256, 256)),  # the default spec's pointmaze policy
    ("cfgrl", 17, 6, 0, (256, 256)),  # the default spec's cheetah-run policy
    ("gcbc", 2, 2, 2, (256, 256, 256)),
    ("gc_cfgrl", 29, 8, 29, (512, 512, 512, 512)),  # paper size
])
def test_a_rows_actions_do_not_depend_on_its_batch_at_real_sizes(name, obs, act, goal, hidden):
    """The property every cell relies on, at the sizes the specs use: the same row (state, goal, w, noise) gets the
    same action bits whatever rows share its batch and wherever it sits in it (batches of 1 to 700 rows, random
    subsets in random orders)."""
    agent = agent_for(name, obs, act, goal, hidden=hidden, flow_steps=4)
    g = torch.Generator().manual_seed(0)
    n = 700
    o, gl = torch.randn(n, obs, generator=g), torch.randn(n, goal, generator=g) if goal else None
    w = torch.tensor([0.0, 1.0, 1.5, 3.0])[torch.randint(0, 4, (n,), generator=g)]
    noise = torch.randn(n, agent.noise_dim, generator=g) if agent.noise_dim else None

    def act_rows(rows):
        return agent.act(o[rows], gl[rows] if gl is not None else None,
                         w[rows] if agent.guided else 1.0, noise[rows] if noise is not None else None)

    reference = act_rows(torch.arange(n))
    for m in (1, 17, 33, 64, 65, 130, 301, 699):
        rows = torch.randperm(n, generator=g)[:m]
        assert torch.equal(act_rows(rows), reference[rows]), f"{name}: a batch of {m} rows changed some row's action"


@pytest.mark.parametrize("name, env, obs, act, goal, ws, tasks, eps, workers", [
    ("gc_cfgrl", "pointmaze-medium-navigate-v0", 2, 2, 2, [0.0, 2.5], [1, 3], 1, 2),
    ("cfgrl", "cheetah-run", 17, 6, 0, [0.0, 3.0], [1], 2, 3),  # 4 groups over 3 processes: uneven shares
], ids=["gc_cfgrl", "cfgrl"])
def test_simulator_processes_give_the_numbers_of_one_process(name, env, obs, act, goal, ws, tasks, eps, workers):
    info = resolve_env(env)
    agent = agent_for(name, obs, act, goal)
    serial = evaluate_checkpoint(agent, info, tasks, eps, ws, BASES, train_seed=4)
    sharded = evaluate_checkpoint(agent, info, tasks, eps, ws, BASES, train_seed=4, workers=workers)
    assert list(sharded) == list(serial)
    for key, cell in serial.items():
        assert sharded[key]["episodes"] == cell["episodes"], key
        assert sharded[key]["return"] == cell["return"] and sharded[key]["per_task"] == cell["per_task"]


class CountdownEpisode:
    """A toy episode of `length` steps whose observation is (episode id, steps taken, last action)."""

    def __init__(self, episode_id: int, length: int) -> None:
        self.id, self.length, self.t = episode_id, length, 0

    def step(self, action):
        self.t += 1
        done = self.t >= self.length
        return np.array([self.id, self.t, action[0]], np.float32), float(self.id), done, done and self.id % 2 == 0

    def close(self) -> None:
        pass


def countdown_group(first_id: int, lengths: tuple[int, ...]):
    episodes = [CountdownEpisode(first_id + i, n) for i, n in enumerate(lengths)]
    first = np.array([[e.id, 0, 0] for e in episodes], np.float32)
    return episodes, first, None, f"group from {first_id}"


def test_process_steps_map_rows_to_their_episodes_as_episodes_end():
    """Groups of uneven sizes and lengths over 2 processes: each row gets its own episode's observation, rows drop
    out as their episodes end, and the results are those of stepping in this process."""
    from functools import partial

    from cfgrl.envs.rollout import ProcessSteps, SerialSteps, run_lockstep

    groups = [(0, (3, 1, 4)), (3, (1,)), (4, (5, 9, 2, 6)), (8, (5,))]
    builders = [partial(countdown_group, first, lengths) for first, lengths in groups]

    def policy(obs, rows):
        assert np.array_equal(obs[:, 0], rows)  # every row sees its own episode
        return (obs[:, 1:2] + 0.5 * rows[:, None]).astype(np.float32)

    steps = ProcessSteps(builders, workers=2)
    assert [extra for _, _, extra in steps.groups] == [f"group from {first}" for first, _ in groups]
    first = np.concatenate([g[0] for g in steps.groups])
    sharded = run_lockstep(steps, first, policy)
    built = [build() for build in builders]
    serial = run_lockstep(SerialSteps([e for b in built for e in b[0]]), first, policy)
    lengths = [n for _, ls in groups for n in ls]
    assert sharded.lengths.tolist() == serial.lengths.tolist() == lengths
    assert sharded.returns.tolist() == serial.returns.tolist() == [i * n for i, n in enumerate(lengths)]
    assert sharded.success.tolist() == serial.success.tolist() == [i % 2 == 0 for i in range(len(lengths))]


def test_a_failing_simulator_process_raises_its_error_here():
    from functools import partial

    from cfgrl.envs.rollout import ProcessSteps

    with pytest.raises(RuntimeError, match="simulator worker failed(.|\n)*invalid literal"):
        ProcessSteps([partial(countdown_group, 0, (2,)), partial(int, "not a number")], workers=2)
    with pytest.raises(RuntimeError, match=r"simulator worker exited unexpectedly \(exit codes \[.*3"):
        ProcessSteps([partial(countdown_group, 0, (2,)), partial(os._exit, 3)], workers=2)


class LimitedKind(type(resolve_env("cheetah-run").kind)):  # type: ignore[misc]
    """A kind of its own (as bench/bench_eval.py makes): not one of the registry's instances."""

    def __init__(self, limit: int) -> None:
        self.limit = limit


def test_env_kinds_pickle_as_their_registry_instance_and_other_kinds_by_value():
    """What a simulator process receives: the registry's kinds as themselves (identity checks hold), others whole."""
    import pickle
    from dataclasses import replace

    info = resolve_env("cheetah-run")
    assert pickle.loads(pickle.dumps(info)).kind is info.kind
    limited = pickle.loads(pickle.dumps(replace(info, kind=LimitedKind(7)))).kind
    assert type(limited) is LimitedKind and limited.limit == 7 and limited is not info.kind
