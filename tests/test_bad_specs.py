"""The corpus of broken specs (tests/specs/bad/, written by tests/specs/make_bad_specs.py): every one is refused
by `cfgrl check-spec` with one line naming the file and the field, before anything is written."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cfgrl.pipeline.spec import SpecError, load_spec
from tests.conftest import REPO

BAD = sorted((REPO / "tests" / "specs" / "bad").glob("*.yaml"))


def expectation(path) -> tuple[str, str]:
    first = path.read_text().splitlines()[0]
    m = re.match(r"# expect: (.+?): (.+)$", first)
    assert m, f"{path.name}: first line must be '# expect: <field>: <fragment>'"
    return m.group(1), m.group(2)


def test_the_corpus_is_large():
    assert len(BAD) >= 40


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_broken_spec_is_refused_with_one_line(path):
    field, fragment = expectation(path)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert "\n" not in message, message
    assert message.startswith(f"{path}: {field}"), message
    assert fragment in message, message


def test_check_spec_prints_one_line_and_creates_nothing(tmp_path):
    for path in BAD[:5]:
        proc = subprocess.run([sys.executable, "-m", "cfgrl", "check-spec", str(path)], capture_output=True,
                              text=True, cwd=tmp_path)
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"error: {path}"), proc.stderr
    assert list(tmp_path.iterdir()) == []
