"""CUDA: every method builds, trains, acts and checkpoints on a GPU, and agrees with the CPU where it must.

Skipped where torch sees no CUDA device (CI has none); `pytest -m cuda` runs them on a GPU machine, and
bench/gpu_check.sh runs them there first. What is exact and what is only close (float rounding of other kernels)
is measured by bench/cuda_parity.py and written down in docs/performance.md ("CUDA").
"""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from cfgrl.envs.registry import resolve_env
from cfgrl.methods import METHODS, method_class
from cfgrl.pipeline.evaluate import evaluate_checkpoint
from cfgrl.pipeline.spec import load_spec
from cfgrl.pipeline.train import load_agent, train, train_group
from tests.synthetic import act_inputs, method_batch, small_config, transition_batch

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
NAVIGATE = "pointmaze-medium-navigate-v0"
def on(device, *tensors):
    return [None if t is None else t.to(device) for t in tensors]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_initialises_as_on_cpu_trains_and_acts_on_cuda(name, tiny_navigate_data):
    """Initialisation draws from a CPU generator, so a CUDA agent starts with the CPU agent's parameters bit for
    bit; three updates on CUDA keep every tensor on the GPU and finite; with the trained weights copied to the
    CPU, acting on the same inputs and noise agrees to float rounding."""
    cls = method_class(name)
    config = small_config(cls)
    batch, obs_dim, action_dim, goal_dim = method_batch(cls, config, tiny_navigate_data)
    cpu_agent = cls(config, obs_dim, action_dim, goal_dim, CPU, seed=5)
    cuda_agent = cls(config, obs_dim, action_dim, goal_dim, CUDA, seed=5)
    start = cpu_agent.state_dict()
    for key, value in cuda_agent.state_dict().items():
        assert value.device.type == "cuda", key
        assert torch.equal(value.cpu(), start[key]), f"{name}: {key} initialised differently on CUDA"

    cuda_batch = {k: v.to(CUDA) for k, v in batch.items()}
    for _ in range(3):
        info = cuda_agent.update(cuda_batch)
    assert cuda_agent.step == 3
    for key, value in info.items():
        assert value.device.type == "cuda" and bool(torch.isfinite(value).all()), (name, key)
    trained = cuda_agent.state_dict()
    assert all(t.device.type == "cuda" and bool(torch.isfinite(t).all()) for t in trained.values()
               if t.is_floating_point())
    assert any(not torch.equal(trained[k].cpu(), start[k]) for k in start), f"{name}: no parameter moved"

    cpu_agent.load_state_dict({k: v.cpu() for k, v in trained.items()})
    cpu_agent.eval(), cuda_agent.eval()
    obs, goals, w, noise = act_inputs(cpu_agent)
    expected = cpu_agent.act(obs, goals, w, noise)
    got = cuda_agent.act(*on(CUDA, obs, goals, w, noise))
    assert got.device.type == "cuda" and got.shape == (16, action_dim)
    assert bool((got.abs() <= 1).all())
    torch.testing.assert_close(got.cpu(), expected, rtol=0, atol=1e-4, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("w", [0.0, 1.0, 2.5])
def test_guided_velocity_known_answer_on_cuda(w):
    """One guided Euler step on CUDA equals noise + v_null + w (v_cond - v_null) from the velocity net: w = 0 the
    null branch, w = 1 the conditional one, w > 1 extrapolation (tests/test_parity.py's check, on the GPU)."""
    cls = method_class("gc_cfgrl")
    agent = cls(cls.Config(flow_steps=1), 11, 3, 4, CUDA, seed=1).eval()
    g = torch.Generator().manual_seed(7)
    obs, goals, noise = (torch.randn(5, d, generator=g).to(CUDA) for d in (11, 4, 3))
    actions = agent.act(obs, goals, w, noise)
    t = torch.zeros(5, 1, device=CUDA)
    with torch.no_grad():
        v_cond = agent.velocity(torch.cat([obs, goals], -1), noise, t)
        v_null = agent.velocity(torch.cat([obs, agent.null_goal.expand(5, -1)], -1), noise, t)
    torch.testing.assert_close(actions, (noise + v_null + w * (v_cond - v_null)).clamp(-1, 1), rtol=1e-5,
                               atol=1e-6)


def _spec(tmp_path, method: str, steps: int, device: str):
    raw = {"name": "t", "seeds": [0, 1],
           "envs": {NAVIGATE: {"data": {"source": "generate", "episodes": 4}}},
           "methods": {method: {"config": {"steps": steps, "batch_size": 32, "hidden": [32, 32], "log_every": 10,
                                           "checkpoint_every": 25, "device": device}}}}
    if method in ("gc_cfgrl", "hcfgrl"):
        raw["methods"][method]["w"] = [0, 1.5]
    path = tmp_path / f"spec-{device}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def _networks(path):
    return torch.load(path, map_location="cpu", weights_only=False)["networks"]


def _assert_same_parameters(a, b, atol: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=atol, msg=lambda m, key=key: f"{key}: {m}")


def test_cuda_training_repeats_resumes_and_groups_like_cpu_training_does(tmp_path, tiny_navigate_data):
    """The pipeline's training on `device: cuda`: the same seed twice, a run killed after its checkpoint and
    resumed, and the seed trained inside a group of two all end with the uninterrupted run's parameters (to 1e-6:
    CUDA kernels need not be bit-reproducible; bench/cuda_parity.py measures whether they are); another seed ends
    elsewhere; the model records the device it trained on."""
    spec = _spec(tmp_path, "gc_cfgrl", steps=60, device="cuda")
    train(spec, "gc_cfgrl", NAVIGATE, 1, tiny_navigate_data, tmp_path / "straight")
    train(spec, "gc_cfgrl", NAVIGATE, 1, tiny_navigate_data, tmp_path / "again")
    train(spec, "gc_cfgrl", NAVIGATE, 1, tiny_navigate_data, tmp_path / "resumed", stop_after=37)
    assert (tmp_path / "resumed" / "_progress" / "checkpoint.pt").exists()
    train(spec, "gc_cfgrl", NAVIGATE, 1, tiny_navigate_data, tmp_path / "resumed")
    train_group(spec, "gc_cfgrl", NAVIGATE, [0, 1], tiny_navigate_data, [tmp_path / "g0", tmp_path / "g1"])
    straight = _networks(tmp_path / "straight" / "model.pt")
    for other in ("again", "resumed", "g1"):
        _assert_same_parameters(straight, _networks(tmp_path / other / "model.pt"), atol=1e-6)
    seed0 = _networks(tmp_path / "g0" / "model.pt")
    assert any((straight[k] - seed0[k]).abs().max() > 1e-3 for k in straight)
    record = torch.load(tmp_path / "straight" / "model.pt", map_location="cpu", weights_only=False)
    assert record["provenance"]["device"].startswith("cuda")


def test_a_model_trained_on_cuda_evaluates_on_cpu_and_on_cuda(tmp_path, tiny_navigate_data):
    """A checkpoint trained on the GPU (a cluster's training job) loads on a CPU-only machine and on the GPU; both
    act alike on the same inputs and noise, and the CUDA agent runs the evaluation engine (every w and both
    splits in one lockstep batch) to complete cells."""
    spec = _spec(tmp_path, "gc_cfgrl", steps=40, device="cuda")
    train(spec, "gc_cfgrl", NAVIGATE, 0, tiny_navigate_data, tmp_path / "run")
    cpu_agent, _ = load_agent(tmp_path / "run" / "model.pt", device=CPU)
    cuda_agent, record = load_agent(tmp_path / "run" / "model.pt", device=CUDA)
    assert record["config"]["device"] == "cuda" and next(cpu_agent.parameters()).device.type == "cpu"
    obs, goals, w, noise = act_inputs(cpu_agent)
    torch.testing.assert_close(cuda_agent.act(*on(CUDA, obs, goals, w, noise)).cpu(),
                               cpu_agent.act(obs, goals, w, noise), rtol=0, atol=1e-4)
    bases = {"test": 10_000, "validation": 20_000}
    cells = evaluate_checkpoint(cuda_agent, resolve_env(NAVIGATE), [1, 2], 1, [0.0, 1.5], bases, train_seed=0)
    assert set(cells) == {(s, w) for s in bases for w in (0.0, 1.5)}
    for cell in cells.values():
        assert len(cell["episodes"]) == 2 and set(cell["per_task"]) == {"1", "2"}
        assert all(1 <= e["length"] <= 1000 and math.isfinite(e["return"]) for e in cell["episodes"])


def test_bf16_autocast_on_cuda_keeps_fp32_weights_and_the_fp32_loss():
    """`precision: bf16` on a GPU (which has bf16 units): weights stay fp32 and the first update's loss agrees with
    fp32 to bf16 rounding (the same noise: both agents draw from a CUDA generator with the same seed)."""
    cls = method_class("cfgrl")
    batch = {k: v.to(CUDA) for k, v in transition_batch(256, torch.Generator().manual_seed(0), 5, 2).items()}
    losses = {}
    for precision in ("fp32", "bf16"):
        agent = cls(cls.Config(hidden=(256, 256), value_hidden=(256, 256), precision=precision), 5, 2, 0, CUDA,
                    seed=0)
        losses[precision] = float(agent.update(batch)["actor/loss"])
        assert all(p.dtype == torch.float32 for p in agent.parameters())
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05) and losses["bf16"] != losses["fp32"]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_trains_vectorised_on_cuda_as_its_solo_cuda_update_to_rounding(name, tiny_navigate_data):
    """A vectorised group of 3 on CUDA (cfgrl.core.vectorised) draws each member's noise from its own CUDA
    generator as its solo update does, and its parameters stay within float rounding of the solo CUDA runs."""
    from cfgrl.core.vectorised import StackedAgents

    cls = method_class(name)
    config = small_config(cls)
    batch, *dims = method_batch(cls, config, tiny_navigate_data)
    batch = {k: v.to(CUDA) for k, v in batch.items()}
    solo = [cls(config, *dims, CUDA, s) for s in range(3)]
    group = StackedAgents([cls(config, *dims, CUDA, s) for s in range(3)])
    for _ in range(3):
        for agent in solo:
            agent.update(batch)
        infos = group.update([batch] * 3)
    assert all(v.device.type == "cuda" for info in infos for v in info.values())
    for a, b in zip(solo, group.agents, strict=True):
        assert torch.equal(a.generator.get_state(), b.generator.get_state())
        sa, sb = a.state_dict(), b.state_dict()
        for key in sa:
            assert sb[key].device.type == "cuda"
            torch.testing.assert_close(sb[key], sa[key], rtol=1e-4, atol=1e-4, msg=key)
