"""The README's commands are the ones CI runs; the spec example of docs/specs.md is a valid spec; the README is
short and its links resolve."""

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


def test_readme_fits_two_screens_and_its_doc_links_exist():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 120
    for page in set(re.findall(r"`(docs/[a-z-]+\.md)`", readme)):
        assert (REPO / page).exists(), page


def test_readme_spec_example_is_a_valid_spec(tmp_path):
    from cfgrl.pipeline.spec import load_spec

    text = (REPO / "docs" / "specs.md").read_text()
    block = text[text.index("## A spec"):]
    block = block[block.index("```yaml") + len("```yaml"):]
    path = tmp_path / "my-run.yaml"
    path.write_text(block[:block.index("```")])
    spec = load_spec(path)
    assert spec.sweeps["awr"].entries == ("awr_t1", "awr_t3", "awr_t10")
    assert {c[3] for c in spec.cells() if c[0] == "validation" and c[1].startswith("awr")} == {8, 9}


def test_workflow_passes_snakemake_lint_and_snakefmt():
    """The rules stay thin and formatted: `snakemake --lint` reports nothing, `snakefmt --check` changes nothing."""
    import shutil
    import subprocess
    import sys

    lint = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--cores", "1", "-s", str(REPO / "Snakefile"),
                           "--directory", str(REPO)], capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0 and "Lints for" not in lint.stdout + lint.stderr, (lint.stdout + lint.stderr)[-3000:]
    snakefmt = shutil.which("snakefmt")
    assert snakefmt is not None, "snakefmt is in the test extras"
    files = [str(REPO / "Snakefile"), *map(str, sorted((REPO / "rules").glob("*.smk")))]
    fmt = subprocess.run([snakefmt, "--check", *files], capture_output=True, text=True,
                         timeout=120)
    assert fmt.returncode == 0, fmt.stderr[-3000:]
