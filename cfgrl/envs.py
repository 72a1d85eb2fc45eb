"""Environments the suite evaluates on, named by their OGBench dataset name.

- `<maze>-navigate-v0` (kind 'ogbench-goal'): goal-conditioned; OGBench's 5 evaluation tasks; success rate.
- `<maze>-navigate-singletask[-taskN]-v0` (kind 'ogbench-single'): the same data with rewards relabelled for one
  task (OGBench's default task is task 1); one evaluation task; success rate and return.
- dm_control ExORL tasks `walker-run`, `cheetah-run-backward`, `jaco-reach-top-left`, ... (kind 'dmc'): ExORL-format
  episodes (downloaded RND data or generated offline) with rewards recomputed for the task; episode return.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class EnvInfo:
    name: str  # the suite's env name = OGBench dataset name, e.g. 'pointmaze-medium-navigate-v0'
    kind: str  # 'ogbench-goal', 'ogbench-single' or 'dmc'
    eval_env_id: str  # gymnasium id of the evaluation env, e.g. 'pointmaze-medium-v0'
    datagen_env_id: str  # gymnasium id the offline generator runs, e.g. 'pointmaze-medium-v0'
    generators: tuple[str, ...]  # offline generators that can make its dataset
    num_tasks: int = 5  # evaluation tasks (goal-conditioned) or 1 (single task)

    @property
    def goal_conditioned(self) -> bool:
        return self.kind == "ogbench-goal"


_NAVIGATE = re.compile(r"^pointmaze-(medium|large|giant|teleport)-navigate(-singletask(-task([1-5]))?)?-v0$")


def resolve_env(name: str) -> EnvInfo:
    """Look up an environment by dataset name; KeyError names what is supported."""
    from cfgrl.dmc import TASKS as DMC_TASKS

    if name in DMC_TASKS:
        return EnvInfo(name, "dmc", name, name.split("-")[0], ("exorl",), 1)
    m = _NAVIGATE.match(name)
    if m:
        maze = f"pointmaze-{m.group(1)}"
        if m.group(2):
            task = f"-task{m.group(4)}" if m.group(4) else ""
            return EnvInfo(name, "ogbench-single", f"{maze}-singletask{task}-v0", f"{maze}-v0", ("navigate",), 1)
        return EnvInfo(name, "ogbench-goal", f"{maze}-v0", f"{maze}-v0", ("navigate",))
    raise KeyError(f"unknown env {name!r} (supported: pointmaze-{{medium,large,giant,teleport}}-navigate"
                   f"[-singletask[-task1..5]]-v0, {', '.join(DMC_TASKS)})")
