"""Goal-conditioned behavioural cloning with a Gaussian policy (OGBench's GCBC).

The policy is N(mu(s, g), std^2 I) with a fixed std (OGBench's `const_std`), trained by maximum likelihood on
hindsight goals (future states of the same trajectory); evaluation takes the mean action. It is BC
(baselines/bc.py) with the goal as an extra input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from baselines.bc import BC, BCConfig
from cfgrl.core.agent import GEOMETRIC_DISCOUNT, Range


@dataclass
class GCBCConfig(BCConfig):
    geometric_discount: float | None = None  # None: uniform future goals; gamma: geometric offsets

    RANGES: ClassVar[dict[str, Range]] = {"geometric_discount": GEOMETRIC_DISCOUNT}


class GCBC(BC):
    Config = GCBCConfig
    goal_conditioned = True
    batch_kind = "goals"
