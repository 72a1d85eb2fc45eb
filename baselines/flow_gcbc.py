"""Flow GCBC: a goal-conditioned flow-matching policy pi(a | s, g) (goal-conditioned CFGRL at w = 1, trained
without a null goal): flow matching on hindsight goals, no guidance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from baselines.flow_bc import FlowBC, FlowBCConfig
from cfgrl.core.agent import GEOMETRIC_DISCOUNT, Range


@dataclass
class FlowGCBCConfig(FlowBCConfig):
    geometric_discount: float | None = None  # None: uniform future goals (authors' code); gamma: geometric

    RANGES: ClassVar[dict[str, Range]] = {"geometric_discount": GEOMETRIC_DISCOUNT}


class FlowGCBC(FlowBC):
    Config = FlowGCBCConfig
    guided = False
    goal_conditioned = True
    batch_kind = "goals"
