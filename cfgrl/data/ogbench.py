"""OGBench datasets, downloaded or generated, loaded uniformly (optionally memory-mapped).

`load_ogbench(name, ...)` returns the same (train, val) dictionaries as
`ogbench.make_env_and_datasets(name, dataset_path=..., compact_dataset=...)` for every name form:
- '<env>-<type>-v0' (goal-conditioned), e.g. 'pointmaze-large-navigate-v0';
- '<env>-<type>-singletask[-taskN]-v0': rewards and masks for one task, from `ogbench.relabel_utils.relabel_dataset`
  (OGBench's own code, run on our arrays);
- '<env>-<type>-oraclerep-v0': ground-truth goal representations `oracle_reps`, from
  `ogbench.relabel_utils.add_oracle_reps`.

Lazy loading: np.load(mmap_mode=...) cannot map members of a compressed .npz, so with `lazy=True` each member is
copied once, decompressed, to `<file>.npycache/<key>.npy` (streamed: peak memory one chunk; written atomically;
reused while the .npz's size and mtime are unchanged) and memory-mapped read-only. Observations, actions and the
info keys stay on disk until touched; only the small per-row vectors that OGBench derives (float32 terminals,
valids, rewards, masks, oracle reps) are in memory. The compact layout (`compact=True`) keeps the mapping; the
regular layout (`compact=False`, with next_observations) indexes with a mask, which copies into memory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cfgrl.data.layout import INFO_KEYS, DataError, read_npz, val_path, validate_arrays
from cfgrl.io import atomic_write_json

DEFAULT_DATA_DIR = "~/.ogbench/data"
_COPY_BYTES = 1 << 22


@dataclass(frozen=True)
class OGBenchName:
    """A dataset name split the way ogbench.make_env_and_datasets splits it."""

    name: str  # as given, e.g. 'pointmaze-large-navigate-singletask-task2-v0'
    env_name: str  # gymnasium id, e.g. 'pointmaze-large-singletask-task2-v0'
    dataset_name: str  # file stem, e.g. 'pointmaze-large-navigate-v0'
    variant: str  # 'goal', 'singletask' or 'oraclerep'

    @property
    def visual(self) -> bool:
        return "visual" in self.env_name or "powderworld" in self.env_name


def parse_name(name: str) -> OGBenchName:
    """'antmaze-large-navigate-oraclerep-v0' -> env 'antmaze-large-v0', file 'antmaze-large-navigate-v0'."""
    splits = name.split("-")
    if len(splits) < 3 or not splits[-1].startswith("v"):
        raise ValueError(f"not an OGBench dataset name: {name!r} (expected e.g. 'pointmaze-large-navigate-v0')")
    if "singletask" in splits:
        pos = splits.index("singletask")
        return OGBenchName(name, "-".join(splits[: pos - 1] + splits[pos:]), "-".join(splits[:pos] + splits[-1:]),
                           "singletask")
    if "oraclerep" in splits:
        return OGBenchName(name, "-".join(splits[:-3] + splits[-1:]), "-".join(splits[:-2] + splits[-1:]),
                           "oraclerep")
    return OGBenchName(name, "-".join(splits[:-2] + splits[-1:]), name, "goal")


# --------------------------------------------------------------------------------------------------------------
# Memory-mapped members


def npy_cache(npz_path: str | Path, cache_dir: str | Path | None = None) -> dict[str, Path]:
    """Decompress each member of an .npz once into `<cache_dir>/<key>.npy`; returns {key: path}.

    cache_dir: default `<npz_path>.npycache` beside the file. The cache is reused while the .npz's size and
    modification time match the ones recorded in `<cache_dir>/source.json`; members are streamed (a .npz member
    is itself a complete .npy file) into temporary files and renamed into place, the manifest last.
    """
    npz_path = Path(npz_path)
    cache_dir = Path(cache_dir) if cache_dir is not None else npz_path.with_name(npz_path.name + ".npycache")
    try:
        st = npz_path.stat()
    except OSError as err:
        raise DataError(f"{npz_path}: cannot read ({err.strerror or err})") from err
    source = {"file": npz_path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    manifest = cache_dir / "source.json"
    if manifest.exists():
        try:
            recorded = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError):
            recorded = {}
        if recorded.get("source") == source:
            paths = {k: cache_dir / f"{k}.npy" for k in recorded.get("keys", [])}
            if all(p.exists() for p in paths.values()):
                return paths
    cache_dir.mkdir(parents=True, exist_ok=True)
    keys = []
    try:
        with zipfile.ZipFile(npz_path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[:-4]
                fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=cache_dir)
                try:
                    with os.fdopen(fd, "wb") as dst, zf.open(info) as src:
                        shutil.copyfileobj(src, dst, _COPY_BYTES)
                    os.replace(tmp, cache_dir / f"{key}.npy")
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
                keys.append(key)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise DataError(f"{npz_path}: cannot read ({err})") from err
    atomic_write_json(manifest, {"source": source, "keys": keys})
    return {k: cache_dir / f"{k}.npy" for k in keys}


def open_npz(path: str | Path, lazy: bool = False, cache_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """All arrays of an .npz: in memory (lazy=False) or memory-mapped read-only from the .npy cache (lazy=True)."""
    path = Path(path)
    if lazy:
        try:
            return {k: np.load(p, mmap_mode="r") for k, p in npy_cache(path, cache_dir).items()}
        except ValueError as err:
            raise DataError(f"{path}: cannot map ({err})") from err
    return read_npz(path)


# --------------------------------------------------------------------------------------------------------------
# Loading


def load_split(
    path: str | Path,
    compact: bool = False,
    add_info: bool = False,
    ob_dtype: Any = np.float32,
    action_dtype: Any = np.float32,
    lazy: bool = False,
    cache_dir: str | Path | None = None,
    validate: bool = True,
) -> dict[str, np.ndarray]:
    """One dataset file as ogbench.utils.load_dataset returns it.

    Compact layout: observations (N, obs_dim), actions (N, A), terminals (N,) (1 on each trajectory's last
    two rows), valids (N,) (0 on each trajectory's last row). Regular layout: observations, actions,
    next_observations for the N - E transitions, terminals (1 on each trajectory's last transition).
    add_info adds qpos, qvel, button_states (those present), aligned the same way.
    """
    raw = open_npz(path, lazy=lazy, cache_dir=cache_dir)
    if validate:
        validate_arrays(raw, path)
    data = {
        "observations": raw["observations"].astype(ob_dtype, copy=False),
        "actions": raw["actions"].astype(action_dtype, copy=False),
        "terminals": np.asarray(raw["terminals"]).astype(np.float32),
    }
    info_keys = [k for k in INFO_KEYS if add_info and k in raw]
    for k in info_keys:
        data[k] = raw[k]
    terminals = data["terminals"]
    if compact:
        data["valids"] = 1.0 - terminals
        shifted = np.concatenate([terminals[1:], [1.0]])
        data["terminals"] = np.minimum(terminals + shifted, 1.0).astype(np.float32)
    else:
        ob_mask = (1.0 - terminals).astype(bool)
        next_ob_mask = np.concatenate([[False], ob_mask[:-1]])
        data["next_observations"] = data["observations"][next_ob_mask]
        data["observations"] = data["observations"][ob_mask]
        data["actions"] = data["actions"][ob_mask]
        data["terminals"] = np.concatenate([terminals[1:], [1.0]])[ob_mask].astype(np.float32)
        for k in info_keys:
            data[k] = data[k][ob_mask]
    return data


def dataset_paths(name: str, data_dir: str | Path = DEFAULT_DATA_DIR,
                  dataset_path: str | Path | None = None) -> tuple[Path, Path]:
    """(train, val) file paths for a dataset name: `dataset_path` and its -val twin, or `<data_dir>/<file>`."""
    if dataset_path is not None:
        return Path(dataset_path), val_path(dataset_path)
    stem = parse_name(name).dataset_name
    base = Path(data_dir).expanduser()
    return base / f"{stem}.npz", base / f"{stem}-val.npz"


def make_ogbench_env(name: str, **env_kwargs: Any) -> Any:
    """The evaluation environment for a dataset name, made by ogbench (single-task / oracle-rep variants too)."""
    import ogbench

    return ogbench.make_env_and_datasets(name, env_only=True, **env_kwargs)


def load_ogbench(
    name: str,
    dataset_path: str | Path | None = None,
    data_dir: str | Path = DEFAULT_DATA_DIR,
    compact: bool = False,
    lazy: bool = False,
    add_info: bool = False,
    env: Any = None,
    cache_dir: str | Path | None = None,
    validate: bool = True,
    download: bool = False,
    mirrors: list[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(train, val) dictionaries for an OGBench dataset name, equal to ogbench.make_env_and_datasets' output.

    dataset_path: a downloaded or generated train file (its val twin beside it); default `<data_dir>/<file>`.
    compact: OGBench's compact layout (valids instead of next_observations). lazy: memory-map (see module doc).
    env: the environment for relabelling (single-task / oracle-rep names); made with make_ogbench_env if None.
    cache_dir: where lazy mode puts the .npy copies (default beside each file; the val file gets `<dir>-val`).
    download: fetch missing files with cfgrl.data.download (OGBench's host or `mirrors`); otherwise a missing file is
    a DataError naming it.
    Singletask: adds rewards (N,) and masks (N,) float32; oraclerep: adds oracle_reps (N, goal_dim) float32.
    """
    parsed = parse_name(name)
    train_path, val_file = dataset_paths(name, data_dir, dataset_path)
    for p in (train_path, val_file):
        if not p.exists():
            if download:
                from cfgrl.data.download import download_ogbench

                download_ogbench(parsed.dataset_name, p.parent, mirrors)
            if not p.exists():
                raise DataError(f"{p}: no such dataset file (download it with `cfgrl download ogbench "
                                f"{parsed.dataset_name}` or generate it)")
    ob_dtype = np.uint8 if parsed.visual else np.float32
    action_dtype = np.int32 if "powderworld" in parsed.env_name else np.float32
    need_info = add_info or parsed.variant != "goal"
    splits = []
    for i, p in enumerate((train_path, val_file)):
        cdir = None if cache_dir is None else Path(cache_dir) / ("train" if i == 0 else "val")
        splits.append(load_split(p, compact=compact, add_info=need_info, ob_dtype=ob_dtype,
                                 action_dtype=action_dtype, lazy=lazy, cache_dir=cdir, validate=validate))
    if parsed.variant != "goal":
        from ogbench.relabel_utils import add_oracle_reps, relabel_dataset

        env = env if env is not None else make_ogbench_env(name)
        for split in splits:
            if parsed.variant == "singletask":
                relabel_dataset(parsed.env_name, env, split)
            else:
                add_oracle_reps(parsed.env_name, env, split)
    if not add_info:
        for split in splits:
            for k in INFO_KEYS:
                split.pop(k, None)
    return splits[0], splits[1]
