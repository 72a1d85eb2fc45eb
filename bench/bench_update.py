"""Update throughput of offline-RL CFGRL (critic + value + flow actor, one optimiser step, Polyak target).

Sizes: 'paper' = 4 x 512 MLPs, batch 1024 (the authors' OGBench config), 'small' = 3 x 256, batch 256; obs_dim 24
and action_dim 6 (walker). Variants, each reported separately (one that fails is reported with its error):
- CPU (`--threads` threads): eager with the agent's fused AdamW; eager with the per-tensor AdamW loop; eager under
  bf16 autocast (training uses fp32; this only shows the headroom of bf16 matmuls).
- CUDA (when available): eager (fused / foreach AdamW, bf16 autocast); torch.compile of the whole update (mode
  'max-autotune-no-cudagraphs', and 'reduce-overhead', which adds CUDA graphs); a manual CUDA-graph capture of one
  whole update (forward, backward, capturable fused AdamW, Polyak) replayed per step.
Each variant: warmup updates, then `--repeats` timed rounds; the median and the best round are reported.

    python bench/bench_update.py                      # CPU, both sizes, 2 threads
    python bench/bench_update.py --out bench.json --paper-steps 10 --small-steps 40 --repeats 3

For reference: the authors' JAX code runs about 3.6 paper-size updates/s on a 2-core CPU machine of this kind.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import torch

from cfgrl.cfgrl import CFGRL, CFGRLConfig

SIZES = {"paper": ((512,) * 4, 1024), "small": ((256,) * 3, 256)}
OBS_DIM, ACTION_DIM = 24, 6


def make_batches(n: int, batch_size: int, device: torch.device, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        obs = torch.randn(batch_size, OBS_DIM, generator=g)
        out.append({k: v.to(device) for k, v in {
            "observations": obs, "actions": torch.rand(batch_size, ACTION_DIM, generator=g) * 2 - 1,
            "rewards": torch.rand(batch_size, generator=g), "masks": torch.ones(batch_size),
            "next_observations": obs + 0.1 * torch.randn(batch_size, OBS_DIM, generator=g)}.items()})
    return out


def build(size: str, device: torch.device, label_scheme: str, optimizer: str) -> CFGRL:
    """A paper- or small-size CFGRL agent; optimizer: 'default' (the agent's: fused AdamW where supported),
    'loop' (per-tensor AdamW), 'foreach', or 'capturable' (fused, capturable: for CUDA-graph capture)."""
    hidden, batch_size = SIZES[size]
    config = CFGRLConfig(hidden=hidden, value_hidden=hidden, batch_size=batch_size, label_scheme=label_scheme,
                         device=str(device))
    torch.manual_seed(0)
    agent = CFGRL(config, OBS_DIM, ACTION_DIM, 0, device, seed=0)
    if optimizer != "default":
        params = [p for p in agent.parameters() if p.requires_grad]
        kwargs = {"loop": {"foreach": False}, "foreach": {"foreach": True},
                  "capturable": {"fused": True, "capturable": True}}[optimizer]
        agent.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, **kwargs)
    return agent


def cuda_graph_update(agent: CFGRL, example: dict[str, torch.Tensor], warmup: int):
    """Capture one whole update (forward, backward, optimiser step, Polyak) in a CUDA graph; returns an update
    function that copies the batch into the static inputs and replays it (outputs are the static info tensors)."""
    static = {k: v.clone() for k, v in example.items()}
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            agent.update(static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    register = getattr(graph, "register_generator_state", None)  # torch >= 2.5: custom generators in graphs
    if register is None:
        raise RuntimeError("this torch cannot capture a user-supplied CUDA generator in a CUDA graph")
    register(agent.generator)  # the agent's own RNG then advances on every replay
    with torch.cuda.graph(graph):
        static_info = agent.update(static)

    def update(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for k, v in batch.items():
            static[k].copy_(v)
        graph.replay()
        return static_info

    return update


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_updates(update, batches: list[dict[str, torch.Tensor]], warmup: int, steps: int, repeats: int,
                 device: torch.device) -> dict[str, Any]:
    """Run `warmup` updates, then `repeats` rounds of `steps` timed updates (summing the metrics as the training
    loop does). Reports the median and the best round (the best is the least disturbed by other processes)."""
    for i in range(warmup):
        update(batches[i % len(batches)])
    sync(device)
    rates, loss = [], float("nan")
    for _ in range(repeats):
        sums: dict[str, torch.Tensor] = {}
        t0 = time.perf_counter()
        for i in range(steps):
            info = update(batches[i % len(batches)])
            for k, v in info.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
        sync(device)
        rates.append(steps / (time.perf_counter() - t0))
        loss = float(sums["actor/loss"] / steps)  # the one host sync per round, after its timing
    return {"updates_per_s": statistics.median(rates), "best_updates_per_s": max(rates),
            "ms_per_update": 1000 / statistics.median(rates), "rounds_updates_per_s": rates,
            "mean_actor_loss": loss}


def variants(device: torch.device) -> list[tuple[str, str, str]]:
    """(name, optimizer (see `build`), runner: 'eager', 'autocast' (bf16), 'compile:<mode>' or 'cudagraph')."""
    if device.type != "cuda":
        return [("eager", "default", "eager"), ("eager+loop_adamw", "loop", "eager"),
                ("eager+bf16_autocast", "default", "autocast")]
    return [("eager", "default", "eager"), ("eager+foreach_adamw", "foreach", "eager"),
            ("eager+bf16_autocast", "default", "autocast"),
            ("compile", "default", "compile:max-autotune-no-cudagraphs"),
            ("compile+cudagraphs", "default", "compile:reduce-overhead"),
            ("cudagraph_capture", "capturable", "cudagraph")]


def run_one(size: str, device: torch.device, variant: tuple[str, str, str], label_scheme: str, warmup: int,
            steps: int, repeats: int) -> dict[str, Any]:
    name, optimizer, runner = variant
    row = {"size": size, "device": str(device), "variant": name, "label_scheme": label_scheme,
           "hidden": list(SIZES[size][0]), "batch_size": SIZES[size][1], "threads": torch.get_num_threads(),
           "steps": steps}
    try:
        agent = build(size, device, label_scheme, optimizer)
        batches = make_batches(4, SIZES[size][1], device)
        update = agent.update
        if runner.startswith("compile:"):
            update = torch.compile(agent.update, mode=runner.split(":", 1)[1])
            warmup = max(warmup, 10)  # compilation and graph recording happen here, untimed
        elif runner == "autocast":  # bf16 matmuls: not what training uses (fp32); shows the headroom
            def update(batch, _update=agent.update, _device=device.type):
                with torch.autocast(_device, dtype=torch.bfloat16):
                    return _update(batch)
        elif runner == "cudagraph":
            update = cuda_graph_update(agent, batches[0], warmup=max(warmup, 3))
        row["warmup"] = warmup
        row.update(time_updates(update, batches, warmup, steps, repeats, device))
    except Exception as err:  # report and go on with the other variants
        row["error"] = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}"
    return row


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="paper,small", help="comma list of: " + ", ".join(SIZES))
    p.add_argument("--devices", default="auto", help="'auto' (cpu, plus cuda when available), or a comma list")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--label-scheme", default="dropout", choices=["dropout", "filtered"])
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--paper-steps", type=int, default=10, help="timed updates per round at paper size")
    p.add_argument("--small-steps", type=int, default=40, help="timed updates per round at small size")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per variant (median and best reported)")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.devices == "auto":
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    else:
        devices = [torch.device(d) for d in args.devices.split(",")]
    rows = []
    for device in devices:
        for variant in variants(device):
            for size in args.sizes.split(","):
                steps = args.paper_steps if size == "paper" else args.small_steps
                row = run_one(size, device, variant, args.label_scheme, args.warmup, steps, args.repeats)
                rows.append(row)
                rate = (f"median {row['updates_per_s']:8.2f}/s ({row['ms_per_update']:7.1f} ms)  "
                        f"best {row['best_updates_per_s']:8.2f}/s") if "error" not in row else row["error"]
                print(f"{row['device']:6s} {row['variant']:32s} {size:6s} batch {row['batch_size']:5d}  {rate}",
                      flush=True)
    meta = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor(), "threads": args.threads,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
