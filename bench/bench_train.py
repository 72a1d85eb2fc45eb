"""Training throughput of seed groups: k seeds in one process vs k processes, plus in-process ceilings.

What is measured, for k in {1, 2, 4, 8} seeds, each precision (TrainConfig.precision fp32 | bf16) and each size:
- 'default': goal-conditioned CFGRL (gc_cfgrl), 3 x 256, batch 256, as specs/default.yaml's x-gc block, on
  pointmaze-medium-navigate-v0's shapes (obs 2, action 2, goal 2);
- 'paper': gc_cfgrl 4 x 512, batch 1024 (the paper's OGBench size), on antmaze-large-navigate-v0's shapes
  (obs 29, action 8, goal 29).
The data is a synthetic OGBench-layout file (random-walk states, uniform actions, episodes of 1000 steps) and its
-val.npz twin in a temporary folder; a small spec file there names the method and env. Each timed run is the
real training command, `python -m cfgrl train` (cfgrl.pipeline.train.train_group: one data load, one sampler,
the members stepped in turn; metrics.csv, validation losses every log interval, model.pt, the grad-norm
diagnostic of 512 samples at the end), started as a subprocess:
  (i) group: one process training the k seeds (--seed 0,...,k-1) on --cores torch threads;
  (ii) separate: k processes, one seed each, run concurrently, each on max(1, cores // k) threads (for k = 1 this
       is the group run itself and is not repeated);
  (iii) vectorised: one process training the k seeds as one batched update (train.seed_group_mode: vectorised,
       cfgrl.core.vectorised.StackedAgents), on --cores threads (k >= 2).
Reported: seed-updates/s end to end = k * steps / wall seconds from launch to the last exit (process start-up,
imports, data load, and the model/diagnostic writes included), the CPU seconds the children used
(resource.getrusage(RUSAGE_CHILDREN)), and in-loop seed-updates/s = the sum over seeds of the seed's mean
steps_per_s of its metric rows after the first (training loop only).
In-process ceilings (no subprocess, no files):
- agent_loop: k gc_cfgrl agents built as training builds them, batches from the suite's GoalSampler on the same
  synthetic data, stepped in turn (what the group loop does, without logging); on CUDA also agent_loop+compile
  (torch.compile of each agent's update, compilation untimed; at the smallest k only, to bound compile time);
- stacked: the same k agents and batches stepped by one StackedAgents update (the vectorised group's loop without
  logging);
- vmap_ensemble (UPPER BOUND, NOT USED BY TRAINING): k plain 3 x 256 GELU MLPs (input obs + goal, output action)
  doing an MSE regression step with a hand-written Adam, stacked with torch.func.stack_module_state and one
  vmap(grad) call per step, against the same functional step looped over the k models (vmap_loop); on CUDA also
  vmap_ensemble+compile (at the largest k only). This shows what batching seeds into one kernel could give on a
  bare MLP; 'stacked' and 'vectorised' measure what the suite's vectorised groups get on the real loss.

    python bench/bench_train.py --json train.json                          # CPU, all k, fp32+bf16, both sizes
    python bench/bench_train.py --quick --json train-quick.json            # k 1,2; fp32; default size; 20 steps
    python bench/bench_train.py --device cuda --json train-cuda.json
    python bench/bench_train.py --sizes default --precisions fp32 --ks 1,2 --steps 500 --modes group,separate

Default steps per seed: 5000 at 'default' size, 300 at 'paper' size (estimated from the FLOPs at ~50 GFLOP/s: about
30-60 s per seed on one free AVX2 core at fp32, not measured on a free machine; bf16 is several times slower on CPUs
without bf16 units). A k-seed group trains
k x steps updates, so the full default grid takes a long time on a small machine: narrow it with the flags.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cfgrl.methods import method_class  # noqa: E402
from cfgrl.pipeline.provenance import cpu_info  # noqa: E402

METHOD = "gc_cfgrl"
# size -> (env whose shapes the synthetic data has, (obs_dim, action_dim), hidden, batch size, default steps)
SIZES: dict[str, tuple[str, tuple[int, int], tuple[int, ...], int, int]] = {
    "default": ("pointmaze-medium-navigate-v0", (2, 2), (256,) * 3, 256, 5000),
    "paper": ("antmaze-large-navigate-v0", (29, 8), (512,) * 4, 1024, 300),
}
KS = [1, 2, 4, 8]
EPISODE = 1000  # steps per synthetic episode
TRAIN_EPISODES, VAL_EPISODES = 50, 5
VMAP_HIDDEN, VMAP_BATCH = (256, 256, 256), 256


def meta(device: torch.device, cores: int) -> dict[str, Any]:
    """What ran the benchmark: torch, threads, CPU model, device, load average."""
    return {"torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
            "cores_used": cores, "cpu": cpu_info(), "device": str(device),
            "cuda": torch.cuda.get_device_name(0) if device.type == "cuda" else None, "loadavg": os.getloadavg()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------------ data and spec

def make_data(path: Path, obs_dim: int, action_dim: int, episodes: int, seed: int) -> None:
    """A synthetic OGBench-layout file (observations, actions, terminals): smooth random-walk states."""
    rng = np.random.default_rng(seed)
    n = episodes * EPISODE
    terminals = np.zeros(n, dtype=np.float32)
    terminals[EPISODE - 1 :: EPISODE] = 1.0
    obs = np.cumsum(rng.normal(scale=0.05, size=(n, obs_dim)).astype(np.float32), axis=0)
    np.savez(path, observations=obs, actions=rng.uniform(-1, 1, (n, action_dim)).astype(np.float32),
             terminals=terminals)


def write_inputs(folder: Path, size: str, precision: str, steps: int, device: str, group_mode: str = "exact"
                 ) -> tuple[Path, Path]:
    """The synthetic dataset (and its -val twin) and a one-method spec for `size`, `precision` and seed-group
    mode."""
    env, (obs_dim, action_dim), hidden, batch, _ = SIZES[size]
    data = folder / f"{env}.npz"
    if not data.exists():
        make_data(data, obs_dim, action_dim, TRAIN_EPISODES, seed=0)
        make_data(folder / f"{env}-val.npz", obs_dim, action_dim, VAL_EPISODES, seed=1)
    source = {"source": "generate", "episodes": TRAIN_EPISODES} if env.startswith("pointmaze") else \
        {"source": "download"}  # never made: the file above is given to `cfgrl train --data`
    spec = {"name": f"bench-train-{size}-{precision}", "seeds": [0], "train": {"seed_group_mode": group_mode},
            "envs": {env: {"data": source}},
            "methods": {METHOD: {"w": [3], "config": {
                "steps": steps, "batch_size": batch, "hidden": list(hidden), "precision": precision,
                "device": device, "log_every": max(1, steps // 4), "checkpoint_every": 10_000}}}}
    path = folder / f"spec-{size}-{precision}-{group_mode}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return data, path


# ------------------------------------------------------------------------------------------------ subprocess runs

def child_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def train_command(spec: Path, env: str, data: Path, seeds: list[int], out_root: Path, threads: int) -> list[str]:
    return [sys.executable, "-m", "cfgrl", "train", "--spec", str(spec), "--method", METHOD, "--env", env,
            "--data", str(data), "--seed", ",".join(map(str, seeds)), "--out",
            *(str(out_root / METHOD / env / f"seed{s}") for s in seeds),
            "--threads", str(threads)]


def in_loop_rate(out_root: Path, env: str, seeds: list[int]) -> float | None:
    """Sum over seeds of the mean steps_per_s of each seed's metric rows after the first (None: too few rows)."""
    total = 0.0
    for s in seeds:
        with open(out_root / METHOD / env / f"seed{s}" / "metrics.csv") as f:
            rates = [float(r["steps_per_s"]) for r in csv.DictReader(f)]
        if len(rates) < 2:
            return None
        total += statistics.mean(rates[1:])
    return total


def run_processes(commands: list[list[str]], logs: list[Path], timeout: float) -> tuple[float, float, list[str]]:
    """Start every command at once (output to its log file); wall seconds until the last exits, the children's CPU
    seconds, errors."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(":"))
    cpu0, t0 = child_cpu_s(), time.perf_counter()
    procs = []
    for command, log in zip(commands, logs, strict=True):
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            procs.append(subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, env=env))
    errors = []
    for p, log in zip(procs, logs, strict=True):
        try:
            p.wait(timeout=max(1.0, timeout - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            errors.append(f"timed out after {timeout:.0f} s")
            continue
        if p.returncode != 0:
            errors.append(f"exit {p.returncode}: {' '.join(log.read_text().strip().splitlines()[-3:])[:400]}")
    return time.perf_counter() - t0, child_cpu_s() - cpu0, errors


def subprocess_row(folder: Path, size: str, precision: str, mode: str, k: int, steps: int, cores: int,
                   device: str, timeout: float) -> dict[str, Any]:
    env = SIZES[size][0]
    data, spec = write_inputs(folder, size, precision, steps, device, "vectorised" if mode == "vectorised" else "exact")
    out_root = folder / f"out-{size}-{precision}-{mode}-k{k}"
    seeds = list(range(k))
    if mode in ("group", "vectorised"):
        threads = cores
        commands = [train_command(spec, env, data, seeds, out_root, threads)]
    else:
        threads = max(1, cores // k)
        commands = [train_command(spec, env, data, [s], out_root, threads) for s in seeds]
    logs = [out_root / f"log{i}.txt" for i in range(len(commands))]
    wall, cpu, errors = run_processes(commands, logs, timeout)
    row: dict[str, Any] = {"size": size, "precision": precision, "mode": mode, "k": k, "steps_per_seed": steps,
                           "processes": len(commands), "threads_per_process": threads, "wall_s": wall,
                           "child_cpu_s": cpu}
    if errors:
        row["error"] = "; ".join(errors)
        return row
    row["seed_updates_per_s"] = k * steps / wall
    row["in_loop_seed_updates_per_s"] = in_loop_rate(out_root, env, seeds)
    return row


# ------------------------------------------------------------------------------------------------ in-process

def agent_loop_row(folder: Path, size: str, precision: str, k: int, steps: int, device: torch.device,
                   compiled: bool, warmup: int = 3, stacked: bool = False) -> dict[str, Any]:
    """k agents stepped in turn on batches from the suite's sampler (the group loop without logging); `stacked`:
    stepped as one StackedAgents update instead."""
    from cfgrl.core.vectorised import StackedAgents
    from cfgrl.envs.registry import resolve_env
    from cfgrl.pipeline.train import _to_tensors, build_agent, make_sampler

    env, dims, hidden, batch, _ = SIZES[size]
    mode = "stacked" if stacked else "agent_loop+compile" if compiled else "agent_loop"
    row: dict[str, Any] = {"size": size, "precision": precision, "mode": mode, "k": k, "steps_per_seed": steps,
                           "processes": 1, "threads_per_process": torch.get_num_threads()}
    try:
        data, _ = write_inputs(folder, size, precision, steps, str(device))
        cls = method_class(METHOD)
        config = cls.Config(steps=steps, batch_size=batch, hidden=hidden, precision=precision, device=str(device))
        sampler = make_sampler(resolve_env(env), data, cls, config)
        goal_dim = sampler.goal_source.shape[1]
        agents = [build_agent(METHOD, config, dims[0], dims[1], goal_dim, device, s) for s in range(k)]
        rngs = [np.random.default_rng(s) for s in range(k)]
        updates = [torch.compile(a.update) if compiled else a.update for a in agents]
        group = StackedAgents(agents) if stacked else None

        def step() -> None:
            if group is not None:
                group.update([_to_tensors(sampler.sample(batch, r), device) for r in rngs])
                return
            for u, r in zip(updates, rngs, strict=True):
                u(_to_tensors(sampler.sample(batch, r), device))

        for _ in range(warmup):
            step()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        wall = time.perf_counter() - t0
        row.update({"wall_s": wall, "seed_updates_per_s": k * steps / wall})
    except Exception as err:  # report and go on
        row["error"] = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}"
    return row


def _mlp(in_dim: int, out_dim: int) -> torch.nn.Module:
    layers: list[torch.nn.Module] = []
    d = in_dim
    for h in VMAP_HIDDEN:
        layers += [torch.nn.Linear(d, h), torch.nn.GELU()]
        d = h
    return torch.nn.Sequential(*layers, torch.nn.Linear(d, out_dim))


def vmap_rows(k: int, steps: int, device: torch.device, compiled: bool, warmup: int = 3) -> list[dict[str, Any]]:
    """UPPER BOUND, not used by training: k MLP regression steps (hand-written Adam) as one vmap(grad) call on
    stacked parameters, and the same functional step looped over the k models."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    in_dim, out_dim = 2 * 29, 8  # antmaze-like obs + goal -> action
    torch.manual_seed(0)
    models = [_mlp(in_dim, out_dim).to(device) for _ in range(k)]
    base = _mlp(in_dim, out_dim).to("meta")
    params, _ = stack_module_state(models)
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(k, VMAP_BATCH, in_dim, generator=g).to(device) for _ in range(4)]
    ys = [torch.randn(k, VMAP_BATCH, out_dim, generator=g).to(device) for _ in range(4)]

    def loss_fn(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ((functional_call(base, p, (x,)) - y) ** 2).mean()

    grad_fn = grad(loss_fn)
    batched_grad = vmap(grad_fn)

    def adam(p: dict[str, torch.Tensor], gr: dict[str, torch.Tensor], m: dict[str, torch.Tensor],
             v: dict[str, torch.Tensor], t: torch.Tensor, lr: float = 3e-4, b1: float = 0.9, b2: float = 0.999,
             eps: float = 1e-8) -> None:
        """Adam in place; t: the step as a 0-d tensor (so a compiled step is not specialised on it)."""
        bc1, bc2 = 1 - b1**t, 1 - b2**t
        for name in p:
            m[name].mul_(b1).add_(gr[name], alpha=1 - b1)
            v[name].mul_(b2).addcmul_(gr[name], gr[name], value=1 - b2)
            p[name].sub_(lr * (m[name] / bc1) / ((v[name] / bc2).sqrt() + eps))

    Params = dict[str, torch.Tensor]

    def stacked_step(p: Params, m: Params, v: Params, t: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        adam(p, batched_grad(p, x, y), m, v, t)

    def looped_step(p: Params, m: Params, v: Params, t: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        for i in range(k):
            pi = {n: q[i] for n, q in p.items()}
            adam(pi, grad_fn(pi, x[i], y[i]), {n: q[i] for n, q in m.items()}, {n: q[i] for n, q in v.items()}, t)

    variants = [("vmap_ensemble", stacked_step), ("vmap_loop", looped_step)]
    if compiled:
        variants = [("vmap_ensemble+compile", torch.compile(stacked_step))]
    rows = []
    for name, step in variants:
        row: dict[str, Any] = {"size": "mlp-3x256", "precision": "fp32", "mode": name, "k": k, "steps_per_seed": steps,
                               "processes": 1, "threads_per_process": torch.get_num_threads(),
                               "batch_size": VMAP_BATCH, "note": "upper bound, not used by training"}
        try:
            p = {n: q.detach().clone() for n, q in params.items()}
            m = {n: torch.zeros_like(q) for n, q in p.items()}
            v = {n: torch.zeros_like(q) for n, q in p.items()}
            for t in range(1, warmup + 1):
                step(p, m, v, torch.tensor(float(t), device=device), xs[t % 4], ys[t % 4])
            sync(device)
            ts = [torch.tensor(float(t), device=device) for t in range(warmup + 1, warmup + 1 + steps)]
            t0 = time.perf_counter()
            for i, t in enumerate(ts):
                step(p, m, v, t, xs[i % 4], ys[i % 4])
            sync(device)
            wall = time.perf_counter() - t0
            row.update({"wall_s": wall, "seed_updates_per_s": k * steps / wall})
        except Exception as err:
            row["error"] = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}"
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------------ main

def show(row: dict[str, Any]) -> None:
    if "error" in row:
        rate = f"ERROR {row['error']}"
    else:
        loop = row.get("in_loop_seed_updates_per_s")
        where = "end to end" if "child_cpu_s" in row else "in process"
        rate = (f"{row['seed_updates_per_s']:9.1f} seed-upd/s {where:10s}  wall {row['wall_s']:7.1f} s"
                + (f"  in-loop {loop:9.1f}/s" if loop else "")
                + (f"  child CPU {row['child_cpu_s']:7.1f} s" if "child_cpu_s" in row else ""))
    print(f"{row['size']:9s} {row['precision']:5s} {row['mode']:22s} k={row['k']:<2d} "
          f"{row['processes']}x{row['threads_per_process']}thr  {rate}", flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--ks", default=",".join(map(str, KS)), help="seed counts (default 1,2,4,8)")
    p.add_argument("--sizes", default="default,paper", help="comma list of: " + ", ".join(SIZES))
    p.add_argument("--precisions", default="fp32,bf16", help="comma list of: fp32, bf16 (default both)")
    p.add_argument("--modes", default="group,separate,vectorised,agent_loop,stacked,vmap",
                   help="comma list of: group, separate, vectorised, agent_loop, stacked, vmap (default all)")
    p.add_argument("--steps", type=int, default=None,
                   help="updates per seed (default: 5000 at 'default' size, 300 at 'paper' size)")
    p.add_argument("--vmap-steps", type=int, default=200, help="timed steps of the vmap variants (default 200)")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                   help="cores to share out: group threads, separate = max(1, cores // k) (default: all)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of the in-process variants (default: --cores)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per subprocess run (default 3600)")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="CUDA: skip the torch.compile variants (agent_loop+compile, vmap_ensemble+compile)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: k 1,2; fp32; 'default' size; 20 steps; vmap 20 steps")
    p.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up temp dirs on timeout
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available")
    ks = [int(x) for x in args.ks.split(",")]
    sizes, precisions, modes = args.sizes.split(","), args.precisions.split(","), args.modes.split(",")
    if args.quick:
        ks, sizes, precisions, args.steps, args.vmap_steps = [1, 2], ["default"], ["fp32"], 20, 20
    torch.set_num_threads(args.threads or args.cores)
    device = torch.device(args.device)
    out: dict[str, Any] = {"meta": meta(device, args.cores), "method": METHOD, "quick": args.quick,
                           "sizes": {s: {"env_shapes": SIZES[s][0], "obs_action": SIZES[s][1],
                                         "hidden": list(SIZES[s][2]), "batch_size": SIZES[s][3]} for s in sizes},
                           "rows": []}
    print(f"{METHOD}: device {device}, {args.cores} cores; k {ks}; sizes {sizes}; precisions {precisions}",
          flush=True)
    rows: list[dict[str, Any]] = out["rows"]

    def add(row: dict[str, Any]) -> None:
        """Keep, print, and (with --json) write the figures so far: a run cut short keeps its finished rows."""
        rows.append(row)
        show(row)
        if args.json:
            out["meta"]["loadavg_after"] = os.getloadavg()
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out, indent=2) + "\n")

    cuda = device.type == "cuda" and args.compile
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        folder = Path(tmp)
        for size in sizes:
            steps = args.steps or SIZES[size][4]
            for precision in precisions:
                for k in ks:
                    for mode in ("group", "separate", "vectorised"):
                        if mode not in modes or (mode != "group" and k == 1 and "group" in modes):
                            continue  # one seed in its own process (or vectorised alone) is the k = 1 group run
                        add(subprocess_row(folder, size, precision, mode, k, steps, args.cores, args.device,
                                           args.timeout))
                    if "agent_loop" in modes:
                        # compiled: at the smallest k only (each agent compiles its own update; bounds the time)
                        for compiled in [False] + ([True] if cuda and k == min(ks) else []):
                            add(agent_loop_row(folder, size, precision, k, steps, device, compiled))
                    if "stacked" in modes and k > 1:
                        add(agent_loop_row(folder, size, precision, k, steps, device, False, stacked=True))
        if "vmap" in modes:
            for k in ks:
                for compiled in [False] + ([True] if cuda and k == max(ks) else []):  # compiled: the largest k
                    for row in vmap_rows(k, args.vmap_steps, device, compiled):
                        add(row)
    if args.json:
        print(f"wrote {args.json}")
    return out


if __name__ == "__main__":
    main()
