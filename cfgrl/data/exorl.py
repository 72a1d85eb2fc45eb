"""ExORL-format data: a reader with per-task reward relabelling, and an offline generator.

Episode files (ExORL's replay-buffer layout, one file per episode in `<dir>/buffer/*.npz`):
    observation (T+1, obs_dim) float32   observation[0] is the reset observation
    action      (T+1, A) float32         action[0] is a dummy (zeros); action[t] led to observation[t]
    physics     (T+1, nphys) float64     physics.get_state() (qpos, qvel, act) after step t
    reward      (T+1, 1) float32         reward[t] for action[t] under the task the data was collected with
    discount    (T+1, 1) float32         (optional here) all ones
File names are `<prefix>_<episode index>_<T>.npz` (ExORL uses a timestamp prefix; we write 'episode').
Assumptions about ExORL's released zips (which this machine cannot reach): that layout, T = 1000 for walker,
quadruped and cheetah (250 for jaco), no terminal states; any other T works too.

Reader (`load_exorl`): transitions obs[:-1] -> obs[1:] with action[1:]; rewards recomputed for the requested
task by setting each physics state and asking the task for its reward (`cfgrl.envs.dmc.DMCEnv.reward_of_state`),
so one domain's data serves all of its tasks; masks are all 1 (no terminal states); `timeouts` mark each
episode's last transition. The processed arrays are cached in one uncompressed .npz per (domain, task), written
atomically and keyed by a fingerprint of the episode files, so a changed buffer is reprocessed.

Generator (`generate_exorl`): writes episodes in that layout for walker, cheetah and quadruped from a
documented behaviour mixture (see BEHAVIOUR_MIXTURE); deterministic given a seed and independent of the number
of worker processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cfgrl.data.episodes import split_evenly
from cfgrl.data.layout import DataError
from cfgrl.envs.dmc import DMCEnv, env_seed, make_env, parse_task
from cfgrl.io import atomic_write, atomic_write_json

DOMAIN_TASKS: dict[str, tuple[str, ...]] = {
    "walker": ("walker-stand", "walker-walk", "walker-run"),
    "cheetah": ("cheetah-run", "cheetah-run-backward"),
    "quadruped": ("quadruped-walk", "quadruped-run"),
    "jaco": ("jaco-reach-top-left", "jaco-reach-top-right"),
}
GENERATED_DOMAINS = ("walker", "cheetah", "quadruped")
FIT_ITERATIONS = 100  # ARS iterations per controller fitted by the generator
EPISODE_KEYS = ("observation", "action", "physics")  # required; 'reward' and 'discount' are checked if present
CACHE_VERSION = 1

BEHAVIOUR_MIXTURE = """\
Per episode (drawn from the episode's own seed):
- 15%  'uniform':    i.i.d. uniform random actions in [-1, 1]^A;
- 15%  'smooth':     temporally correlated random actions, a_t = clip(0.8 a_{t-1} + 0.6 e_t), e_t ~ N(0, I);
- 70%  'controller': a linear controller a = clip(W (o - mu) / sd) trained by augmented random search (ARS, V2-t)
                     on one of the domain's tasks (uniform over tasks), taken from one of 4 checkpoints along its
                     training (1/4, 1/2, 3/4, all iterations; uniform), with Gaussian action noise of standard
                     deviation uniform over {0, 0.1, 0.2, 0.4}.
ARS: 8 random directions per iteration, each tried at +/- (16 rollouts), the best 4 used, step 0.05, exploration
noise 0.05, 300-step training rollouts, running observation normalisation; walker-walk starts from the
walker-stand controller, walker-run from walker-walk, quadruped-run from quadruped-walk; deterministic given the
seed. Saved next to the data (controllers.npz) with their training curves (controllers.json)."""
# Curriculum: these tasks' controllers start from another task's final controller (fitted before them).
WARM_START = {"walker-walk": "walker-stand", "walker-run": "walker-walk", "quadruped-run": "quadruped-walk"}
MIX_PROBS = {"uniform": 0.15, "smooth": 0.15, "controller": 0.70}
NOISE_LEVELS = (0.0, 0.1, 0.2, 0.4)
CHECKPOINT_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


# --------------------------------------------------------------------------------------------------------------
# Reading


def _episode_index(path: Path) -> tuple[int, str]:
    """Sort key: the episode index in '<prefix>_<idx>_<len>.npz' (ExORL's naming), then the name."""
    m = re.match(r"^.*_(\d+)_(\d+)$", path.stem)
    return (int(m.group(1)) if m else -1, path.name)


def episode_files(data_dir: str | Path) -> list[Path]:
    """Episode files of an ExORL folder (`<dir>/buffer/*.npz`, or `<dir>/*.npz` if dir is the buffer)."""
    data_dir = Path(data_dir)
    buffer = data_dir / "buffer" if (data_dir / "buffer").is_dir() else data_dir
    files = sorted(buffer.glob("*.npz"), key=_episode_index)
    if not files:
        raise DataError(f"{buffer}: no episode files (*.npz)")
    return files


def validate_episode(arrays: dict[str, np.ndarray], path: str | Path, env: DMCEnv | None = None) -> int:
    """Check an ExORL episode's keys, shapes and finiteness; returns T. Raises one-line DataError naming the key.

    With `env`, also checks obs_dim, action_dim and the physics-state size against the environment.
    """
    for key in EPISODE_KEYS:
        if key not in arrays:
            raise DataError(f"{path}: missing key '{key}'")
    rows = arrays["observation"].shape[0] if arrays["observation"].ndim >= 1 else 0
    expected = {"observation": env.obs_dim if env else None, "action": env.action_dim if env else None,
                "physics": env.physics_state().shape[0] if env else None}
    for key, dim in expected.items():
        arr = arrays[key]
        if arr.ndim != 2 or arr.shape[0] != rows or (dim is not None and arr.shape[1] != dim):
            want = f"(T+1, {dim if dim is not None else 'D'})"
            raise DataError(f"{path}: key '{key}' has shape {arr.shape}, expected {want} with T+1 = {rows}")
    if rows < 2:
        raise DataError(f"{path}: key 'observation' has {rows} rows, an episode needs at least 2")
    for key in ("reward", "discount"):
        if key in arrays:
            arr = arrays[key]
            if arr.shape not in ((rows,), (rows, 1)):
                raise DataError(f"{path}: key '{key}' has shape {arr.shape}, expected ({rows}, 1)")
    for key in (*EPISODE_KEYS, "reward", "discount"):
        if key in arrays and not np.isfinite(arrays[key]).all():
            raise DataError(f"{path}: key '{key}' contains NaN or Inf")
    return rows - 1


def read_episode(path: str | Path, env: DMCEnv | None = None) -> dict[str, np.ndarray]:
    """Load and validate one episode file."""
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: cannot read ({err})") from err
    validate_episode(arrays, path, env)
    return arrays


def _process_episodes(task: str, paths: list[str]) -> dict[str, np.ndarray]:
    """Worker: transitions of some episodes with rewards relabelled for `task`."""
    env = make_env(task, seed=0)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("observations", "actions", "rewards", "next_observations")}
    lengths = []
    for path in paths:
        ep = read_episode(path, env)
        obs = ep["observation"].astype(np.float32, copy=False)
        out["observations"].append(obs[:-1])
        out["next_observations"].append(obs[1:])
        out["actions"].append(ep["action"][1:].astype(np.float32, copy=False))
        out["rewards"].append(env.relabel(ep["physics"][1:]))
        lengths.append(len(obs) - 1)
    merged = {k: np.concatenate(v) for k, v in out.items()}
    merged["lengths"] = np.asarray(lengths, dtype=np.int64)
    return merged


def _fingerprint(task: str, files: list[Path]) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}|{task}".encode())
    for p in files:
        st = p.stat()
        h.update(f"|{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def load_exorl(
    task: str,
    data_dir: str | Path,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    max_episodes: int | None = None,
    workers: int | None = None,
) -> dict[str, np.ndarray]:
    """Transitions of an ExORL folder with rewards for `task` (e.g. 'walker-run', 'cheetah-run-backward').

    data_dir: `<root>/<domain>/<method>` (holding buffer/) or the buffer folder itself.
    Returns observations (N, obs_dim) float32, actions (N, A) float32, rewards (N,) float32, masks (N,) float32
    (all 1: no terminal states), timeouts (N,) float32 (1 on each episode's last transition),
    next_observations (N, obs_dim) float32, episode_lengths (E,) int64. N = sum of episode lengths.
    Cache: `<cache_dir or data_dir/processed>/<domain>_<task>[_first<max_episodes>].npz`.
    """
    domain, task_name = parse_task(task)
    files = episode_files(data_dir)
    if max_episodes is not None:
        files = files[:max_episodes]
    fingerprint = _fingerprint(f"{domain}_{task_name}", files)
    data_dir = Path(data_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else (
        data_dir / "processed" if (data_dir / "buffer").is_dir() else data_dir.parent / "processed")
    suffix = f"_first{max_episodes}" if max_episodes is not None else ""
    cache = cache_dir / f"{domain}_{task_name}{suffix}.npz"
    if use_cache and cache.exists():
        try:
            with np.load(cache) as f:
                if str(f["fingerprint"]) == fingerprint:
                    return {k: f[k] for k in f.files if k != "fingerprint"}
        except (OSError, ValueError, KeyError, EOFError):
            pass  # unreadable or stale: rebuild below
    workers = max(1, min(workers or os.cpu_count() or 1, len(files)))
    chunks = split_evenly([str(p) for p in files], workers * 4 if workers > 1 else 1)
    if workers == 1:
        parts = [_process_episodes(task, c) for c in chunks]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_process_episodes, [task] * len(chunks), chunks))
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if k != "lengths"}
    lengths = np.concatenate([p["lengths"] for p in parts])
    n = len(data["observations"])
    data["masks"] = np.ones(n, dtype=np.float32)
    timeouts = np.zeros(n, dtype=np.float32)
    timeouts[np.cumsum(lengths) - 1] = 1.0
    data["timeouts"] = timeouts
    data["episode_lengths"] = lengths
    if use_cache:
        arrays = dict(data, fingerprint=np.array(fingerprint))
        atomic_write(cache, lambda f: np.savez(f, **arrays))
    return data


def episode_returns(data: dict[str, np.ndarray]) -> np.ndarray:
    """Per-episode returns (E,) of a dataset from load_exorl (sums of rewards between timeouts)."""
    ends = np.cumsum(data["episode_lengths"])
    return np.add.reduceat(data["rewards"].astype(np.float64), np.concatenate([[0], ends[:-1]]))


# --------------------------------------------------------------------------------------------------------------
# Behaviour: linear controllers trained by augmented random search


@dataclass
class LinearController:
    """a = clip(W @ ((o - mu) / sd), -1, 1). W (A, obs_dim), mu (obs_dim,), sd (obs_dim,)."""

    W: np.ndarray
    mu: np.ndarray
    sd: np.ndarray

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """obs (..., obs_dim) -> actions (..., A) in [-1, 1]."""
        return np.clip(((obs - self.mu) / self.sd) @ self.W.T, -1.0, 1.0)


_ENVS: dict[str, DMCEnv] = {}


def _cached_env(task: str) -> DMCEnv:
    if task not in _ENVS:
        _ENVS[task] = make_env(task, seed=0)
    return _ENVS[task]


def _ars_rollout(task: str, W: np.ndarray, mu: np.ndarray, sd: np.ndarray, seed: int,
                 horizon: int) -> tuple[float, np.ndarray, np.ndarray, int]:
    """One training rollout of up to `horizon` steps: (return, sum of observations (D,), sum of squares (D,),
    steps)."""
    env = _cached_env(task)
    policy = LinearController(W, mu, sd)
    obs = env.reset(seed)
    total, s1, s2, steps = 0.0, np.zeros(env.obs_dim), np.zeros(env.obs_dim), 0
    for _ in range(horizon):
        steps += 1
        s1 += obs
        s2 += obs.astype(np.float64) ** 2
        obs, reward, done = env.step(policy(obs))
        total += reward
        if done:
            break
    return total, s1, s2, steps


def fit_controller(
    task: str,
    seed: int = 0,
    iterations: int = 100,
    directions: int = 8,
    horizon: int = 300,
    step: float = 0.05,
    noise: float = 0.05,
    pool: ProcessPoolExecutor | None = None,
    init: LinearController | None = None,
) -> tuple[list[LinearController], list[float]]:
    """Train a linear controller for `task` with ARS (V2-t: top directions, running observation normalisation).

    init: start from this controller (its normalisation counts as 1000 observations) instead of zeros.
    Returns (checkpoints at CHECKPOINT_FRACTIONS of `iterations`, mean training return per iteration).
    Deterministic given `seed` (the rollouts' results are combined in a fixed order, whatever the pool).
    """
    env = _cached_env(task)
    dim, adim = env.obs_dim, env.action_dim
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    W = np.zeros((adim, dim))
    mu, sd = np.zeros(dim), np.ones(dim)
    s1, s2, count = np.zeros(dim), np.zeros(dim), 0
    if init is not None:
        W, mu, sd = init.W.copy(), init.mu.copy(), init.sd.copy()
        count = 1000
        s1, s2 = mu * count, (sd**2 + mu**2) * count
    top = max(1, directions // 2)
    save_at = {max(1, int(round(f * iterations))) for f in CHECKPOINT_FRACTIONS}
    checkpoints: list[LinearController] = []
    curve: list[float] = []
    for it in range(1, iterations + 1):
        deltas = rng.normal(size=(directions, adim, dim))
        seeds = [env_seed(seed, (it - 1) * directions + k) for k in range(directions)]
        jobs = [(W + sign * noise * d, s) for sign in (1.0, -1.0) for d, s in zip(deltas, seeds, strict=True)]
        args = ([task] * len(jobs), [j[0] for j in jobs], [mu] * len(jobs), [sd] * len(jobs),
                [j[1] for j in jobs], [horizon] * len(jobs))
        results = list(pool.map(_ars_rollout, *args)) if pool else [_ars_rollout(*a) for a in zip(*args, strict=True)]
        returns = np.array([r[0] for r in results])
        for r in results:
            s1 += r[1]
            s2 += r[2]
            count += r[3]
        plus, minus = returns[:directions], returns[directions:]
        best = np.argsort(-np.maximum(plus, minus), kind="stable")[:top]
        spread = np.concatenate([plus[best], minus[best]]).std() + 1e-6
        W = W + step / (top * spread) * np.einsum("k,kij->ij", plus[best] - minus[best], deltas[best])
        mu = s1 / count
        sd = np.sqrt(np.maximum(s2 / count - mu**2, 1e-4))
        curve.append(float(returns.mean()))
        if it in save_at:
            checkpoints.append(LinearController(W.copy(), mu.copy(), sd.copy()))
    while len(checkpoints) < len(CHECKPOINT_FRACTIONS):  # tiny budgets: repeat the last one
        checkpoints.append(checkpoints[-1])
    return checkpoints, curve


def fit_controllers(domain: str, out_dir: str | Path, seed: int = 0, iterations: int = FIT_ITERATIONS,
                    horizon: int = 300, workers: int | None = None) -> dict[str, list[LinearController]]:
    """Fit (or load from `out_dir/controllers.npz`, if made with the same settings) one ARS controller per task."""
    out_dir = Path(out_dir)
    path, info_path = out_dir / "controllers.npz", out_dir / "controllers.json"
    settings = {"domain": domain, "seed": seed, "iterations": iterations, "horizon": horizon,
                "warm_start": {t: WARM_START[t] for t in DOMAIN_TASKS[domain] if t in WARM_START}}
    if path.exists() and info_path.exists():
        info = json.loads(info_path.read_text())
        if info.get("settings") == settings:
            with np.load(path) as f:
                return {task: [LinearController(f[f"{task}/{k}/W"], f[f"{task}/{k}/mu"], f[f"{task}/{k}/sd"])
                               for k in range(len(CHECKPOINT_FRACTIONS))] for task in DOMAIN_TASKS[domain]}
    workers = workers or os.cpu_count() or 1
    controllers, curves = {}, {}
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        for i, task in enumerate(DOMAIN_TASKS[domain]):
            init = controllers[WARM_START[task]][-1] if task in WARM_START else None
            controllers[task], curves[task] = fit_controller(task, seed=seed * 1000 + i, iterations=iterations,
                                                             horizon=horizon, pool=pool, init=init)
    finally:
        if pool:
            pool.shutdown()
    arrays = {f"{task}/{k}/{name}": getattr(c, name) for task, cs in controllers.items()
              for k, c in enumerate(cs) for name in ("W", "mu", "sd")}
    atomic_write(path, lambda f: np.savez(f, **arrays))
    atomic_write_json(info_path, {"settings": settings, "mean_training_return": curves,
                                  "training_horizon": horizon, "checkpoint_fractions": CHECKPOINT_FRACTIONS})
    return controllers


# --------------------------------------------------------------------------------------------------------------
# Generation


def _episodes_worker(domain: str, seed: int, idxs: list[int], controllers: dict[str, list[LinearController]],
                     buffer: str) -> list[dict]:
    tasks = DOMAIN_TASKS[domain]
    env = make_env(tasks[0], seed=0)  # the collection task: its reward is stored in 'reward'
    kinds = list(MIX_PROBS)
    probs = np.array([MIX_PROBS[k] for k in kinds])
    manifest = []
    for ep in idxs:
        ep_seed = env_seed(seed, ep)
        rng = np.random.default_rng(np.random.SeedSequence([seed, ep, 1]))
        kind = kinds[rng.choice(len(kinds), p=probs)]
        info: dict = {"behaviour": kind}
        if kind == "controller":
            task = tasks[rng.integers(len(tasks))]
            ckpt = int(rng.integers(len(CHECKPOINT_FRACTIONS)))
            sigma = float(NOISE_LEVELS[rng.integers(len(NOISE_LEVELS))])
            policy = controllers[task][ckpt]
            info.update(task=task, checkpoint=ckpt, noise=sigma)
        obs = env.reset(ep_seed)
        T = env.episode_steps
        o = np.zeros((T + 1, env.obs_dim), np.float32)
        a = np.zeros((T + 1, env.action_dim), np.float32)
        r = np.zeros((T + 1, 1), np.float32)
        phys = np.zeros((T + 1, env.physics_state().shape[0]), np.float64)
        o[0], phys[0] = obs, env.physics_state()
        prev = np.zeros(env.action_dim)
        for t in range(1, T + 1):
            if kind == "uniform":
                act = rng.uniform(-1.0, 1.0, env.action_dim)
            elif kind == "smooth":
                act = np.clip(0.8 * prev + 0.6 * rng.normal(size=env.action_dim), -1.0, 1.0)
            else:
                act = np.clip(policy(obs) + sigma * rng.normal(size=env.action_dim), -1.0, 1.0)
            prev = act
            obs, reward, _ = env.step(act)
            o[t], a[t], r[t, 0], phys[t] = obs, act, reward, env.physics_state()
        arrays = {"observation": o, "action": a, "reward": r, "discount": np.ones((T + 1, 1), np.float32),
                  "physics": phys}
        name = f"episode_{ep:06d}_{T}.npz"
        atomic_write(Path(buffer) / name, lambda f, arrays=arrays: np.savez_compressed(f, **arrays))
        info.update(file=name, seed=ep_seed, **{f"return/{tasks[0]}": float(r.sum())})
        manifest.append(info)
    return manifest


def generate_exorl(
    domain: str,
    out_dir: str | Path,
    episodes: int,
    seed: int = 0,
    fit_iterations: int = FIT_ITERATIONS,
    fit_horizon: int = 300,
    workers: int | None = None,
) -> dict:
    """Write `episodes` ExORL-format episodes for a domain to `out_dir/buffer/` (replacing any there).

    domain: 'walker', 'cheetah' or 'quadruped'. Behaviour: BEHAVIOUR_MIXTURE, with controllers fitted first
    (`fit_iterations` ARS iterations per task, cached in out_dir). The stored 'reward' is the domain's first
    task's (walker-stand, cheetah-run, quadruped-walk); the reader relabels for any task. Writes
    `out_dir/manifest.json` (behaviour of every episode) last; returns it as a dict.
    """
    if domain not in GENERATED_DOMAINS:
        raise ValueError(f"no generator for domain {domain!r} (have: {', '.join(GENERATED_DOMAINS)})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    controllers = fit_controllers(domain, out_dir, seed=seed, iterations=fit_iterations, horizon=fit_horizon,
                                  workers=workers)
    tmp = Path(tempfile.mkdtemp(prefix=".buffer.", suffix=".tmp", dir=out_dir))
    try:
        idxs = list(range(episodes))
        chunks = split_evenly(idxs, workers * 4) if workers > 1 else [idxs]
        if workers == 1:
            parts = [_episodes_worker(domain, seed, c, controllers, str(tmp)) for c in chunks]
        else:
            with ProcessPoolExecutor(workers) as pool:
                futures = [pool.submit(_episodes_worker, domain, seed, c, controllers, str(tmp)) for c in chunks]
                parts = [f.result() for f in futures]
        buffer = out_dir / "buffer"
        if buffer.exists():
            shutil.rmtree(buffer)
        os.replace(tmp, buffer)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    manifest = {"domain": domain, "seed": seed, "episodes": [e for p in parts for e in p],
                "behaviour_mixture": BEHAVIOUR_MIXTURE, "collection_task": DOMAIN_TASKS[domain][0]}
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest


def return_table(data_dir: str | Path, tasks: Sequence[str], workers: int | None = None) -> dict[str, dict]:
    """Return statistics per task of an ExORL folder: {task: {mean, std, min, p10, p50, p90, max, episodes}}."""
    table = {}
    for task in tasks:
        rets = episode_returns(load_exorl(task, data_dir, workers=workers))
        table[task] = {"episodes": len(rets), "mean": float(rets.mean()), "std": float(rets.std()),
                       "min": float(rets.min()), "p10": float(np.percentile(rets, 10)),
                       "p50": float(np.percentile(rets, 50)), "p90": float(np.percentile(rets, 90)),
                       "max": float(rets.max())}
    return table
