"""The one training loop every method goes through: sample batches, update, log, checkpoint, resume.

Outputs in `out_dir`: `model.pt` (networks + config + provenance), `metrics.csv` and `grad_norms.npz` (the per-sample
actor-gradient norms of one batch, empty for methods without them), written when training ends.
While training, `out_dir/_progress/checkpoint.pt` holds networks, optimiser, RNG states, step and the metric
rows so far; a killed job restarted with the same arguments resumes from it and, on CPU, ends with the same
parameters as an uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cfgrl.core.agent import Agent
from cfgrl.core.nets import pick_device
from cfgrl.data.samplers import BatchRequest, GoalSampler
from cfgrl.envs.registry import EnvInfo
from cfgrl.io import atomic_savez, atomic_write, atomic_write_text
from cfgrl.methods import method_class
from cfgrl.pipeline.provenance import data_hash, provenance
from cfgrl.pipeline.spec import Spec


def build_agent(method: str, config: Any, obs_dim: int, action_dim: int, goal_dim: int, device: torch.device,
                seed: int) -> Agent:
    torch.manual_seed(seed)  # init 'torch' (the ablation) initialises from the global RNG; 'parity' never reads it
    return method_class(method)(config, obs_dim, action_dim, goal_dim, device, seed)


def make_sampler(env: EnvInfo, data_path: str | Path, agent_class: type[Agent], config: Any) -> Any:
    """The batch sampler an agent class trains with on an env's dataset file: the agent says which batches
    (`batch_kind`, `batch_options`), the env's kind reads the file and builds the sampler."""
    request = BatchRequest(agent_class.batch_kind, **agent_class.batch_options(config))
    return env.kind.sampler(env, data_path, request)


def _save(path: Path, obj: Any) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def _to_tensors(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v)).to(device, non_blocking=True) for k, v in batch.items()}


def metrics_csv(rows: list[dict[str, float]]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def train(spec: Spec, method: str, env: str, seed: int, data_path: str | Path, out_dir: str | Path,
          threads: int | None = None, stop_after: int | None = None) -> dict[str, Any]:
    """Train the spec's method entry `method` on `env`'s dataset with `seed`.

    `stop_after` ends early after writing a checkpoint (tests of resumption)."""
    entry = spec.methods[method]
    config = entry.config
    device = pick_device(config.device)
    torch.set_num_threads(threads or spec.train_threads)
    out_dir = Path(out_dir)
    ckpt_path = out_dir / "_progress" / "checkpoint.pt"

    sampler = make_sampler(spec.envs[env].info, data_path, entry.cls, config)
    obs_dim, action_dim = sampler.observations.shape[1], sampler.actions.shape[1]
    goal_dim = sampler.goal_source.shape[1] if isinstance(sampler, GoalSampler) else 0
    agent = build_agent(entry.registry, config, obs_dim, action_dim, goal_dim, device, seed)
    rng = np.random.default_rng(seed)  # fixes batch sampling
    rows: list[dict[str, float]] = []

    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        agent.load_full_state(state["agent"])
        rng.bit_generator.state = state["numpy_rng"]
        rows = state["rows"]
        print(f"resumed from {ckpt_path} at step {agent.step}", flush=True)

    def checkpoint() -> None:
        _save(ckpt_path, {"agent": agent.full_state(), "numpy_rng": rng.bit_generator.state, "rows": rows})

    show_bar = sys.stderr.isatty()
    bar = None
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=agent.step, desc=f"{method} {env} seed{seed}", unit="step")
    sums: dict[str, torch.Tensor] = {}
    n_since_log, t_log = 0, time.perf_counter()
    agent.train()
    while agent.step < config.steps:
        info = agent.update(_to_tensors(sampler.sample(config.batch_size, rng), device))
        for k, v in info.items():
            sums[k] = sums[k] + v if k in sums else v.clone()
        n_since_log += 1
        if bar is not None:
            bar.update(1)
        if agent.step % config.log_every == 0 or agent.step == config.steps:
            now = time.perf_counter()
            row = {"step": agent.step, "steps_per_s": n_since_log / max(now - t_log, 1e-9)}
            row.update({k: float(v / n_since_log) for k, v in sums.items()})  # the only host sync
            rows.append(row)
            if not show_bar:
                print(" ".join(f"{k}={v}" if k == "step" else f"{k}={v:.4g}" for k, v in row.items()), flush=True)
            sums, n_since_log, t_log = {}, 0, now
        if agent.step % config.checkpoint_every == 0 and agent.step < config.steps:
            checkpoint()
        if stop_after is not None and agent.step >= stop_after:
            checkpoint()
            return {"stopped_at": agent.step}
    if bar is not None:
        bar.close()

    meta = provenance(spec, method=method, env=env, seed=seed, device=str(device), steps=agent.step,
                      data=str(data_path), data_sha256=data_hash(data_path), torch_threads=torch.get_num_threads())
    norms = np.zeros(0, dtype=np.float32)  # the paper's Fig. 2 diagnostic, on one fresh batch (empty: no such norms)
    if hasattr(agent, "per_sample_actor_grad_norms"):
        diag = _to_tensors(sampler.sample(min(config.batch_size, 512), np.random.default_rng([seed, 2])), device)
        norms = agent.per_sample_actor_grad_norms(diag).cpu().numpy()
    atomic_savez(out_dir / "grad_norms.npz", {"norms": norms, "step": np.asarray(agent.step)})
    _save(out_dir / "model.pt", {"method": entry.registry, "label": method, "config": asdict(config),
                                 "obs_dim": obs_dim, "action_dim": action_dim, "goal_dim": goal_dim,
                                 "networks": agent.state_dict(), "provenance": meta})
    atomic_write_text(out_dir / "metrics.csv", metrics_csv(rows))
    ckpt_path.unlink(missing_ok=True)
    return {"steps": agent.step, "final": rows[-1] if rows else {}}


def load_agent(model_path: str | Path, device: torch.device | None = None) -> tuple[Agent, dict[str, Any]]:
    """Rebuild an agent from `model.pt` for evaluation. Returns (agent in eval mode, the saved record)."""
    record = torch.load(model_path, map_location="cpu", weights_only=False)
    cls = method_class(record["method"])
    config = cls.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in record["config"].items()})
    device = device or pick_device(config.device)
    agent = cls(config, record["obs_dim"], record["action_dim"], record["goal_dim"], device, 0)
    agent.load_state_dict(record["networks"])
    agent.eval()
    return agent, record
