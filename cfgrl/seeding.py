"""Seeds: every random stream of the suite is derived from integer keys here, and the one place that touches
numpy's global RNG (OGBench's environments and oracles draw from it) saves and restores it around the call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np


def derive_seed(*keys: int) -> int:
    """A 32-bit seed determined by the integer keys (np.random.SeedSequence(keys)): e.g. (dataset seed, episode)
    for generated episodes, (eval seed, training seed, task, episode) for evaluation episodes. Independent of how
    work is chunked; distinct keys give independent streams."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


@contextmanager
def global_numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG for the duration of the block, then restore the state it had. For libraries that
    draw from `np.random` directly (OGBench's maze start/goal jitter and its manipulation oracles)."""
    state = np.random.get_state()
    np.random.seed(seed % (2**32))
    try:
        yield
    finally:
        np.random.set_state(state)
