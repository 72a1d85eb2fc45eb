"""Evaluation engine vs the reference way, against the simulator alone; and a sampler latency/throughput table.

Policy: a CFGRL flow policy (method 'cfgrl', hidden 4 x 512, flow_steps 16, label_scheme 'dropout') with dm_control
walker-run's observation and action sizes (from the env registry). Its weights are the untrained parity
initialisation (optionally scaled by --weight-scale so that the actions react to the state): fine for timing, the
returns are not those of a trained policy. The grid is 7 w values [0, 1, 1.5, 2, 3, 5, 10] x 10 episodes of
1000 steps (--episodes, --steps-limit shorten it). Three timed ways of playing the same episodes:
(a) reference: the way the authors' evaluation loop plays: one env, one episode at a time, reset, then a
    batch-1 `act` call per step and the env's own step API, one w after another;
(b) engine: cfgrl.pipeline.evaluate.evaluate_checkpoint, every w in one lockstep batch (one `act` call per step
    on all episodes still running, conditional and null branch in one forward pass);
(c) simulator alone: the same episodes (built the same way as the engine builds them) stepped the same number of
    times through the lockstep loop with random (or zero) actions and no policy;
(d) with --threads above 1: (b) with its simulators in that many processes (an evaluation job's `eval.threads`).
It reports the wall seconds of each, reference / engine, and engine / simulator. The reference loop is given each
episode's own noise stream, the one the engine draws for that episode (NoiseStreams, seeded derive_seed(eval seed,
training seed, task, episode, NOISE_KEY)), and the same env seeds, so the per-episode returns of (a) and (b) are
compared one to one (on CPU they agree bit for bit, cfgrl.core.flow.row_stable; on CUDA batched kernels may round
differently for different batch sizes, and the dynamics amplify it).

Sampler table: batch sizes {1, 16, 64, 256, 1024} x flow steps {1, 4, 16, 32}: median ms per `act` call,
guided at w = 3 (both branches in one pass of 2B rows), and actions/s = batch / median seconds.

    python bench/bench_eval.py --json eval.json                 # CPU, full grid (7 w x 10 episodes x 1000 steps)
    python bench/bench_eval.py --quick --json eval-quick.json   # 2 w x 1 episode x 50 steps, small sampler table
    python bench/bench_eval.py --device cuda --json eval-cuda.json
    python bench/bench_eval.py --episodes 2 --steps-limit 200 --parts rollouts
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cfgrl.envs import dmc  # noqa: E402
from cfgrl.envs.registry import DMC, EnvInfo, EvalEpisodes, resolve_env  # noqa: E402
from cfgrl.envs.rollout import SerialSteps, run_lockstep  # noqa: E402
from cfgrl.methods import method_class  # noqa: E402
from cfgrl.pipeline.evaluate import NOISE_KEY, NoiseStreams, evaluate_checkpoint  # noqa: E402
from cfgrl.pipeline.provenance import cpu_info  # noqa: E402
from cfgrl.seeding import derive_seed  # noqa: E402

ENV = "walker-run"
WS = [0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0]  # the guidance weights of the rollout grid
HIDDEN = (512, 512, 512, 512)  # the paper's OGBench actor size
FLOW_STEPS = 16  # the OGBench code's Euler steps
EVAL_SEED, TRAIN_SEED = 10_000, 0  # the default spec's test base seed; training seed 0
SAMPLER_BATCHES = [1, 16, 64, 256, 1024]
SAMPLER_STEPS = [1, 4, 16, 32]
SAMPLER_W = 3.0


def meta(device: torch.device) -> dict[str, Any]:
    """What ran the benchmark: torch, threads, CPU model, device, load average."""
    return {"torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
            "cpu": cpu_info(), "device": str(device),
            "cuda": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
            "loadavg": os.getloadavg()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def env_dims(name: str) -> tuple[EnvInfo, int, int]:
    """The env's registry entry and its observation and action sizes (from one env built by its kind)."""
    info = resolve_env(name)
    env = dmc.make_env(info.eval_env_id, seed=0)
    return info, env.obs_dim, env.action_dim


def make_agent(obs_dim: int, action_dim: int, device: torch.device, flow_steps: int = FLOW_STEPS,
               weight_scale: float = 1.0) -> Any:
    """The CFGRL flow policy, parity initialisation (untrained), in eval mode."""
    cls = method_class("cfgrl")
    config = cls.Config(hidden=HIDDEN, value_hidden=HIDDEN, flow_steps=flow_steps, label_scheme="dropout",
                        device=str(device))
    agent = cls(config, obs_dim, action_dim, 0, device, seed=0)
    if weight_scale != 1.0:
        with torch.no_grad():
            for p in agent.parameters():
                p.mul_(weight_scale)
    return agent.eval()


class _Truncated:
    """An evaluation episode cut after `limit` steps (done at the limit)."""

    def __init__(self, episode: Any, limit: int) -> None:
        self.episode, self.limit, self.t = episode, limit, 0

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        ob, reward, done, success = self.episode.step(action)
        self.t += 1
        return ob, reward, done or self.t >= self.limit, success

    def close(self) -> None:
        self.episode.close()


class LimitedDMC(DMC):
    """The dm_control env kind with its evaluation episodes cut after `limit` steps (None: full length), so the
    engine runs unchanged on shorter episodes."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit

    def eval_episodes(self, env: EnvInfo, tasks: list[int], episodes_per_task: int, eval_seed: int,
                      train_seed: int, env_spec: str | None = None) -> EvalEpisodes:
        setup = super().eval_episodes(env, tasks, episodes_per_task, eval_seed, train_seed, env_spec)
        if self.limit is not None:
            setup.episodes = [_Truncated(e, self.limit) for e in setup.episodes]
        return setup


def run_reference(agent: Any, info: EnvInfo, ws: list[float], episodes: int, limit: int | None
                  ) -> dict[str, Any]:
    """The reference loop: one env, reset per episode with the engine's env seed, a batch-1 act per step with the
    episode's own noise stream, one w after another."""
    device = agent.device
    t0 = time.perf_counter()
    env = dmc.make_env(info.eval_env_id, seed=0)
    base = derive_seed(EVAL_SEED, TRAIN_SEED, 1, 0) % dmc.DMC_SEED_MODULUS  # as DMC.eval_episodes
    first_row = np.zeros(1, dtype=np.int64)
    returns: dict[str, list[float]] = {}
    policy_s, steps = 0.0, 0
    for w in ws:
        returns[str(w)] = []
        for i in range(episodes):
            obs = env.reset(dmc.env_seed(base, i))
            noise = NoiseStreams([derive_seed(EVAL_SEED, TRAIN_SEED, 1, i, NOISE_KEY)], agent.noise_dim)
            total, t, done = 0.0, 0, False
            while not done and (limit is None or t < limit):
                tp = time.perf_counter()
                eps = torch.from_numpy(noise.next(first_row)).to(device)
                action = agent.act(torch.from_numpy(obs[None]).to(device), None, float(w), eps).cpu().numpy()[0]
                policy_s += time.perf_counter() - tp
                obs, reward, done = env.step(action)
                total += reward
                t += 1
            steps += t
            returns[str(w)].append(total)
    return {"wall_s": time.perf_counter() - t0, "policy_s": policy_s, "env_steps": steps, "returns": returns}


def run_engine(agent: Any, info: EnvInfo, ws: list[float], episodes: int, limit: int | None,
               workers: int = 1) -> dict[str, Any]:
    """evaluate_checkpoint: every w in one lockstep batch (test split only); workers > 1: the simulators in that
    many processes."""
    limited = replace(info, kind=LimitedDMC(limit))
    t0 = time.perf_counter()
    cells = evaluate_checkpoint(agent, limited, [1], episodes, ws, {"test": EVAL_SEED}, TRAIN_SEED, workers=workers)
    wall = time.perf_counter() - t0
    any_cell = next(iter(cells.values()))
    return {"wall_s": wall, "policy_s": any_cell["policy_s"], "cells_in_batch": any_cell["cells_in_batch"],
            "env_steps": sum(e["length"] for c in cells.values() for e in c["episodes"]),
            "returns": {str(w): [e["return"] for e in cells[("test", w)]["episodes"]] for w in ws}}


def run_simulator(info: EnvInfo, n_ws: int, episodes: int, limit: int | None, action_dim: int, actions: str
                  ) -> dict[str, Any]:
    """The same episodes as the engine's (one set per w), stepped through the lockstep loop with no policy."""
    kind = LimitedDMC(limit)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    eps, first = [], []
    for _ in range(n_ws):
        setup = kind.eval_episodes(info, [1], episodes, EVAL_SEED, TRAIN_SEED)
        eps += setup.episodes
        first.append(setup.first_obs)

    def policy(obs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if actions == "zero":
            return np.zeros((len(rows), action_dim))
        return rng.uniform(-1.0, 1.0, (len(rows), action_dim))

    run = run_lockstep(SerialSteps(eps), np.concatenate(first), policy)
    return {"wall_s": time.perf_counter() - t0, "env_steps": int(run.lengths.sum()), "actions": actions}


def parity(reference: dict[str, list[float]], engine: dict[str, list[float]]) -> dict[str, Any]:
    """Per-episode returns of the reference loop and the engine, episode by episode."""
    diffs = [abs(a - b) for w in reference for a, b in zip(reference[w], engine[w], strict=True)]
    equal = all(a == b for w in reference for a, b in zip(reference[w], engine[w], strict=True))
    return {"same_noise_and_env_seeds": True, "bit_identical": equal, "max_abs_return_diff": max(diffs, default=0.0),
            "episodes_compared": len(diffs)}


def sampler_table(obs_dim: int, action_dim: int, device: torch.device, batches: list[int], flow_steps: list[int],
                  repeats: int, budget_s: float) -> list[dict[str, Any]]:
    """Median ms per guided act() call (w = SAMPLER_W) for each batch size x flow steps."""
    agent = make_agent(obs_dim, action_dim, device)
    g = torch.Generator().manual_seed(0)
    rows = []
    for steps in flow_steps:
        agent.config.flow_steps = steps  # act() reads it per call
        for b in batches:
            obs = torch.randn(b, obs_dim, generator=g).to(device)
            noise = torch.randn(b, action_dim, generator=g).to(device)
            for _ in range(2):  # warmup
                agent.act(obs, None, SAMPLER_W, noise)
            sync(device)
            times: list[float] = []
            start = time.perf_counter()
            while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget_s):
                t = time.perf_counter()
                agent.act(obs, None, SAMPLER_W, noise)
                sync(device)
                times.append(time.perf_counter() - t)
            med = statistics.median(times)
            rows.append({"batch": b, "flow_steps": steps, "w": SAMPLER_W, "median_ms": med * 1e3,
                         "min_ms": min(times) * 1e3, "calls": len(times), "actions_per_s": b / med})
            print(f"  sampler batch {b:5d} flow steps {steps:3d}: {med * 1e3:9.3f} ms/call "
                  f"{b / med:12.0f} actions/s  ({len(times)} calls)", flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--episodes", type=int, default=10, help="episodes per w (default 10)")
    p.add_argument("--steps-limit", type=int, default=None, help="cut episodes after this many steps "
                                                                 "(default: full, 1000)")
    p.add_argument("--ws", default=",".join(f"{w:g}" for w in WS), help="guidance weights (default 0,1,1.5,2,3,5,10)")
    p.add_argument("--weight-scale", type=float, default=1.0,
                   help="multiply the untrained weights by this (default 1: parity init as is)")
    p.add_argument("--sim-actions", default="random", choices=["random", "zero"],
                   help="actions of the simulator-only run (default random)")
    p.add_argument("--parts", default="rollouts,sampler", help="comma list of: rollouts, sampler (default both)")
    p.add_argument("--sampler-batches", default=",".join(map(str, SAMPLER_BATCHES)))
    p.add_argument("--sampler-steps", default=",".join(map(str, SAMPLER_STEPS)))
    p.add_argument("--sampler-repeats", type=int, default=20, help="timed act() calls per cell, at most (default 20)")
    p.add_argument("--sampler-budget-s", type=float, default=5.0,
                   help="stop timing a cell after this many seconds (at least 3 calls; default 5)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2 w x 1 episode x 50 steps; sampler batches 1,16 x flow steps 1,4, 3 calls")
    p.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # exit cleanly on timeout
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available")
    ws = [float(x) for x in args.ws.split(",")]
    batches = [int(x) for x in args.sampler_batches.split(",")]
    flow_steps = [int(x) for x in args.sampler_steps.split(",")]
    if args.quick:
        ws, args.episodes, args.steps_limit = [0.0, 3.0], 1, 50
        batches, flow_steps, args.sampler_repeats = [1, 16], [1, 4], 3
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    info, obs_dim, action_dim = env_dims(ENV)
    parts = args.parts.split(",")

    def save() -> None:
        """Write the figures so far (after each part: a run cut short keeps the finished part)."""
        if args.json:
            out["meta"]["loadavg_after"] = os.getloadavg()
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out, indent=2) + "\n")

    out: dict[str, Any] = {"meta": meta(device), "env": ENV, "obs_dim": obs_dim, "action_dim": action_dim,
                           "policy": {"method": "cfgrl", "hidden": list(HIDDEN), "flow_steps": FLOW_STEPS,
                                      "label_scheme": "dropout", "weights": "untrained parity init",
                                      "weight_scale": args.weight_scale},
                           "ws": ws, "episodes": args.episodes, "steps_limit": args.steps_limit,
                           "quick": args.quick}
    print(f"{ENV}: obs {obs_dim}, action {action_dim}; device {device}, {torch.get_num_threads()} threads; "
          f"cfgrl 4x512, {FLOW_STEPS} flow steps, untrained weights (timing only)", flush=True)
    if "rollouts" in parts:
        agent = make_agent(obs_dim, action_dim, device, weight_scale=args.weight_scale)
        engine = run_engine(agent, info, ws, args.episodes, args.steps_limit)
        reference = run_reference(agent, info, ws, args.episodes, args.steps_limit)
        simulator = run_simulator(info, len(ws), args.episodes, args.steps_limit, action_dim, args.sim_actions)
        check = parity(reference["returns"], engine["returns"])
        roll = {"reference": reference, "engine": engine, "simulator": simulator, "parity": check,
                "reference_over_engine": reference["wall_s"] / engine["wall_s"],
                "engine_over_simulator": engine["wall_s"] / simulator["wall_s"]}
        out["rollouts"] = roll
        n = len(ws) * args.episodes
        print(f"\nrollouts: {len(ws)} w x {args.episodes} episodes = {n} episodes, "
              f"{engine['env_steps']} env steps each way")
        print(f"{'way':42s} {'wall s':>9s} {'policy s':>9s} {'env steps/s':>12s}")
        for name, r in (("(a) reference (batch-1 act, one w at a time)", reference),
                        ("(b) engine (evaluate_checkpoint, lockstep)", engine),
                        (f"(c) simulator alone ({args.sim_actions} actions)", simulator)):
            pol = f"{r['policy_s']:9.2f}" if "policy_s" in r else f"{'-':>9s}"
            print(f"{name:42s} {r['wall_s']:9.2f} {pol} {r['env_steps'] / r['wall_s']:12.0f}")
        print(f"reference / engine = {roll['reference_over_engine']:.2f}x;  engine / simulator = "
              f"{roll['engine_over_simulator']:.2f}x")
        print(f"returns, same env seeds and noise: bit identical {check['bit_identical']}, max |diff| "
              f"{check['max_abs_return_diff']:.3g} over {check['episodes_compared']} episodes")
        if args.threads > 1:  # (d): the engine with its simulators in `threads` processes (eval.threads)
            sharded = run_engine(agent, info, ws, args.episodes, args.steps_limit, workers=args.threads)
            roll["engine_processes"] = {**sharded, "workers": args.threads,
                                        "identical": sharded["returns"] == engine["returns"]}
            print(f"(d) engine, simulators in {args.threads} processes: {sharded['wall_s']:.2f} s wall, policy "
                  f"{sharded['policy_s']:.2f} s; (b) / (d) = {engine['wall_s'] / sharded['wall_s']:.2f}x; returns "
                  f"identical to (b): {roll['engine_processes']['identical']}")
        for w in ws:
            print(f"  w {w:5g}: reference {np.mean(reference['returns'][str(w)]):8.2f}  engine "
                  f"{np.mean(engine['returns'][str(w)]):8.2f} (mean return)")
        save()
    if "sampler" in parts:
        print(f"\nsampler (guided w = {SAMPLER_W:g}, both branches in one pass):", flush=True)
        out["sampler"] = sampler_table(obs_dim, action_dim, device, batches, flow_steps, args.sampler_repeats,
                                       args.sampler_budget_s)
        save()
    if args.json:
        print(f"wrote {args.json}")
    return out


if __name__ == "__main__":
    main()
