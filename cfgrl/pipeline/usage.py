"""What a job cost, measured by the job itself: its CPU time (user + sys, of the process and of the worker
processes it waited for, from getrusage) and its peak resident memory, written as the last line of its log.

Snakemake's benchmark files sample a job's process tree while it runs, so a short job's last seconds are missed
(one 35 s evaluation job: 15.0 CPU-s in its benchmark file, 33.6 s user under /usr/bin/time); the report's cost
table reads this line where a job's log has it, and the benchmark file's cpu_time where it has not.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

PREFIX = "cfgrl job usage: "  # the log line's start; the rest is a JSON object (usage_record's keys)


def usage_record(started: float) -> dict[str, float]:
    """{'cpu_s', 'user_s', 'sys_s', 'wall_s', 'max_rss_mb'} of this process and its waited-for children so far;
    started: time.monotonic() at the command's start (wall_s counts from there, CPU time from process start)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = own.ru_utime + children.ru_utime, own.ru_stime + children.ru_stime
    per_mb = 2**20 if sys.platform == "darwin" else 2**10  # ru_maxrss: bytes on macOS, KiB on Linux
    return {"cpu_s": round(user + system, 3), "user_s": round(user, 3), "sys_s": round(system, 3),
            "wall_s": round(time.monotonic() - started, 3),
            "max_rss_mb": round(max(own.ru_maxrss, children.ru_maxrss) / per_mb, 1)}


def usage_line(started: float) -> str:
    return PREFIX + json.dumps(usage_record(started), sort_keys=True)


def read_usage(log: Path) -> dict[str, Any] | None:
    """The usage record of a job's log (its last usage line), or None when the log has none (an older run, a job
    that failed, a log that cannot be read)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith(PREFIX):
            try:
                record = json.loads(line[len(PREFIX):])
            except ValueError:
                return None
            return record if isinstance(record, dict) and "cpu_s" in record else None
    return None
