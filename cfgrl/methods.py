"""The method registry: spec name -> agent class, every method imported by name here (the imports point one way:
the registry, in the pipeline's layer, imports the methods; the methods import only `cfgrl.core`)."""

from __future__ import annotations

from baselines.awr import AWR
from baselines.bc import BC
from baselines.flow_bc import FlowBC
from baselines.flow_gcbc import FlowGCBC
from baselines.flow_hgcbc import FlowHGCBC
from baselines.fql import FQL
from baselines.gcbc import GCBC
from baselines.hgcbc import HGCBC
from baselines.idql import IDQL
from cfgrl.cfgrl import CFGRL
from cfgrl.core.agent import Agent
from cfgrl.gc_cfgrl import GCCFGRL
from cfgrl.hcfgrl import HCFGRL

METHODS: dict[str, type[Agent]] = {
    "gcbc": GCBC,  # Gaussian goal-conditioned BC
    "gc_cfgrl": GCCFGRL,  # goal-conditioned CFGRL (flow GCBC + guidance on the goal)
    "cfgrl": CFGRL,  # offline-RL CFGRL: flow policy + IQL optimality label, guided
    "awr": AWR,  # advantage-weighted regression on the same IQL critic
    "idql": IDQL,  # IQL critic + flow behaviour policy, N samples re-ranked by the critic
    "fql": FQL,  # flow Q-learning: flow BC distilled into a one-step policy that maximises Q
    "bc": BC,  # Gaussian BC (goal ignored)
    "flow_bc": FlowBC,  # unconditional flow-matching BC (goal ignored)
    "flow_gcbc": FlowGCBC,  # goal-conditioned flow-matching BC, no guidance
    "hcfgrl": HCFGRL,  # hierarchical goal-conditioned CFGRL: both levels guided with the same w
    "hgcbc": HGCBC,  # hierarchical Gaussian GCBC (high level: subgoal mean, low level: action)
    "flow_hgcbc": FlowHGCBC,  # hierarchical flow GCBC (HCFGRL's policy, no null goals)
}


def method_class(name: str) -> type[Agent]:
    """The agent class registered under `name`."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r} (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]
