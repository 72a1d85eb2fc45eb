"""Driver for the reference's AWR (never imported by the project): train rlbase's `algs_offline/iql.py` agent,
unchanged, on a suite transition file and evaluate it with the suite's dm_control stepping and the mean action
(temperature 0), as ../shared/reference/run_exorl.py does for the ExORL CFGRL agent. docs/fidelity.md's AWR rows.

    cp bench/reference/run_exorl_awr.py /some/scratch/ref/rlbase/ && cd /some/scratch/ref/rlbase
    OMP_NUM_THREADS=1 ../venv/bin/python run_exorl_awr.py --suite-root <checkout> --data <cheetah-run.npz> \
        --seed 0 --steps 10000 --batch 128 --hidden 256,256 --temperature 3 --out awr_s0.json
"""
# ruff: noqa
import argparse, json, sys, time, types
gym = types.ModuleType("gym"); gym.Env = gym.Wrapper = gym.ObservationWrapper = gym.ActionWrapper = object
sys.modules["gym"] = gym
helper = types.ModuleType("envs.env_helper"); helper.make_env = helper.get_dataset = None
sys.modules["envs.env_helper"] = helper
import jax, jax.numpy as jnp, numpy as np
jax.tree_map = jax.tree_util.tree_map
import utils  # noqa
sys.excepthook = sys.__excepthook__
import algs_offline.iql as ref
p = argparse.ArgumentParser()
p.add_argument("--suite-root", required=True); p.add_argument("--data", required=True)
p.add_argument("--task", default="cheetah-run"); p.add_argument("--seed", type=int, default=0)
p.add_argument("--steps", type=int, default=10000); p.add_argument("--batch", type=int, default=128)
p.add_argument("--hidden", default="256,256"); p.add_argument("--temperature", type=float, default=3.0)
p.add_argument("--episodes", type=int, default=10); p.add_argument("--eval-seed", type=int, default=10000)
p.add_argument("--out", required=True)
a = p.parse_args()
sys.path.insert(0, a.suite_root)
from cfgrl.dmc import evaluate as dmc_evaluate
hidden = tuple(int(h) for h in a.hidden.split(","))
cfg = ref.agent_config.to_dict(); cfg.update(hidden_dims=hidden, actor_hidden_dims=hidden, temperature=a.temperature)
d = np.load(a.data)
obs, act, rew, msk, nxt = (d[k].astype(np.float32) for k in ("observations", "actions", "rewards", "masks", "next_observations"))
rng = np.random.default_rng(a.seed)
agent = ref.create_agent(a.seed, obs[:1], act[:1], max_steps=a.steps, **cfg)
t0 = time.time()
for _ in range(a.steps):
    i = rng.integers(0, len(obs), a.batch)
    agent, _ = agent.update(dict(observations=obs[i], observations_policy=obs[i], actions=act[i], rewards=rew[i], masks=msk[i], next_observations=nxt[i]))
res = {"task": a.task, "seed": a.seed, "steps": a.steps, "batch": a.batch, "hidden": a.hidden, "temperature": a.temperature, "train_s": time.time() - t0}
key = jax.random.PRNGKey(a.seed + 12345)
sample = jax.jit(lambda o, k: agent.sample_actions(o, seed=k, temperature=0.0))
def policy(o):
    global key
    key, sub = jax.random.split(key)
    return np.asarray(sample(jnp.asarray(o), sub))
r = dmc_evaluate(a.task, policy, num_episodes=a.episodes, seed=a.eval_seed + a.seed)
res["return"] = float(r.returns.mean()); res["total_s"] = time.time() - t0
json.dump(res, open(a.out, "w"), indent=1); print(json.dumps(res))
