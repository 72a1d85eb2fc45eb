"""What the dataset writers share: episode chunks for process pools, and the one validation-split rule.

Validation rule: a dataset's `-val.npz` file holds whole episodes that its training file does not, one for every
ten training episodes (at least one), as OGBench ships its datasets (1000 + 100 episodes). Generators make them as
extra episodes after the training ones, so the training file is the spec's `episodes` whatever the split; a fixed
dataset (downloaded ExORL episodes, a Minari dataset) gives up its last ones (`validation_episodes`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from cfgrl.data.layout import DataError, val_path
from cfgrl.io import atomic_savez


def split_evenly(items: list, n: int) -> list[list]:
    """`items` cut into at most n consecutive chunks of equal size (the last may be shorter); work units for
    process pools."""
    size = max(1, -(-len(items) // n))
    return [items[i : i + size] for i in range(0, len(items), size)]


def extra_validation_episodes(train_episodes: int) -> int:
    """How many validation episodes a generator makes beside `train_episodes` training ones."""
    return max(1, train_episodes // 10)


def validation_episodes(total_episodes: int) -> int:
    """How many of a fixed dataset's `total_episodes` episodes are held out (one per ten kept, at least one)."""
    if total_episodes < 2:
        raise DataError(f"a dataset of {total_episodes} episode(s) cannot be split into training and validation "
                        "episodes (at least 2 needed)")
    return max(1, total_episodes // 11)


def write_episode_splits(
    make_episodes: Callable[[list[int]], dict[str, np.ndarray]],
    out_path: str | Path,
    episodes: int,
    workers: int | None = None,
    dtypes: dict[str, type] | None = None,
) -> dict[str, int]:
    """Generate episodes 0 .. episodes + n_val - 1 (n_val = extra_validation_episodes) and write OGBench's two
    files.

    `make_episodes(episode_indices)` returns per-step arrays (rows, ...) of those episodes in order, with a
    'terminals' (rows,) key that is true on each episode's last row; it must be picklable (a module-level function
    or a functools.partial of one), as chunks of indices run in `workers` processes (default: all cores). The
    first `episodes` episodes go to `out_path`, the rest to its `-val.npz` twin; arrays are cast to float32 except
    'terminals' (bool) and keys named in `dtypes`. Returns the row counts per split.
    """
    workers = workers or os.cpu_count() or 1
    n_val = extra_validation_episodes(episodes)
    chunks = split_evenly(list(range(episodes + n_val)), workers * 4)
    if workers == 1:
        parts = [make_episodes(c) for c in chunks]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(make_episodes, chunks))
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    split = int(np.flatnonzero(merged["terminals"])[episodes - 1]) + 1
    dtypes = {"terminals": bool, **(dtypes or {})}
    train = {k: v[:split].astype(dtypes.get(k, np.float32)) for k, v in merged.items()}
    val = {k: v[split:].astype(dtypes.get(k, np.float32)) for k, v in merged.items()}
    out_path = Path(out_path)
    atomic_savez(val_path(out_path), val)
    atomic_savez(out_path, train)
    return {"train": len(train["observations"]), "val": len(val["observations"])}


def write_transition_splits(arrays: dict[str, np.ndarray], out_path: str | Path,
                            train_episodes: int | None = None) -> dict[str, int]:
    """Write reward-labelled transitions (rows (N, ...), `episode_lengths` (E,), 0-d metadata) as a training file
    and its `-val.npz` twin of held-out episodes: the episodes after the first `train_episodes` (generated data,
    whose extra episodes are the validation ones), else the last `validation_episodes(E)`. Returns counts."""
    lengths = arrays["episode_lengths"]
    n_train = train_episodes if train_episodes is not None else len(lengths) - validation_episodes(len(lengths))
    if not 0 < n_train < len(lengths):
        raise DataError(f"{out_path}: {len(lengths)} episodes cannot give {n_train} training episodes and at "
                        "least one validation episode")
    split = int(np.sum(lengths[:n_train]))

    def part(train: bool) -> dict[str, np.ndarray]:
        out = {}
        for k, v in arrays.items():
            if k == "episode_lengths":
                out[k] = v[:n_train] if train else v[n_train:]
            else:
                out[k] = v if v.ndim == 0 else (v[:split] if train else v[split:])
        return out

    train, val = part(True), part(False)
    atomic_savez(val_path(out_path), val)
    atomic_savez(out_path, train)
    return {"train": int(split), "val": int(len(arrays["rewards"]) - split), "train_episodes": int(n_train),
            "val_episodes": int(len(lengths) - n_train)}
