"""Flow HGCBC: hierarchical goal-conditioned flow BC, the authors' unguided hierarchical flow baseline.

The same two-level flow policy as HCFGRL (cfgrl/hcfgrl.py: a high level proposing a subgoal s_{t+k} in goal
space, a low level acting toward it, the subgoal resampled every step) but trained without null goals and
sampled without guidance, i.e. conceptually HCFGRL at w = 1 (which differs only in the 10% goal dropout of its
training). It is `HierarchicalFlow` with `guided = False`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cfgrl.hcfgrl import HierarchicalFlow, HierarchicalFlowConfig


@dataclass
class FlowHGCBCConfig(HierarchicalFlowConfig):
    """HCFGRL's fields without the null-goal dropout (see cfgrl.hcfgrl.HierarchicalFlowConfig)."""


class FlowHGCBC(HierarchicalFlow):
    Config = FlowHGCBCConfig
    guided = False  # act() ignores w: both levels sample their conditional flow
    goal_conditioned = True
    batch_kind = "subgoals"
