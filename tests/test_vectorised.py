"""Vectorised seed groups (cfgrl.core.vectorised, train.seed_group_mode: vectorised): every method steps as its
solo update does to rounding, with each member's own noise; a member's numbers do not depend on the group's size;
training resumes exactly and repeats run to run; over five seeds the results agree with solo training within the
seeds' spread."""

import numpy as np
import pytest
import torch
import yaml

from cfgrl.core.agent import Agent, TrainConfig
from cfgrl.core.vectorised import StackedAgents, VectorisationError
from cfgrl.methods import METHODS
from cfgrl.pipeline.spec import load_spec
from cfgrl.pipeline.train import load_agent, train, train_group
from tests.synthetic import act_inputs, method_batch, small_config

ENV = "pointmaze-medium-navigate-v0"
CPU = torch.device("cpu")


def _members(cls, config, dims, seeds):
    return [cls(config, *dims, CPU, s) for s in seeds]


def _batches(batch, k, step):
    """k different batches of the shape of `batch` (rows permuted per member and step)."""
    out = []
    for i in range(k):
        order = torch.randperm(len(next(iter(batch.values()))), generator=torch.Generator().manual_seed(99 * step + i))
        out.append({key: v[order] for key, v in batch.items()})
    return out


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_steps_vectorised_as_its_solo_update_to_rounding(name, tiny_navigate_data):
    cls = METHODS[name]
    config = small_config(cls)
    batch, *dims = method_batch(cls, config, tiny_navigate_data)
    seeds = [0, 1, 2]
    solo, stacked = _members(cls, config, dims, seeds), _members(cls, config, dims, seeds)
    group = StackedAgents(stacked)
    for step in range(3):
        batches = _batches(batch, len(seeds), step)
        solo_infos = [agent.update(b) for agent, b in zip(solo, batches, strict=True)]
        infos = group.update(batches)
    for a, b, info_a, info_b in zip(solo, stacked, solo_infos, infos, strict=True):
        assert b.step == a.step == 3
        # the same random draws, in the same order, from the member's own stream
        assert torch.equal(a.generator.get_state(), b.generator.get_state())
        sa, sb = a.state_dict(), b.state_dict()
        for key in sa:
            torch.testing.assert_close(sb[key], sa[key], rtol=1e-4, atol=1e-4, msg=key)
        assert info_a.keys() == info_b.keys()
        for key in info_a:
            torch.testing.assert_close(info_b[key], info_a[key], rtol=1e-3, atol=1e-4, msg=key)
    # the members differ from each other (their own seeds)
    s0, s1 = stacked[0].state_dict(), stacked[1].state_dict()
    assert not all(torch.equal(s0[key], s1[key]) for key in s0)


@pytest.mark.parametrize("name", ["gc_cfgrl", "cfgrl", "hcfgrl", "awr"])
def test_a_vectorised_member_does_not_depend_on_the_group_size(name, tiny_navigate_data):
    cls = METHODS[name]
    config = small_config(cls)
    batch, *dims = method_batch(cls, config, tiny_navigate_data)
    states = {}
    for k in (2, 4):
        group = StackedAgents(_members(cls, config, dims, range(k)))
        for step in range(4):
            group.update(_batches(batch, k, step))
        states[k] = [agent.state_dict() for agent in group.agents[:2]]
    for small, large in zip(states[2], states[4], strict=True):
        assert all(torch.equal(small[key], large[key]) for key in small)


def _spec(tmp_path, method="gc_cfgrl", steps=60, mode="vectorised", seeds=(0, 1, 2), hidden=(32, 32)):
    raw = {"name": "t", "seeds": list(seeds), "train": {"seed_group": len(seeds), "seed_group_mode": mode},
           "envs": {ENV: {"data": {"source": "generate", "episodes": 4}}},
           "methods": {method: {"config": {"steps": steps, "batch_size": 32, "hidden": list(hidden), "log_every": 10,
                                           "checkpoint_every": 25, "device": "cpu"}}}}
    if method == "gc_cfgrl":
        raw["methods"][method]["w"] = [1]
    path = tmp_path / f"spec-{mode}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def _networks(folder):
    return torch.load(folder / "model.pt", weights_only=False)["networks"]


def test_vectorised_training_repeats_run_to_run_resumes_exactly_and_saves_only_its_own_member(tmp_path,
                                                                                             tiny_navigate_data):
    spec = _spec(tmp_path)
    outs = lambda name, seeds=(0, 1, 2): [tmp_path / name / f"seed{s}" for s in seeds]  # noqa: E731
    train_group(spec, "gc_cfgrl", ENV, [0, 1, 2], tiny_navigate_data, outs("a"))
    train_group(spec, "gc_cfgrl", ENV, [0, 1, 2], tiny_navigate_data, outs("b"))
    # killed at step 37, past the checkpoint at 25: the resumed run redoes 26..37 from each member's checkpoint
    train_group(spec, "gc_cfgrl", ENV, [0, 1, 2], tiny_navigate_data, outs("resumed"), stop_after=37)
    assert all((out / "_progress" / "checkpoint.pt").exists() for out in outs("resumed"))
    train_group(spec, "gc_cfgrl", ENV, [0, 1, 2], tiny_navigate_data, outs("resumed"))
    train_group(spec, "gc_cfgrl", ENV, [0, 1], tiny_navigate_data, outs("pair", (0, 1)))  # K = 2
    for s in (0, 1, 2):
        a = _networks(tmp_path / "a" / f"seed{s}")
        for other in ("b", "resumed") + (("pair",) if s < 2 else ()):
            b = _networks(tmp_path / other / f"seed{s}")
            assert all(torch.equal(a[k], b[k]) for k in a), (other, s)
        rows = lambda name, s=s: [line.split(",")[3:] for line in  # noqa: E731  (no timings)
                                  (tmp_path / name / f"seed{s}" / "metrics.csv").read_text().splitlines()]
        assert rows("a") == rows("resumed") and len(rows("a")) == 1 + 6
    # each model file holds its own member only (the stack's slices are cloned when saved) and loads solo
    record = torch.load(tmp_path / "a" / "seed1" / "model.pt", weights_only=False)
    assert record["provenance"]["seed_group"] == {"mode": "vectorised", "seeds": [0, 1, 2]}
    for t in record["networks"].values():
        assert t.untyped_storage().nbytes() == t.numel() * t.element_size()
    agent, _ = load_agent(tmp_path / "a" / "seed1" / "model.pt")
    assert all(torch.equal(v, record["networks"][k]) for k, v in agent.state_dict().items())
    assert not _networks(tmp_path / "a" / "seed0").keys() - record["networks"].keys()


def test_vectorised_and_solo_training_agree_within_the_spread_of_five_seeds(tmp_path, tiny_navigate_data):
    """Same data streams, inits and noise; only the batched kernels' rounding differs. After 300 updates at the
    default network width each seed's vectorised run is far closer to its solo run than two seeds are to each
    other: in final training and validation loss and in the policy's actions."""
    seeds = (0, 1, 2, 3, 4)
    spec_vec = _spec(tmp_path, steps=300, seeds=seeds, hidden=(256, 256, 256))
    spec_solo = _spec(tmp_path, steps=300, seeds=seeds, hidden=(256, 256, 256), mode="exact")
    train_group(spec_vec, "gc_cfgrl", ENV, list(seeds), tiny_navigate_data, [tmp_path / f"vec{s}" for s in seeds])
    for s in seeds:
        train(spec_solo, "gc_cfgrl", ENV, s, tiny_navigate_data, tmp_path / f"solo{s}")

    def final(name, column):
        lines = (tmp_path / name / "metrics.csv").read_text().splitlines()
        header, last = lines[0].split(","), lines[-1].split(",")
        return float(last[header.index(column)])

    for column in ("actor/flow_loss", "val/actor/flow_loss"):
        solo = np.array([final(f"solo{s}", column) for s in seeds])
        vec = np.array([final(f"vec{s}", column) for s in seeds])
        spread = np.std(solo, ddof=1)
        assert spread > 0
        assert np.max(np.abs(vec - solo)) < 0.25 * spread, (column, solo, vec)
        assert abs(vec.mean() - solo.mean()) < spread / np.sqrt(len(seeds)), column
    agents = {name: load_agent(tmp_path / name / "model.pt")[0] for s in seeds for name in (f"vec{s}", f"solo{s}")}
    obs, goals, w, noise = act_inputs(agents["solo0"], n=64)
    actions = {name: agent.act(obs, goals, w, noise) for name, agent in agents.items()}
    same_seed = [float((actions[f"vec{s}"] - actions[f"solo{s}"]).abs().mean()) for s in seeds]
    other_seed = [float((actions[f"solo{s}"] - actions[f"solo{(s + 1) % 5}"]).abs().mean()) for s in seeds]
    assert max(same_seed) < 0.25 * min(other_seed), (same_seed, other_seed)


class _Unplanned(Agent):
    """A toy agent whose loss draws from torch's global RNG (not from its generator)."""

    def __init__(self, config, obs_dim, action_dim, goal_dim, device, seed, shape_from_data=False):
        super().__init__(config, obs_dim, action_dim, goal_dim, device, seed)
        self.net = torch.nn.Linear(obs_dim, action_dim)
        self.shape_from_data = shape_from_data
        self.make_optimizer()

    def loss(self, batch, generator):
        obs = batch["observations"]
        if self.shape_from_data:  # a draw whose shape depends on more than the batch's shape
            noise = torch.randn((int(obs.shape[0] * (1 + self.step % 2)), 1), generator=generator)[: obs.shape[0]]
        else:
            noise = torch.randn(obs.shape[0], 1)
        loss = ((self.net(obs) - batch["actions"] + noise) ** 2).mean()
        return loss, {"actor/loss": loss.detach()}


@pytest.mark.parametrize("shape_from_data", [False, True])
def test_a_loss_that_leaves_the_plan_is_refused(shape_from_data):
    agents = [_Unplanned(TrainConfig(), 3, 2, 0, CPU, s, shape_from_data) for s in (0, 1)]
    batch = {"observations": torch.randn(8, 3), "actions": torch.randn(8, 2)}
    group = StackedAgents(agents)
    with pytest.raises(VectorisationError, match="cannot train vectorised"):
        for _ in range(2):
            group.update([batch, batch])


def test_a_member_whose_optimiser_leaves_out_parameters_is_refused(tiny_navigate_data):
    """A shared critic's follower steps only its own networks; a vectorised group cannot step it."""
    cls = METHODS["cfgrl"]
    config = small_config(cls)
    _, *dims = method_batch(cls, config, tiny_navigate_data)
    agents = _members(cls, config, dims, (0, 1))
    agents[1].make_optimizer(exclude=agents[1].critic)
    with pytest.raises(VectorisationError, match="does not step exactly its trainable parameters"):
        StackedAgents(agents)
