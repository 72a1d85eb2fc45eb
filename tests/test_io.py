"""Atomic writes: the target is whole or absent, and a killed writer's hidden temporary file is removed by the next
successful write of the same path (and only of that path)."""

import os
import signal
import subprocess
import sys

import pytest

from cfgrl.io import atomic_write, atomic_write_text


def test_a_killed_writer_leaves_no_target_and_the_next_write_removes_its_temporary(tmp_path):
    target = tmp_path / "report.md"
    writer = subprocess.Popen([sys.executable, "-c", (
        "import time, sys; from cfgrl.io import atomic_write\n"
        "def slow(f):\n    f.write(b'half'); f.flush(); print('writing', flush=True); time.sleep(60)\n"
        f"atomic_write({str(target)!r}, slow)")], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    left = [p.name for p in tmp_path.iterdir()]
    assert not target.exists() and len(left) == 1 and left[0].startswith(".report.md.") and left[0].endswith(".tmp")
    other = tmp_path / ".report.md.x.abcdefgh.tmp"  # the temporary of another file, report.md.x
    other.write_bytes(b"")
    atomic_write_text(target, "whole\n")
    assert target.read_text() == "whole\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "report.md"]


def test_a_failing_writer_keeps_the_old_file(tmp_path):
    target = tmp_path / "cell.json"
    atomic_write_text(target, "old\n")

    def fails(f):
        f.write(b"new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, fails)
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["cell.json"]
