"""Environments the suite evaluates on, named by their dataset name.

OGBench state-based families (the name is OGBench's dataset name; `cfgrl.ogbench_source.parse_name` splits it):
- `<env>-<type>-v0`, e.g. `antmaze-large-navigate-v0` (kind 'ogbench-goal'): goal-conditioned, the goal is the
  goal observation; OGBench's 5 evaluation tasks; success rate.
- `<env>-<type>-oraclerep-v0` (kind 'ogbench-goal', oracle_rep): goals are OGBench's ground-truth goal
  representations (the paper's Table 3 setting).
- `<env>-<type>-singletask[-taskN]-v0` (kind 'ogbench-single'): rewards relabelled for one task (default task 1,
  as OGBench); one evaluation task; success rate and return.
Offline generation exists for pointmaze navigate data (generator 'navigate', `cfgrl.datagen`) and for the play data
of cube-single, cube-double, scene and puzzle-3x3 (generator 'play', `cfgrl.manipgen`); other OGBench datasets are
downloaded.
dm_control ExORL tasks `walker-run`, `cheetah-run-backward`, `jaco-reach-top-left`, ... (kind 'dmc'): ExORL-format
episodes (downloaded RND data or generated offline) with rewards recomputed for the task; episode return.
Minari datasets `minari/<dataset id>`, e.g. `minari/mujoco/halfcheetah/medium-v0` (kind 'minari'): the Minari id
verbatim after the prefix; read from a local MINARI_DATASETS_PATH or downloaded by minari (never generated);
evaluated in the dataset's own gymnasium environment; one task; episode return.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class EnvInfo:
    name: str  # the suite's env name = the dataset name, e.g. 'pointmaze-medium-navigate-v0'
    kind: str  # 'ogbench-goal', 'ogbench-single', 'dmc' or 'minari'
    eval_env_id: str  # gymnasium id (OGBench), task name (dm_control) or Minari dataset id of the evaluation env
    datagen_env_id: str  # what the offline generator runs: gymnasium id (OGBench), domain (dm_control); Minari id
    generators: tuple[str, ...]  # offline generators that can make its dataset (empty: download only)
    num_tasks: int = 5  # evaluation tasks (goal-conditioned) or 1 (single task)
    oracle_rep: bool = False  # goals are OGBench's oracle goal representations

    @property
    def goal_conditioned(self) -> bool:
        return self.kind == "ogbench-goal"


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
    from cfgrl.dmc import TASKS as DMC_TASKS

    dataset_id = minari_id(name)
    if dataset_id is not None:
        if not _MINARI_ID.match(dataset_id):
            raise KeyError(f"unknown env {name!r}: not a Minari dataset id after 'minari/' (expected "
                           "'minari/<namespace>/<name>-v<N>', e.g. minari/mujoco/halfcheetah/medium-v0)")
        return EnvInfo(name, "minari", dataset_id, dataset_id, (), 1)
    if name in DMC_TASKS:
        domain = name.split("-")[0]
        return EnvInfo(name, "dmc", name, domain, ("exorl",) if domain in ("walker", "cheetah", "quadruped") else (),
                       1)
    m = _OGBENCH.match(name)
    if m:
        from cfgrl.ogbench_source import parse_name

        env, kind, variant = m.group("env"), m.group("type"), m.group("variant") or ""
        generators: tuple[str, ...] = ()
        if env.startswith("pointmaze") and kind == "navigate":
            generators = ("navigate",)
        elif env in PLAY_GENERATED and kind == "play":
            generators = ("play",)
        eval_id = parse_name(name).env_name
        if variant.startswith("-singletask"):
            return EnvInfo(name, "ogbench-single", eval_id, f"{env}-v0", generators, 1)
        return EnvInfo(name, "ogbench-goal", eval_id, f"{env}-v0", generators, oracle_rep=variant == "-oraclerep")
    raise KeyError(f"unknown env {name!r} (supported: OGBench state-based dataset names such as "
                   "antmaze-large-navigate-v0, with -oraclerep or -singletask[-taskN] variants; dm_control: "
                   f"{', '.join(DMC_TASKS)}; Minari datasets: minari/<dataset id>)")
