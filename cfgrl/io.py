"""Atomic file writes: a reader never sees a partial file, a killed writer leaves the old file intact (and its
hidden temporary file, which the next successful write of the same path removes)."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from glob import escape as glob_escape
from pathlib import Path
from typing import IO, Any

import numpy as np


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call write(file) on a temporary file in the target folder, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _remove_stale_temporaries(path)


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporary files of `path` that a killed writer (SIGKILL: no handler runs) left behind."""
    own = re.compile(rf"\.{re.escape(path.name)}\.[A-Za-z0-9_]{{8}}\.tmp")
    for stale in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        if own.fullmatch(stale.name):
            stale.unlink(missing_ok=True)


def atomic_savez(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed, atomically."""
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
