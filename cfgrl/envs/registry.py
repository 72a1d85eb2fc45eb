"""Environments the suite evaluates on, named by their dataset name, and the four kinds of env as objects.

OGBench state-based families (the name is OGBench's dataset name; `cfgrl.data.ogbench.parse_name` splits it):
- `<env>-<type>-v0`, e.g. `antmaze-large-navigate-v0` (kind OGBENCH_GOAL): goal-conditioned, the goal is the
  goal observation; OGBench's 5 evaluation tasks; success rate.
- `<env>-<type>-oraclerep-v0` (OGBENCH_GOAL, oracle_rep): goals are OGBench's ground-truth goal representations
  (the paper's Table 3 setting).
- `<env>-<type>-singletask[-taskN]-v0` (OGBENCH_SINGLE): rewards relabelled for one task (default task 1, as
  OGBench); one evaluation task; success rate and return.
Offline generation exists for pointmaze navigate data (generator 'navigate', `cfgrl.data.navigate`) and for the
play data of cube-single, cube-double, scene and puzzle-3x3 (generator 'play', `cfgrl.data.play`); other OGBench
datasets are downloaded.
dm_control ExORL tasks `walker-run`, `cheetah-run-backward`, `jaco-reach-top-left`, ... (DMC): ExORL-format
episodes (downloaded RND data or generated offline) with rewards recomputed for the task; episode return.
Minari datasets `minari/<dataset id>`, e.g. `minari/mujoco/halfcheetah/medium-v0` (MINARI): the Minari id verbatim
after the prefix; read from a local MINARI_DATASETS_PATH or downloaded by minari (never generated); evaluated in
the dataset's own gymnasium environment; one task; episode return.

Each kind (`EnvKind`) knows its metric, which batches its data can give, how to make its dataset file, how to
build a batch sampler over it and how to set up evaluation episodes; the pipeline asks the kind instead of
comparing names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cfgrl.data.layout import val_path
from cfgrl.data.samplers import BatchRequest, make_goal_sampler, make_transition_sampler
from cfgrl.envs.rollout import Episode, GymEpisode
from cfgrl.seeding import derive_seed, global_numpy_seed


@dataclass
class EvalEpisodes:
    """Evaluation episodes set up and reset: `episodes` (n), their first observations (n, obs_dim), goals
    (n, goal_dim) or None, and `slots` (n) of (task, episode index) for the result file."""

    episodes: list[Episode]
    first_obs: np.ndarray
    goals: np.ndarray | None
    slots: list[tuple[int, int]] = field(default_factory=list)


class EnvKind:
    """What one kind of env does (subclasses below; one instance each)."""

    name = ""
    metric = "success"  # the number its tables report: 'success' (rate) or 'return'
    goal_conditioned = False  # batches and evaluation carry goals
    reports_return = False  # also report the episode return beside success (single-task OGBench)
    has_success = True  # episodes end with a success flag (OGBench); dm_control and Minari have none
    score_scale: float | None = 1.0  # divide the metric by this for cross-env aggregates (None: no common scale)
    takes_data_defaults = True  # the spec's data settings are merged over the suite's (and the generator's) defaults

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__

    def batch_problem(self, env: EnvInfo, batch_kind: str) -> str | None:
        """Why a method asking for `batch_kind` batches cannot train on this env (None when it can)."""
        if batch_kind in ("goals", "subgoals") and not self.goal_conditioned:
            return f"goal-conditioned method cannot train on '{env.name}' (no goals; use a *-navigate-v0 env)"
        if batch_kind == "transitions" and self.goal_conditioned:
            return f"reward-based method cannot train on '{env.name}' (no rewards; use a *-singletask-v0 env)"
        return None

    def data_problem(self, data: Mapping[str, Any]) -> str | None:
        """Why an env's `data` settings (as the spec gives them) are refused, as '.field: message' (None if fine)."""
        if data["source"] == "local":
            return ".source: 'local' is for Minari datasets only (minari/<dataset id> envs)"
        if "path" in data:
            return ".path: only for Minari datasets (minari/<dataset id> envs)"
        return None

    def make_dataset(self, env: EnvInfo, data: dict[str, Any], out: Path, workers: int | None = None,
                     exorl_root: Path | None = None) -> str:
        """Write the env's training file `out` and its `-val.npz` twin from the spec's `data` settings (download,
        generate or read a local source, as `data.source` says); returns a one-line summary."""
        raise NotImplementedError

    def sampler(self, env: EnvInfo, path: str | Path, request: BatchRequest, validation: bool = False) -> Any:
        """The batch sampler over the env's dataset file `path` (cfgrl.data.samplers), or over its held-out
        validation twin (`-val.npz`) when `validation`."""
        # the transition layout `cfgrl data` writes for dm_control and Minari envs
        with np.load(val_path(path) if validation else path) as d:
            return make_transition_sampler({k: d[k] for k in ("observations", "actions", "rewards", "masks",
                                                              "next_observations")}, request)

    def eval_episodes(self, env: EnvInfo, tasks: list[int], episodes_per_task: int, eval_seed: int,
                      train_seed: int, env_spec: str | None = None) -> EvalEpisodes:
        """Evaluation episodes, seeded from (eval seed, training seed, task, episode) only, so every method and w
        of one training seed faces the same episodes."""
        raise NotImplementedError

    def eval_env_spec(self, env: EnvInfo, data: Mapping[str, Any], data_file: Path | None) -> str | None:
        """What `eval_episodes` needs to build the evaluation env beyond the env's name (Minari: its JSON EnvSpec);
        None for kinds that build it from the name alone."""
        return None

    def cell_extras(self, mean_return: float, data_file: Path | None) -> dict[str, float]:
        """Numbers a cell file carries beside success and return (Minari: the normalised score); none here."""
        return {}

    def __reduce_ex__(self, protocol: Any) -> Any:
        if KINDS.get(self.name) is self:  # one instance per kind, also after pickling (`env.kind is DMC_KIND`)
            return kind_named, (self.name,)
        return super().__reduce_ex__(protocol)  # a kind of its own (a subclass in a benchmark): by value


class OGBenchGoal(EnvKind):
    name, metric, goal_conditioned = "ogbench-goal", "success", True

    def make_dataset(self, env: EnvInfo, data: dict[str, Any], out: Path, workers: int | None = None,
                     exorl_root: Path | None = None) -> str:
        return _ogbench_dataset(env, data, out, workers)

    def sampler(self, env: EnvInfo, path: str | Path, request: BatchRequest, validation: bool = False) -> Any:
        from cfgrl.data.layout import load_ogbench_npz

        data = load_ogbench_npz(val_path(path) if validation else path)  # one-line errors on bad files
        goal_reps = None
        if env.oracle_rep:  # OGBench's ground-truth goal representation of every row, from its own code
            import gymnasium
            from ogbench.relabel_utils import add_oracle_reps

            add_oracle_reps(env.eval_env_id, gymnasium.make(env.eval_env_id, use_oracle_rep=True), data)
            goal_reps = data["oracle_reps"].astype(np.float32)
        return make_goal_sampler(data["observations"], data["actions"], data["terminals"], request, goal_reps)

    def eval_episodes(self, env: EnvInfo, tasks: list[int], episodes_per_task: int, eval_seed: int,
                      train_seed: int, env_spec: str | None = None) -> EvalEpisodes:
        return _ogbench_episodes(env, tasks, episodes_per_task, eval_seed, train_seed, with_goals=True)


class OGBenchSingle(EnvKind):
    name, metric, reports_return = "ogbench-single", "success", True

    def make_dataset(self, env: EnvInfo, data: dict[str, Any], out: Path, workers: int | None = None,
                     exorl_root: Path | None = None) -> str:
        return _ogbench_dataset(env, data, out, workers)

    def sampler(self, env: EnvInfo, path: str | Path, request: BatchRequest, validation: bool = False) -> Any:
        from cfgrl.data.ogbench import load_ogbench

        train_set, val_set = load_ogbench(env.name, dataset_path=path, compact=False)  # OGBench's relabelling
        return make_transition_sampler(val_set if validation else train_set, request)

    def eval_episodes(self, env: EnvInfo, tasks: list[int], episodes_per_task: int, eval_seed: int,
                      train_seed: int, env_spec: str | None = None) -> EvalEpisodes:
        return _ogbench_episodes(env, tasks, episodes_per_task, eval_seed, train_seed, with_goals=False)


def _ogbench_dataset(env: EnvInfo, data: dict[str, Any], out: Path, workers: int | None) -> str:
    """OGBench files: downloaded (checksummed, hard-linked into place) or generated by the env's generator."""
    import os

    if data["source"] == "download":
        from cfgrl.data.download import download_ogbench
        from cfgrl.data.ogbench import parse_name

        paths = download_ogbench(parse_name(env.name).dataset_name, out.parent / "ogbench",
                                 mirrors=data.get("mirrors"), checksum_store=out.parent / "checksums.json")
        for src, dest in zip(paths, [out, val_path(out)], strict=True):
            dest.unlink(missing_ok=True)
            os.link(src, dest)
        return f"downloaded {env.name}: {', '.join(map(str, paths))}"
    if env.generators[0] == "navigate":
        from cfgrl.data.navigate import generate_navigate as generate
    else:
        from cfgrl.data.play import generate_play as generate
    counts = generate(env.datagen_env_id, out, episodes=data["episodes"], seed=data["seed"], noise=data["noise"],
                      workers=workers)
    return f"wrote {out}: {counts['train']} train / {counts['val']} val transitions"


def _ogbench_episodes(env: EnvInfo, tasks: list[int], episodes_per_task: int, eval_seed: int, train_seed: int,
                      with_goals: bool) -> EvalEpisodes:
    """OGBench evaluation: `episodes_per_task` episodes of each task, episode (task, k) seeded
    derive_seed(eval seed, training seed, task, k); the goal (goal-conditioned envs) from the reset's info."""
    import gymnasium
    import ogbench  # noqa: F401  (registers the environments)

    slots = [(task, ep) for task in tasks for ep in range(episodes_per_task)]
    episodes, obs, goals = [], [], []
    for task, ep in slots:
        e = gymnasium.make(env.eval_env_id, **({"use_oracle_rep": True} if env.oracle_rep else {}))
        seed = derive_seed(eval_seed, train_seed, task, ep)
        e.action_space.seed(seed)
        options = {"task_id": task, "render_goal": False} if with_goals else {}
        with global_numpy_seed(seed):  # OGBench draws start/goal jitter from the global RNG
            ob, info = e.reset(seed=seed, options=options)
        episodes.append(GymEpisode(e))
        obs.append(ob)
        if with_goals:
            goals.append(info["goal"])
    return EvalEpisodes(episodes, np.asarray(obs, dtype=np.float32),
                        np.asarray(goals, dtype=np.float32) if with_goals else None, slots)


class DMC(EnvKind):
    name, metric, score_scale = "dmc", "return", 1000.0  # dm_control returns are at most 1000 per episode
    has_success = False

    def make_dataset(self, env: EnvInfo, data: dict[str, Any], out: Path, workers: int | None = None,
                     exorl_root: Path | None = None) -> str:
        """The task's transitions from its domain's ExORL episodes (`exorl_root/<domain>/rnd`, made by
        `make_domain`), rewards recomputed for the task; generated data holds its validation episodes after the
        training ones, downloaded data gives up its last ones (cfgrl.data.episodes)."""
        from cfgrl.data.episodes import write_transition_splits
        from cfgrl.data.exorl import load_exorl

        if exorl_root is None:
            raise ValueError("dm_control datasets are read from an ExORL root folder (exorl_root)")
        arrays = load_exorl(env.name, exorl_root / env.datagen_env_id / "rnd", workers=workers)
        counts = write_transition_splits(arrays, out, data["episodes"] if data["source"] == "generate" else None)
        return (f"wrote {out}: {counts['train']} transitions ({counts['train_episodes']} episodes), validation "
                f"{counts['val_episodes']} episodes")

    @staticmethod
    def make_domain(domain: str, data: dict[str, Any], root: Path, workers: int | None = None) -> Path:
        """One ExORL domain's episodes in `root/<domain>/rnd`, shared by the domain's tasks: downloaded (RND), or
        generated: the spec's `episodes` training episodes and their validation episodes after them."""
        from cfgrl.data.download import download_exorl
        from cfgrl.data.episodes import extra_validation_episodes
        from cfgrl.data.exorl import generate_exorl

        folder = root / domain / "rnd"
        if data["source"] == "download":
            download_exorl(domain, root, mirrors=data.get("mirrors"))
        else:
            generate_exorl(domain, folder, episodes=data["episodes"] + extra_validation_episodes(data["episodes"]),
                           seed=data["seed"], fit_iterations=data["fit_iterations"], workers=workers)
        return folder

    def eval_episodes(self, env: EnvInfo, tasks: list[int], episodes_per_task: int, eval_seed: int,
                      train_seed: int, env_spec: str | None = None) -> EvalEpisodes:
        """`episodes_per_task` full-length episodes; env i seeded env_seed(base, i), base derived from (eval seed,
        training seed)."""
        from cfgrl.envs import dmc

        base = derive_seed(eval_seed, train_seed, 1, 0) % dmc.DMC_SEED_MODULUS
        episodes, first, _ = dmc.episodes(env.name, episodes_per_task, base)
        return EvalEpisodes(episodes, first, None, [(1, i) for i in range(episodes_per_task)])


class Minari(EnvKind):
    name, metric, score_scale = "minari", "return", None  # raw returns have no common scale across datasets
    has_success = False
    takes_data_defaults = False  # a dataset id, its source and path: none of the generators' settings apply
    DATA_KEYS = ("source", "path")  # the data settings a minari/ env takes

    def data_problem(self, data: Mapping[str, Any]) -> str | None:
        if data["source"] == "generate":
            return (".source: Minari datasets are not generated; use 'local' (a dataset under `path` or "
                    "MINARI_DATASETS_PATH) or 'download' (minari's remote)")
        extra = [k for k in data if k not in self.DATA_KEYS]
        if extra:
            return f".{extra[0]}: not used by Minari datasets (allowed: {', '.join(self.DATA_KEYS)})"
        return None

    def make_dataset(self, env: EnvInfo, data: dict[str, Any], out: Path, workers: int | None = None,
                     exorl_root: Path | None = None) -> str:
        """Transitions as load_minari reads them, plus the evaluation env's JSON EnvSpec (`env_spec`); the last
        episodes are the validation file's (cfgrl.data.episodes)."""
        from cfgrl.data.episodes import write_transition_splits
        from cfgrl.data.minari import download_minari, eval_env_spec, load_minari, reference_scores

        if data["source"] == "download":
            download_minari(env.eval_env_id, data.get("path"))
        arrays = load_minari(env.eval_env_id, datasets_path=data.get("path"))
        arrays["env_spec"] = np.asarray(eval_env_spec(env.eval_env_id, datasets_path=data.get("path")))
        reference = reference_scores(env.eval_env_id, datasets_path=data.get("path"))
        if reference is not None:  # for normalised scores at evaluation
            arrays["ref_min_score"], arrays["ref_max_score"] = np.asarray(reference[0]), np.asarray(reference[1])
        counts = write_transition_splits(arrays, out)
        return (f"wrote {out}: {counts['train']} transitions ({counts['train_episodes']} episodes), validation "
                f"{counts['val_episodes']} episodes")

    def eval_env_spec(self, env: EnvInfo, data: Mapping[str, Any], data_file: Path | None) -> str | None:
        """The evaluation env `cfgrl data` recorded in the dataset file, else the local dataset's own."""
        from cfgrl.data.minari import eval_env_spec

        if data_file is not None:
            with np.load(data_file) as d:
                if "env_spec" in d.files:
                    return str(d["env_spec"])
        return eval_env_spec(env.eval_env_id, data.get("path"))

    def cell_extras(self, mean_return: float, data_file: Path | None) -> dict[str, float]:
        """'normalized_return' (minari.get_normalized_score x 100) where the dataset file has reference scores."""
        from cfgrl.data.minari import normalized_score

        if data_file is None:
            return {}
        with np.load(data_file) as d:
            if "ref_min_score" not in d.files:
                return {}
            reference = (float(d["ref_min_score"]), float(d["ref_max_score"]))
        return {"normalized_return": float(normalized_score(mean_return, reference))}

    def eval_episodes(self, env: EnvInfo, tasks: list[int], episodes_per_task: int, eval_seed: int,
                      train_seed: int, env_spec: str | None = None) -> EvalEpisodes:
        """The dataset's own gymnasium env (its JSON EnvSpec, as `cfgrl data` records it; None: read from the local
        dataset), dict observations flattened as the dataset's were, actions clipped to the action space;
        episode i seeded derive_seed(eval seed, training seed, 1, i)."""
        from cfgrl.data.minari import eval_env_spec, flatten_observation, make_eval_env

        env_spec = env_spec if env_spec is not None else eval_env_spec(env.eval_env_id)
        episodes, obs = [], []
        for ep in range(episodes_per_task):
            e = make_eval_env(env_spec, env.name)
            seed = derive_seed(eval_seed, train_seed, 1, ep)
            e.action_space.seed(seed)
            ob, _ = e.reset(seed=seed)
            episodes.append(GymEpisode(e, flatten=flatten_observation, clip_to_space=True))
            obs.append(flatten_observation(ob))
        return EvalEpisodes(episodes, np.stack(obs).astype(np.float32), None,
                            [(1, i) for i in range(episodes_per_task)])


OGBENCH_GOAL, OGBENCH_SINGLE, DMC_KIND, MINARI = OGBenchGoal(), OGBenchSingle(), DMC(), Minari()
KINDS = {k.name: k for k in (OGBENCH_GOAL, OGBENCH_SINGLE, DMC_KIND, MINARI)}


def kind_named(name: str) -> EnvKind:
    """The env kind of that name (KINDS)."""
    return KINDS[name]


@dataclass(frozen=True)
class EnvInfo:
    name: str  # the suite's env name = the dataset name, e.g. 'pointmaze-medium-navigate-v0'
    kind: EnvKind  # one of KINDS
    eval_env_id: str  # gymnasium id (OGBench), task name (dm_control) or Minari dataset id of the evaluation env
    datagen_env_id: str  # what the offline generator runs: gymnasium id (OGBench), domain (dm_control); Minari id
    generators: tuple[str, ...]  # offline generators that can make its dataset (empty: download only)
    num_tasks: int = 5  # evaluation tasks (goal-conditioned) or 1 (single task)
    oracle_rep: bool = False  # goals are OGBench's oracle goal representations

    @property
    def goal_conditioned(self) -> bool:
        return self.kind.goal_conditioned

    @property
    def metric(self) -> str:
        return self.kind.metric

    def generator_defaults(self) -> dict[str, Any]:
        """The default settings of the offline generator that makes this env's data (noise, fit iterations)."""
        if not self.generators:
            return {}
        if self.generators[0] == "navigate":
            from cfgrl.data.navigate import NAVIGATE_NOISE

            return {"noise": NAVIGATE_NOISE}
        if self.generators[0] == "play":
            from cfgrl.data.play import PLAY_NOISE

            return {"noise": PLAY_NOISE}
        from cfgrl.data.exorl import FIT_ITERATIONS

        return {"fit_iterations": FIT_ITERATIONS}

    @property
    def exorl_domain(self) -> str | None:
        """The ExORL domain whose episode folder the env's dataset is read from (dm_control tasks), else None."""
        return self.datagen_env_id if self.kind is DMC_KIND else None


_OGBENCH = re.compile(
    r"^(?P<env>(?:point|ant|humanoid)maze-(?:medium|large|giant|teleport)|antsoccer-(?:arena|medium)"
    r"|cube-(?:single|double|triple|quadruple)|scene|puzzle-(?:3x3|4x4|4x5|4x6))"
    r"-(?P<type>navigate|stitch|explore|play|noisy)"
    r"(?P<variant>-oraclerep|-singletask(?:-task[1-5])?)?-v0$"
)

PLAY_GENERATED = ("cube-single", "cube-double", "scene", "puzzle-3x3")  # envs whose play data can be generated

MINARI_PREFIX = "minari/"
# Minari ids: `(namespace/)name-v<version>`, segments of letters, digits, '_', '-' and '.' ('.'/'..' refused: the id
# becomes a path under results/<spec>/data/).
_MINARI_ID = re.compile(r"^(?!.*(?:^|/)\.{1,2}(?:/|$))[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*-v\d+$")


def minari_id(name: str) -> str | None:
    """The Minari dataset id of a `minari/<id>` env name (None for other names)."""
    return name[len(MINARI_PREFIX):] if name.startswith(MINARI_PREFIX) else None


def resolve_env(name: str) -> EnvInfo:
    """Look up an environment by dataset name; KeyError names what is supported."""
    from cfgrl.envs.dmc import TASKS as DMC_TASKS

    dataset_id = minari_id(name)
    if dataset_id is not None:
        if not _MINARI_ID.match(dataset_id):
            raise KeyError(f"unknown env {name!r}: not a Minari dataset id after 'minari/' (expected "
                           "'minari/<namespace>/<name>-v<N>', e.g. minari/mujoco/halfcheetah/medium-v0)")
        return EnvInfo(name, MINARI, dataset_id, dataset_id, (), 1)
    if name in DMC_TASKS:
        domain = name.split("-")[0]
        return EnvInfo(name, DMC_KIND, name, domain,
                       ("exorl",) if domain in ("walker", "cheetah", "quadruped") else (), 1)
    m = _OGBENCH.match(name)
    if m:
        from cfgrl.data.ogbench import parse_name

        env, kind, variant = m.group("env"), m.group("type"), m.group("variant") or ""
        generators: tuple[str, ...] = ()
        if env.startswith("pointmaze") and kind == "navigate":
            generators = ("navigate",)
        elif env in PLAY_GENERATED and kind == "play":
            generators = ("play",)
        eval_id = parse_name(name).env_name
        if variant.startswith("-singletask"):
            return EnvInfo(name, OGBENCH_SINGLE, eval_id, f"{env}-v0", generators, 1)
        return EnvInfo(name, OGBENCH_GOAL, eval_id, f"{env}-v0", generators, oracle_rep=variant == "-oraclerep")
    raise KeyError(f"unknown env {name!r} (supported: OGBench state-based dataset names such as "
                   "antmaze-large-navigate-v0, with -oraclerep or -singletask[-taskN] variants; dm_control: "
                   f"{', '.join(DMC_TASKS)}; Minari datasets: minari/<dataset id>)")


def eval_group(env: EnvInfo, tasks: list[int], episodes_per_task: int, eval_seed: int, train_seed: int,
               env_spec: str | None = None
               ) -> tuple[list[Episode], np.ndarray, np.ndarray | None, list[tuple[int, int]]]:
    """One cell's evaluation episodes (`EnvKind.eval_episodes`) as (episodes, first observations (n, obs_dim),
    goals (n, goal_dim) or None, slots (n) of (task, episode)): what a simulator process builds
    (cfgrl.envs.rollout.ProcessSteps)."""
    setup = env.kind.eval_episodes(env, tasks, episodes_per_task, eval_seed, train_seed, env_spec)
    return setup.episodes, setup.first_obs, setup.goals, setup.slots
