"""What is exact and what is only close on CUDA: the measurements behind tests/test_cuda.py's tolerances.

For each question it records the largest absolute difference and whether the two results are bit for bit equal:
- init: each method's initial parameters on CUDA against CPU (initialisation draws from a CPU generator);
- act: each method's actions on CUDA against CPU with the same weights (3 CUDA updates), inputs and noise;
- training on CUDA (the pipeline's `train`, goal-conditioned CFGRL, 3 x 256, batch 256, `--steps` updates on a
  small generated pointmaze-medium file): the same seed twice, killed after a checkpoint and resumed, the seed
  trained inside a group of two; and its updates/s (metrics.csv's steps_per_s, after the first row);
- evaluation on CUDA: every cell of a checkpoint in one lockstep batch against each cell alone (the engine's
  batch invariance, exact on CPU by cfgrl.core.flow.row_stable), and the same cells evaluated on the CPU
  (cheetah-run, offline-RL CFGRL with scaled random weights so actions depend on the state, w 0 and 3).
CUDA's random numbers come from another generator than the CPU's (Philox vs Mersenne Twister), so training on
the two devices draws other flow noise: CUDA-trained and CPU-trained parameters are not compared.

    python bench/cuda_parity.py --json cuda_parity.json            # needs a CUDA device; about a minute
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cfgrl.envs.registry import resolve_env  # noqa: E402
from cfgrl.methods import METHODS, method_class  # noqa: E402
from cfgrl.pipeline.evaluate import evaluate, evaluate_checkpoint  # noqa: E402
from cfgrl.pipeline.spec import load_spec  # noqa: E402
from cfgrl.pipeline.train import train, train_group  # noqa: E402
from tests.synthetic import act_inputs, method_batch, small_config  # noqa: E402

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
NAVIGATE = "pointmaze-medium-navigate-v0"


def compare(a: dict[str, torch.Tensor] | torch.Tensor, b: dict[str, torch.Tensor] | torch.Tensor
            ) -> dict[str, Any]:
    """{'max_abs': largest |a - b| over every entry, 'bitwise': all equal} for two tensors or state dicts."""
    pairs = [(a[k], b[k]) for k in a] if isinstance(a, dict) else [(a, b)]  # type: ignore[index]
    pairs = [(x.detach().cpu().double(), y.detach().cpu().double()) for x, y in pairs]
    return {"max_abs": max(float((x - y).abs().max()) if x.numel() else 0.0 for x, y in pairs),
            "bitwise": all(torch.equal(x, y) for x, y in pairs)}


def per_method(data_path: Path) -> dict[str, Any]:
    out = {}
    for name in sorted(METHODS):
        cls = method_class(name)
        config = small_config(cls)
        batch, *dims = method_batch(cls, config, data_path)
        cpu_agent, cuda_agent = (cls(config, *dims, device, seed=5) for device in (CPU, CUDA))
        init = compare(cpu_agent.state_dict(), cuda_agent.state_dict())
        for _ in range(3):
            cuda_agent.update({k: v.to(CUDA) for k, v in batch.items()})
        cpu_agent.load_state_dict({k: v.cpu() for k, v in cuda_agent.state_dict().items()})
        cpu_agent.eval(), cuda_agent.eval()
        obs, goals, w, noise = act_inputs(cpu_agent, n=64)
        a_cpu = cpu_agent.act(obs, goals, w, noise)
        a_cuda = cuda_agent.act(obs.to(CUDA), None if goals is None else goals.to(CUDA), w.to(CUDA),
                                None if noise is None else noise.to(CUDA))
        out[name] = {"init": init, "act": compare(a_cpu, a_cuda)}
        print(f"{name:12s} init bitwise {init['bitwise']}  act max |diff| {out[name]['act']['max_abs']:.2e}",
              flush=True)
    return out


def training(tmp: Path, data_path: Path, steps: int) -> dict[str, Any]:
    raw = {"name": "p", "seeds": [0, 1], "envs": {NAVIGATE: {"data": {"source": "generate", "episodes": 4}}},
           "methods": {"gc_cfgrl": {"w": [1], "config": {
               "steps": steps, "batch_size": 256, "hidden": [256, 256, 256], "log_every": max(1, steps // 10),
               "checkpoint_every": steps // 2, "device": "cuda"}}}}
    (tmp / "spec.yaml").write_text(yaml.safe_dump(raw))
    spec = load_spec(tmp / "spec.yaml")
    run = lambda out, **kw: train(spec, "gc_cfgrl", NAVIGATE, 1, data_path, tmp / out, **kw)  # noqa: E731
    t0 = time.perf_counter()
    run("straight")
    wall = time.perf_counter() - t0
    run("again")
    run("resumed", stop_after=steps // 2 + steps // 10)
    run("resumed")
    train_group(spec, "gc_cfgrl", NAVIGATE, [0, 1], data_path, [tmp / "g0", tmp / "g1"])
    nets = {name: torch.load(tmp / name / "model.pt", map_location="cpu", weights_only=False)["networks"]
            for name in ("straight", "again", "resumed", "g1")}
    rows = (tmp / "straight" / "metrics.csv").read_text().splitlines()
    column = rows[0].split(",").index("steps_per_s")
    rates = [float(r.split(",")[column]) for r in rows[2:]]
    return {"steps": steps, "size": "3 x 256, batch 256", "same_seed_twice": compare(nets["straight"], nets["again"]),
            "killed_and_resumed": compare(nets["straight"], nets["resumed"]),
            "inside_a_group_of_two": compare(nets["straight"], nets["g1"]),
            "updates_per_s_in_loop": float(np.mean(rates)) if rates else None,
            "wall_s_one_run": wall}


def evaluation() -> dict[str, Any]:
    info = resolve_env("cheetah-run")
    cls = method_class("cfgrl")
    config = cls.Config(hidden=(256, 256, 256), value_hidden=(32,), flow_steps=8)
    agents = {}
    for device in (CPU, CUDA):
        agent = cls(config, 17, 6, 0, device, seed=3)
        with torch.no_grad():  # a policy that reacts to its inputs (untrained nets are nearly constant)
            for p in agent.parameters():
                p.mul_(3.0)
        agents[device.type] = agent.eval()
    bases, ws = {"test": 10_000}, [0.0, 3.0]
    t0 = time.perf_counter()
    together = evaluate_checkpoint(agents["cuda"], info, [1], 2, ws, bases, train_seed=4)
    cuda_wall = time.perf_counter() - t0
    alone = {w: evaluate(agents["cuda"], info, [1], 2, w, bases["test"], train_seed=4) for w in ws}
    t0 = time.perf_counter()
    on_cpu = evaluate_checkpoint(agents["cpu"], info, [1], 2, ws, bases, train_seed=4)
    cpu_wall = time.perf_counter() - t0
    returns = lambda cell: np.array([e["return"] for e in cell["episodes"]])  # noqa: E731
    return {"env": "cheetah-run", "episodes_per_w": 2, "ws": ws,
            "batch_vs_alone_on_cuda": {
                "episodes_identical": all(together[("test", w)]["episodes"] == alone[w]["episodes"] for w in ws),
                "max_abs_return_diff": max(float(np.abs(returns(together[("test", w)]) - returns(alone[w])).max())
                                           for w in ws)},
            "cuda_vs_cpu": {
                "episodes_identical": all(together[("test", w)]["episodes"] == on_cpu[("test", w)]["episodes"]
                                          for w in ws),
                "max_abs_return_diff": max(float(np.abs(returns(together[("test", w)])
                                                        - returns(on_cpu[("test", w)])).max()) for w in ws),
                "returns_cuda": {str(w): returns(together[("test", w)]).tolist() for w in ws},
                "returns_cpu": {str(w): returns(on_cpu[("test", w)]).tolist() for w in ws}},
            "wall_s": {"cuda": cuda_wall, "cpu": cpu_wall}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1000, help="training updates per run (default 1000)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench/cuda_parity.py: no CUDA device")
    torch.set_num_threads(1)
    from cfgrl.data.navigate import generate_navigate

    out: dict[str, Any] = {"meta": {"torch": torch.__version__, "cuda": torch.version.cuda,
                                    "device": torch.cuda.get_device_name(0), "python": platform.python_version(),
                                    "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / f"{NAVIGATE}.npz"
        generate_navigate("pointmaze-medium-v0", data, episodes=4, seed=3, workers=1)
        out["per_method"] = per_method(data)
        out["training"] = training(tmp, data, args.steps)
        print(json.dumps(out["training"], indent=1), flush=True)
    out["evaluation"] = evaluation()
    print(json.dumps(out["evaluation"], indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
