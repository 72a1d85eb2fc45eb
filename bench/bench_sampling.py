"""Batch sampling cost against a training step, and resident memory of a 1M-transition dataset.

    python bench/bench_sampling.py [--n 1000000] [--batch 1024] [--threads 2] [--json out.json]

Builds a synthetic 1M-transition dataset with antmaze-large's shapes (obs 29, action 8, qpos 15, qvel 14;
1000 episodes of 1000 steps) as a compressed OGBench .npz in a temporary folder, then measures, at batch 1024:
- TransitionSampler.sample (s, a, r, mask, s'): in-memory arrays, and OGBench's compact layout memory-mapped;
- GoalSampler.sample (uniform future goal, and geometric with gamma 0.99): in memory, and memory-mapped;
- one update of a 4 x 512 GELU MLP (input obs + goal, output action, AdamW, MSE) at batch 1024 on `--threads`
  torch threads, including the numpy -> torch conversion of the batch;
and prints each sampler's cost as a fraction of that update (target <= 5%). Resident memory (RssAnon / RssFile
from /proc/self/status) is measured in fresh subprocesses: eager load (ogbench's own loader, and ours), lazy
load (memory-mapped; with the finiteness scan, which touches every page, and without it), and lazy load after
1,000 goal-conditioned batches. File-backed pages are clean page cache the kernel can drop under pressure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cfgrl.data.ogbench import load_split  # noqa: E402
from cfgrl.data.samplers import GoalSampler, TransitionSampler  # noqa: E402

OBS, ACT, QPOS, QVEL = 29, 8, 15, 14



def resident_memory() -> dict[str, int]:
    """This process's resident memory in bytes: {'anon', 'file', 'total'} (Linux /proc/self/status)."""
    fields = {"RssAnon": "anon", "RssFile": "file", "VmRSS": "total"}
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in fields:
                out[fields[key]] = int(value.split()[0]) * 1024
    return out

def make_file(path: Path, n: int, episode: int = 1000, seed: int = 0) -> None:
    """A synthetic OGBench-layout file: smooth random-walk states so it compresses like real data somewhat."""
    rng = np.random.default_rng(seed)
    terminals = np.zeros(n, dtype=bool)
    terminals[episode - 1 :: episode] = True
    terminals[-1] = True
    obs = np.cumsum(rng.normal(scale=0.05, size=(n, OBS)).astype(np.float32), axis=0)
    np.savez_compressed(path, observations=obs, actions=rng.uniform(-1, 1, (n, ACT)).astype(np.float32),
                        terminals=terminals, qpos=obs[:, :QPOS].copy(),
                        qvel=rng.normal(size=(n, QVEL)).astype(np.float32))


def timeit(fn, repeats: int, warmup: int = 5) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def train_step_time(batch: int, threads: int, in_dim: int, out_dim: int, repeats: int = 30) -> float:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layers, d = [], in_dim
    for _ in range(4):
        layers += [torch.nn.Linear(d, 512), torch.nn.GELU()]
        d = 512
    net = torch.nn.Sequential(*layers, torch.nn.Linear(512, out_dim))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-4, weight_decay=0.0)
    rng = np.random.default_rng(0)
    x_np = rng.normal(size=(batch, in_dim)).astype(np.float32)
    y_np = rng.normal(size=(batch, out_dim)).astype(np.float32)

    def step() -> None:
        x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
        loss = ((net(x) - y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return timeit(step, repeats)


def transition_view(split: dict[str, np.ndarray]) -> TransitionSampler:
    """Regular-layout transitions (copies) for the in-memory case."""
    n = len(split["observations"])
    return TransitionSampler(split["observations"], split["actions"], np.zeros(n, np.float32),
                             np.ones(n, np.float32), split["next_observations"])


def compact_sample(split: dict[str, np.ndarray], valid_idxs: np.ndarray, batch: int,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """(s, a, s') from the compact layout: s' = observations[i + 1] for rows with valids = 1."""
    idxs = valid_idxs[rng.integers(len(valid_idxs), size=batch)]
    return {"observations": split["observations"][idxs], "actions": split["actions"][idxs],
            "next_observations": split["observations"][idxs + 1]}


def memory_probe(path: str, mode: str, batch: int) -> dict:
    """Run in a subprocess: resident memory after loading `path` in `mode`."""
    import gc

    before = resident_memory()
    if mode == "ogbench":
        from ogbench.utils import load_dataset

        data = load_dataset(path, compact_dataset=True)
    else:
        data = load_split(path, compact=True, lazy=mode.startswith("lazy"), add_info=False,
                          validate=mode != "lazy-novalidate")
    gc.collect()
    after = resident_memory()
    if mode == "lazy+sample":
        sampler = GoalSampler(data["observations"], data["actions"], np.asarray(data["valids"] == 0, np.float32))
        rng = np.random.default_rng(0)
        for _ in range(1000):
            sampler.sample(batch, rng)
        after = resident_memory()
    return {k: after[k] - before[k] for k in after} | {"total_after": after["total"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--probe", nargs=2, metavar=("PATH", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(memory_probe(args.probe[0], args.probe[1], args.batch)))
        return {}

    out: dict = {"n": args.n, "batch": args.batch, "threads": args.threads, "loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic-navigate-v0.npz"
        t = time.perf_counter()
        make_file(path, args.n)
        out["file_mb"] = path.stat().st_size / 2**20
        print(f"dataset: {args.n} rows, {out['file_mb']:.0f} MiB compressed ({time.perf_counter() - t:.0f} s)")

        mem = {}
        for mode in ("ogbench", "eager", "lazy", "lazy-novalidate", "lazy+sample"):
            res = subprocess.run([sys.executable, __file__, "--probe", str(path), mode, "--batch", str(args.batch)],
                                 capture_output=True, text=True, check=True)
            mem[mode] = json.loads(res.stdout.strip().splitlines()[-1])
        out["memory_mb"] = {m: {k: v / 2**20 for k, v in d.items()} for m, d in mem.items()}
        for mode, d in out["memory_mb"].items():
            print(f"memory {mode:12s}: +{d['anon']:7.1f} MiB anonymous, +{d['file']:7.1f} MiB file-backed "
                  f"(process total {d['total_after']:.0f} MiB)")

        rng = np.random.default_rng(0)
        eager = load_split(path, compact=False)
        lazy = load_split(path, compact=True, lazy=True)
        lazy_valid = np.flatnonzero(lazy["valids"] > 0)
        ends = np.asarray(lazy["valids"] == 0, np.float32)  # OGBench terminals: 1 on each episode's last row
        trans = transition_view(eager)
        compact_eager = load_split(path, compact=True)
        gs_eager = GoalSampler(compact_eager["observations"], compact_eager["actions"], ends)
        gs_geom = GoalSampler(compact_eager["observations"], compact_eager["actions"], ends, geometric_discount=0.99)
        gs_lazy = GoalSampler(lazy["observations"], lazy["actions"], ends)
        cases = {
            "transitions (in memory)": lambda: trans.sample(args.batch, rng),
            "transitions (compact, memory-mapped)": lambda: compact_sample(lazy, lazy_valid, args.batch, rng),
            "goals uniform future (in memory)": lambda: gs_eager.sample(args.batch, rng),
            "goals geometric 0.99 (in memory)": lambda: gs_geom.sample(args.batch, rng),
            "goals uniform future (memory-mapped)": lambda: gs_lazy.sample(args.batch, rng),
        }
        times = {name: timeit(fn, args.repeats) for name, fn in cases.items()}
    step = train_step_time(args.batch, args.threads, in_dim=2 * OBS, out_dim=ACT)
    out["train_step_ms"] = step * 1e3
    out["loadavg_after"] = os.getloadavg()
    print(f"load average before/after: {out['loadavg_before'][0]:.2f} / {out['loadavg_after'][0]:.2f} "
          f"(other processes on the cores inflate the update time)")
    print(f"4x512 MLP update, batch {args.batch}, {args.threads} threads: {step * 1e3:.1f} ms")
    out["sampling"] = {}
    for name, t in times.items():
        out["sampling"][name] = {"ms": t * 1e3, "fraction_of_step": t / step}
        flag = "ok" if t / step <= 0.05 else "ABOVE 5%"
        print(f"{name:40s} {t * 1e3:7.3f} ms  = {100 * t / step:5.2f}% of a step  {flag}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
