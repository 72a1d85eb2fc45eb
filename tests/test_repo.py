"""The README's commands are the ones CI runs."""

import re

from tests.conftest import REPO


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    commands = re.findall(r"```bash\n(.+?)\n```", readme)
    test_cmd = [c for c in commands if "pytest" in c]
    main_cmd = [c for c in commands if "snakemake --cores all" in c]
    assert len(test_cmd) >= 1 and len(main_cmd) >= 1
    assert test_cmd[0] in ci.splitlines()
