"""The old import path of cfgrl.envs.dmc, kept because ../shared/reference/run_exorl.py (the side-by-side driver of
the reference implementation) calls `cfgrl.dmc.evaluate`. New code imports cfgrl.envs.dmc."""

from cfgrl.envs.dmc import *  # noqa: F401,F403
from cfgrl.envs.dmc import evaluate  # noqa: F401
