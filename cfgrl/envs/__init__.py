"""Environments: dm_control stepping (`dmc`), the one lockstep rollout (`rollout`) and the registry of env names
and env kinds (`registry`), which knows each kind's metric, dataset maker, sampler and evaluation episodes.
Torch-free: policies come in as numpy callables."""
