"""The two CPU-kernel modes (cfgrl/cpu_kernels.py) side by side: what each computes and what it costs, in one run.

Each workload runs in a fresh interpreter (the caps act when a library loads) under CFGRL_CPU_KERNELS=portable and
=native, the two alternating (which goes first alternates too), `--repeats` times each, one at a time:
- data: the pointmaze-medium navigate generator (`--episodes` episodes of 1001 steps, OGBench's oracle, noise
  0.2, seed 0, one worker) -> the arrays' hash (cfgrl data-hash) and seconds;
- train: goal-conditioned CFGRL, 3 x 256, batch 256, `--steps` updates on the portable data file, one thread ->
  the trained parameters' hash and updates/s;
- eval: offline-RL CFGRL (3 x 256, 8 flow steps, weights scaled x3 so actions depend on the state) on walker-walk,
  w 0 and 3 x 2 episodes of 1000 steps, one lockstep batch -> the returns' hash and seconds.
Reported per workload and mode: the median seconds, the result hash (equal in every repeat, else flagged), the
native/portable time ratio, and whether the two modes computed the same thing.

    python bench/bench_cpu_kernels.py --json cpu_kernels.json                  # about 4 minutes on 2 cores
    python bench/bench_cpu_kernels.py --episodes 20 --steps 1000 --repeats 1   # a quick look
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODES = ("portable", "native")


def child(workload: str, folder: Path, episodes: int, steps: int) -> dict:
    """Runs inside the fresh interpreter: one workload, timed, with the hash of what it computed."""
    import cfgrl  # noqa: F401  (first: the caps of CFGRL_CPU_KERNELS)

    # isort: split
    import numpy as np
    import torch

    torch.set_num_threads(1)
    data = folder / f"data-{os.environ['CFGRL_CPU_KERNELS']}.npz"
    t0 = time.perf_counter()
    if workload == "data":
        from cfgrl.data.navigate import generate_navigate
        from cfgrl.pipeline.provenance import data_hash

        generate_navigate("pointmaze-medium-v0", data, episodes=episodes, seed=0, workers=1, noise=0.2)
        return {"seconds": time.perf_counter() - t0, "hash": data_hash(data)[:16]}
    if workload == "train":
        from cfgrl.data.samplers import BatchRequest
        from cfgrl.envs.registry import resolve_env
        from cfgrl.methods import method_class

        cls = method_class("gc_cfgrl")
        config = cls.Config(hidden=(256, 256, 256), batch_size=256)
        env = resolve_env("pointmaze-medium-navigate-v0")
        sampler = env.kind.sampler(env, folder / "data-portable.npz", BatchRequest(cls.batch_kind,
                                                                                  **cls.batch_options(config)))
        agent = cls(config, 2, 2, 2, torch.device("cpu"), seed=0)
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        for _ in range(steps):
            agent.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sampler.sample(256, rng).items()})
        seconds = time.perf_counter() - t0
        blob = b"".join(v.numpy().tobytes() for v in agent.state_dict().values())
        return {"seconds": seconds, "updates_per_s": steps / seconds, "hash": hashlib.sha256(blob).hexdigest()[:16]}
    from cfgrl.envs.registry import resolve_env
    from cfgrl.methods import method_class
    from cfgrl.pipeline.evaluate import evaluate_checkpoint

    cls = method_class("cfgrl")
    agent = cls(cls.Config(hidden=(256, 256, 256), value_hidden=(32,), flow_steps=8), 24, 6, 0, torch.device("cpu"),
                seed=3)
    with torch.no_grad():
        for p in agent.parameters():
            p.mul_(3.0)
    cells = evaluate_checkpoint(agent.eval(), resolve_env("walker-walk"), [1], 2, [0.0, 3.0], {"test": 10_000},
                                train_seed=4)
    returns = np.array([e["return"] for cell in cells.values() for e in cell["episodes"]])
    return {"seconds": time.perf_counter() - t0, "hash": hashlib.sha256(returns.tobytes()).hexdigest()[:16]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=100, help="generated episodes (default 100)")
    p.add_argument("--steps", type=int, default=3000, help="training updates (default 3000)")
    p.add_argument("--repeats", type=int, default=2, help="runs per workload and mode (default 2)")
    p.add_argument("--workloads", default="data,train,eval", help="comma list (default data,train,eval; train "
                   "reads the data workload's portable file, so it needs data before it)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--folder", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder, args.episodes, args.steps)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workload in args.workloads.split(","):
            runs: dict[str, list[dict]] = {m: [] for m in MODES}
            for repeat in range(args.repeats):
                for mode in MODES if repeat % 2 == 0 else MODES[::-1]:
                    env = {k: v for k, v in os.environ.items() if k not in _caps()}
                    env.update(CFGRL_CPU_KERNELS=mode, PYTHONPATH=str(REPO))
                    out = subprocess.run([sys.executable, __file__, "--child", workload, "--folder", tmp,
                                          "--episodes", str(args.episodes), "--steps", str(args.steps)],
                                         env=env, capture_output=True, text=True, check=True)
                    runs[mode].append(json.loads(out.stdout.splitlines()[-1]))
            row = {"workload": workload}
            for mode in MODES:
                hashes = {r["hash"] for r in runs[mode]}
                row[mode] = {"seconds_median": statistics.median(r["seconds"] for r in runs[mode]),
                             "hash": hashes.pop() if len(hashes) == 1 else "differs between repeats",
                             "runs": runs[mode]}
            row["native_over_portable_time"] = row["native"]["seconds_median"] / row["portable"]["seconds_median"]
            row["same_result"] = row["native"]["hash"] == row["portable"]["hash"]
            rows.append(row)
            print(f"{workload:6s} portable {row['portable']['seconds_median']:7.2f} s {row['portable']['hash']}   "
                  f"native {row['native']['seconds_median']:7.2f} s {row['native']['hash']}   "
                  f"time native/portable {row['native_over_portable_time']:.2f}   same result: {row['same_result']}",
                  flush=True)
    if args.json:
        from cfgrl.pipeline.provenance import cpu_info

        meta = {"cpu": cpu_info(), "python": platform.python_version(), "episodes": args.episodes,
                "steps": args.steps, "repeats": args.repeats}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


def _caps() -> set[str]:
    from cfgrl.cpu_kernels import MODE_VARIABLE, PORTABLE

    return {*PORTABLE, MODE_VARIABLE}


if __name__ == "__main__":
    main()
