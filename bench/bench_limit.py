"""How close training updates and evaluation policies run to the machine's matrix-product ceiling.

For every method entry of a spec (default: specs/default.yaml) at the spec's sizes, in one process:
- training: one update (forward, backward, optimiser step) on a synthetic batch of the env's shapes. Its FLOPs
  are counted (torch.utils.flop_counter: the matrix products), and every matrix product it makes is recorded
  with its shapes and strides (a dispatch mode) and replayed alone on the same threads. The ceiling of the
  update is the time those products take alone (the same-shape matmul ceiling, FLOP-weighted); the ratio is
  ceiling time / update time (1.0: nothing but matrix products at full speed). The IQL entries that
  `train.share_critic` trains together are measured as one job too (row `a+b+c`).
- evaluation: one `act` call of a checkpoint job's lockstep batch (every w x episodes of the test split, both
  branches where the w needs them), the same ratio (FLOPs per env step are those of one call).
Updates, acts and ceilings are timed interleaved in rounds (`--rounds`), each figure the median over rounds, so a
slow spell of the machine hits all of them alike. Where a row misses its target (training: 0.8 for gcbc and
gc_cfgrl, 0.6 for the IQL methods; evaluation: 0.5), the table after it says where the rest of the time goes
(torch.profiler, self CPU time grouped by kind of op).

    python bench/bench_limit.py --json limit.json                 # about 2 minutes on 2 cores
    python bench/bench_limit.py --threads 2 --rounds 7 --spec specs/default.yaml
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cfgrl  # noqa: E402,F401  (first: the CPU-kernel caps before torch loads)

# isort: split

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from cfgrl.core.iql import shared_critic_update  # noqa: E402
from cfgrl.pipeline.provenance import cpu_info  # noqa: E402
from cfgrl.pipeline.spec import load_spec  # noqa: E402
from cfgrl.pipeline.train import build_agent  # noqa: E402

MATMULS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default,
           torch.ops.aten.baddbmm.default}
TARGETS = {"train": {"gcbc": 0.8, "gc_cfgrl": 0.8}, "train_default": 0.6, "eval": 0.5}
# op name -> kind, for the where-the-time-goes table
KINDS = {"mm": "matmul", "addmm": "matmul", "bmm": "matmul", "baddbmm": "matmul", "gelu": "activation",
         "gelu_backward": "activation", "mish": "activation", "mish_backward": "activation", "silu": "activation",
         "sigmoid": "activation", "tanh": "activation", "native_layer_norm": "layer norm",
         "native_layer_norm_backward": "layer norm", "_fused_adamw_": "optimiser", "lerp_": "optimiser",
         "_foreach_lerp_": "optimiser", "copy_": "copies", "_to_copy": "copies", "cat": "copies", "stack": "copies",
         "repeat": "copies", "index": "copies", "embedding": "copies", "embedding_dense_backward": "copies"}
# synthetic shapes of the default spec's envs: (obs_dim, action_dim, goal_dim)
SHAPES = {"pointmaze-medium-navigate-v0": (2, 2, 2), "cheetah-run": (17, 6, 0)}


class _RecordMatmuls(TorchDispatchMode):
    """Records (op, [(shape, stride) of each tensor argument], the other arguments) of every matrix product."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, list[tuple[tuple[int, ...], tuple[int, ...]]], dict[str, Any]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in MATMULS:
            self.calls.append((func, [(tuple(a.shape), tuple(a.stride())) for a in args if isinstance(a, torch.Tensor)],
                               dict(kwargs)))
        return func(*args, **kwargs)


def _replayer(calls: list[Any]):
    """A function that makes every recorded matrix product once, on fresh tensors of the recorded layouts."""
    tensors = [[torch.empty_strided(shape, stride).normal_() for shape, stride in layout] for _, layout, _ in calls]

    def run() -> None:
        for (func, _, kwargs), args in zip(calls, tensors, strict=True):
            func(*args, **kwargs)

    return run


def _median_time(fn, n: int) -> float:
    """Seconds per call of fn, over n calls (after 2 untimed)."""
    fn(), fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _profile(fn, n: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Self CPU ms per call by kind of op (KINDS; the rest 'other ops'), and by op (the 8 largest), largest
    first."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            fn()
    kinds: dict[str, float] = defaultdict(float)
    ops: dict[str, float] = {}
    for event in prof.key_averages():
        ms = event.self_cpu_time_total / 1e3 / n
        if "TanhGELUFunction" in event.key:  # cfgrl.core.fast_gelu's C kernel under autograd (no event without)
            kinds["activation"] += ms
            ops[event.key] = ms
            continue
        if not event.key.startswith("aten::"):
            continue
        kinds[KINDS.get(event.key.removeprefix("aten::"), "other ops")] += ms
        ops[event.key] = ms
    return sorted(kinds.items(), key=lambda kv: -kv[1]), sorted(ops.items(), key=lambda kv: -kv[1])[:8]


def synthetic_batch(agent: Any, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A batch of the keys the agent trains on (transitions, goals or subgoals), uniform actions in [-1, 1]."""
    obs = torch.randn(batch_size, agent.obs_dim, generator=generator)
    batch = {"observations": obs, "actions": torch.rand(batch_size, agent.action_dim, generator=generator) * 2 - 1}
    kind = type(agent).batch_kind
    if kind == "transitions":
        batch.update({"rewards": torch.rand(batch_size, generator=generator), "masks": torch.ones(batch_size),
                      "next_observations": obs + 0.1 * torch.randn(obs.shape, generator=generator),
                      "returns_to_go": torch.rand(batch_size, generator=generator)})
    else:
        batch["goals"] = torch.randn(batch_size, agent.goal_dim, generator=generator)
        if kind == "subgoals":
            batch["subgoals"] = torch.randn(batch_size, agent.goal_dim, generator=generator)
    return batch


def workloads(spec: Any) -> list[dict[str, Any]]:
    """One training workload per method entry (and per shared-critic job), one evaluation workload per entry."""
    out = []
    g = torch.Generator().manual_seed(0)
    cpu = torch.device("cpu")
    for labels, env, _ in {(labels, env, None) for labels, env, _ in spec.training_jobs()}:
        obs_dim, action_dim, goal_dim = SHAPES.get(env, (8, 4, 8))
        entries = [spec.methods[label] for label in labels]
        agents = [build_agent(e.registry, e.config, obs_dim, action_dim, goal_dim, cpu, seed=0) for e in entries]
        for agent in agents[1:]:
            agent.share_critic(agents[0])
        batch = synthetic_batch(agents[0], entries[0].config.batch_size, g)
        update = (lambda a=agents, b=batch: shared_critic_update(a, b)) if len(agents) > 1 else \
            (lambda a=agents[0], b=batch: a.update(b))
        name = "+".join(labels)
        target = TARGETS["train"].get(labels[0], TARGETS["train_default"]) if len(labels) == 1 else \
            TARGETS["train_default"]
        out.append({"kind": "train", "name": name, "env": env, "fn": update, "target": target,
                    "size": f"{list(entries[0].config.hidden)}, batch {entries[0].config.batch_size}"})
    splits_of = {label: splits for label, splits, _ in spec.evaluation_jobs()}
    for label, entry in spec.methods.items():
        for env in entry.envs[:1]:
            obs_dim, action_dim, goal_dim = SHAPES.get(env, (8, 4, 8))
            agent = build_agent(entry.registry, entry.config, obs_dim, action_dim, goal_dim, cpu, seed=0)
            agent.eval()
            splits = splits_of.get(label, ("test",))  # a checkpoint job steps every split's episodes together
            episodes = spec.envs[env].episodes_per_task * max(1, len(spec.envs[env].tasks)) * len(splits)
            ws = list(entry.w) if entry.w is not None else [1.0]
            rows = episodes * len(ws)
            obs = torch.randn(rows, obs_dim, generator=g)
            goals = torch.randn(rows, goal_dim, generator=g) if goal_dim else None
            w = torch.tensor([x for x in ws for _ in range(episodes)], dtype=torch.float32)
            noise = torch.randn(rows, agent.noise_dim, generator=g) if agent.noise_dim else None
            act = (lambda a=agent, o=obs, gl=goals, ww=w, nz=noise: a.act(o, gl, ww, nz))
            out.append({"kind": "eval", "name": label, "env": env, "fn": act, "target": TARGETS["eval"],
                        "size": f"{rows} rows ({len(ws)} w x {episodes} episodes, {'+'.join(splits)})"})
    return sorted(out, key=lambda w: (w["kind"] != "train", w["env"], w["name"]))


def measure(items: list[dict[str, Any]], rounds: int, seconds: float) -> None:
    """Fill each workload's flops, time_s, ceiling_s (medians over interleaved rounds) and ratio."""
    for item in items:
        recorder = _RecordMatmuls()
        item["fn"]()  # warm up (first-call allocations, lazy state)
        with recorder:
            item["fn"]()
        item["flops"] = _flops(item["fn"])
        item["replay"] = _replayer(recorder.calls)
        item["matmuls"] = len(recorder.calls)
        one = _median_time(item["fn"], 3)
        item["n"] = max(3, int(seconds / max(one, 1e-6)))
        item["times"], item["ceilings"] = [], []
    for _ in range(rounds):
        for item in items:
            item["times"].append(_median_time(item["fn"], item["n"]))
            item["ceilings"].append(_median_time(item["replay"], item["n"]))
    for item in items:
        item["time_s"] = statistics.median(item["times"])
        item["ceiling_s"] = statistics.median(item["ceilings"])
        item["ratio"] = item["ceiling_s"] / item["time_s"]
        item["gflops"] = item["flops"] / item["time_s"] / 1e9
        item["ceiling_gflops"] = item["flops"] / item["ceiling_s"] / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default="specs/default.yaml")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the default spec's jobs use 1)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=1.0, help="timed seconds per workload and round")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    spec = load_spec(args.spec)
    items = workloads(spec)
    measure(items, args.rounds, args.seconds)
    cpu = cpu_info()
    print(f"{cpu.get('model')} ({cpu.get('family_model_stepping')}, {cpu.get('torch_capability')}), "
          f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds (medians), spec {args.spec}")
    print(f"{'kind':5} {'workload':24} {'env':29} {'MFLOP':>8} {'ms':>8} {'GFLOP/s':>8} {'ceiling':>8} "
          f"{'ratio':>6} {'target':>6}  size")
    rows = []
    for item in items:
        ok = item["ratio"] >= item["target"]
        print(f"{item['kind']:5} {item['name']:24} {item['env']:29} {item['flops'] / 1e6:8.1f} "
              f"{item['time_s'] * 1e3:8.2f} {item['gflops']:8.1f} {item['ceiling_gflops']:8.1f} "
              f"{item['ratio']:6.2f} {item['target']:6.2f}{'' if ok else ' MISS'}  {item['size']}")
        rows.append({k: item[k] for k in ("kind", "name", "env", "size", "flops", "time_s", "ceiling_s", "ratio",
                                          "target", "gflops", "ceiling_gflops", "matmuls", "times", "ceilings")})
    missed = [item for item in items if item["ratio"] < item["target"]]
    for item in missed:
        parts, ops = _profile(item["fn"], max(3, item["n"] // 2))
        total = sum(ms for _, ms in parts)
        print(f"\nwhere the time goes, {item['kind']} {item['name']} (self CPU ms per call under the profiler, "
              f"{total:.2f} ms in aten ops; matmul alone at its ceiling: {item['ceiling_s'] * 1e3:.2f} ms):")
        for kind, ms in parts:
            print(f"  {kind:12} {ms:8.2f} ms  {ms / total:6.1%}")
        print("  largest ops: " + ", ".join(f"{op.removeprefix('aten::')} {ms:.2f}" for op, ms in ops))
        row = next(r for r in rows if r["kind"] == item["kind"] and r["name"] == item["name"])
        row["profile_ms"], row["largest_ops_ms"] = dict(parts), dict(ops)
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu, "machine": platform.machine(),
                                         "torch": torch.__version__, "threads": args.threads, "rows": rows},
                                        indent=1))


if __name__ == "__main__":
    main()
