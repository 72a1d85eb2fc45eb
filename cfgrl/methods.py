"""The method registry: spec name -> agent class (imported lazily so the CLI starts fast)."""

from __future__ import annotations

import importlib

from cfgrl.core.agent import Agent

METHODS: dict[str, str] = {
    "gcbc": "baselines.gcbc:GCBC",  # Gaussian goal-conditioned BC
    "gc_cfgrl": "cfgrl.gc_cfgrl:GCCFGRL",  # goal-conditioned CFGRL (flow GCBC + guidance on the goal)
    "cfgrl": "cfgrl.cfgrl:CFGRL",  # offline-RL CFGRL: flow policy + IQL optimality label, guided
    "awr": "baselines.awr:AWR",  # advantage-weighted regression on the same IQL critic
    "idql": "baselines.idql:IDQL",  # IQL critic + flow behaviour policy, N samples re-ranked by the critic
    "fql": "baselines.fql:FQL",  # flow Q-learning: flow BC distilled into a one-step policy that maximises Q
    "bc": "baselines.bc:BC",  # Gaussian BC (goal ignored)
    "flow_bc": "baselines.flow_bc:FlowBC",  # unconditional flow-matching BC (goal ignored)
    "flow_gcbc": "baselines.flow_gcbc:FlowGCBC",  # goal-conditioned flow-matching BC, no guidance
    "hcfgrl": "cfgrl.hcfgrl:HCFGRL",  # hierarchical goal-conditioned CFGRL: both levels guided with the same w
    "hgcbc": "baselines.hgcbc:HGCBC",  # hierarchical Gaussian GCBC (high level: subgoal mean, low level: action)
    "flow_hgcbc": "baselines.flow_hgcbc:FlowHGCBC",  # hierarchical flow GCBC (HCFGRL's policy, no null goals)
}


def method_class(name: str) -> type[Agent]:
    """The agent class registered under `name`."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r} (known: {', '.join(sorted(METHODS))})")
    module, attr = METHODS[name].split(":")
    return getattr(importlib.import_module(module), attr)
