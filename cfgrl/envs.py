"""Environments the suite evaluates on, named by their OGBench dataset name."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class EnvInfo:
    dataset: str  # OGBench dataset name, e.g. 'pointmaze-medium-navigate-v0'
    eval_env_id: str  # gymnasium id of the evaluation environment, e.g. 'pointmaze-medium-v0'
    kind: str  # 'ogbench-goal': goal-conditioned, OGBench's evaluation tasks, success rate
    generators: tuple[str, ...]  # offline generators that can make its dataset
    num_tasks: int = 5  # OGBench evaluation tasks


_NAVIGATE = re.compile(r"^pointmaze-(medium|large|giant|teleport)-navigate-v0$")


def resolve_env(name: str) -> EnvInfo:
    """Look up an environment by dataset name; KeyError names what is supported."""
    m = _NAVIGATE.match(name)
    if m:
        return EnvInfo(name, f"pointmaze-{m.group(1)}-v0", "ogbench-goal", ("navigate",))
    raise KeyError(f"unknown env {name!r} (supported: pointmaze-{{medium,large,giant,teleport}}-navigate-v0)")
