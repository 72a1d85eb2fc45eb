"""Driver for the reference's FlowIQL update (never imported by the project): times `agents/flowiql.py`'s update,
unchanged, at paper size (4 x 512 MLPs, batch 1024) on random batches of walker's shapes (obs 24, action 6), the
counterpart of `bench/bench_update.py --sizes paper --label-scheme dropout`. Prints one JSON line.

    cp bench/reference/time_flowiql.py /some/scratch/ref/ogbench/ && cd /some/scratch/ref/ogbench
    ../venv/bin/python time_flowiql.py --steps 30 --repeats 3
"""
# ruff: noqa
import argparse, json, os, statistics, time

import jax
import numpy as np

from agents.flowiql import FlowIQLAgent, get_config

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=30)
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--batch", type=int, default=1024)
p.add_argument("--hidden", default="512,512,512,512")
a = p.parse_args()
config = get_config()
hidden = tuple(int(h) for h in a.hidden.split(","))
config.update(batch_size=a.batch, actor_hidden_dims=hidden, value_hidden_dims=hidden)
rng = np.random.default_rng(0)
def batch():
    return {"observations": rng.standard_normal((a.batch, 24), dtype=np.float32),
            "next_observations": rng.standard_normal((a.batch, 24), dtype=np.float32),
            "actions": rng.uniform(-1, 1, (a.batch, 6)).astype(np.float32),
            "rewards": rng.standard_normal(a.batch).astype(np.float32), "masks": np.ones(a.batch, np.float32)}
agent = FlowIQLAgent.create(0, batch(), config)
b = batch()
for _ in range(3):  # compile and warm up
    agent, info = agent.update(b)
jax.block_until_ready(agent.network.params)
rates = []
for _ in range(a.repeats):
    t0 = time.perf_counter()
    for _ in range(a.steps):
        agent, info = agent.update(b)
    jax.block_until_ready(agent.network.params)
    rates.append(a.steps / (time.perf_counter() - t0))
print(json.dumps({"code": "reference flowiql", "batch": a.batch, "hidden": a.hidden, "updates_per_s_median":
                  statistics.median(rates), "updates_per_s_best": max(rates), "jax": jax.__version__,
                  "xla_flags": os.environ.get("XLA_FLAGS", "")}))
