# cfgrl workflow: data -> train (method, env, seed) -> evaluate (method, env, seed, w) -> cells -> report.
# Spec: `--config spec=specs/X.yaml` or `--configfile specs/X.yaml`; the default is specs/default.yaml.
# Rules are thin shell calls into the package CLI (`cfgrl ...`); the logic lives in cfgrl/ and analysis/.
import re
import sys
from pathlib import Path

# importing cfgrl applies CFGRL_CPU_KERNELS: a bad value stops here, in one line
from cfgrl.cpu_kernels import SettingError, check_environment
from cfgrl.pipeline.spec import SpecError, load_spec

try:
    check_environment()  # CFGRL_GELU too, before any job runs
except SettingError as err:
    sys.stderr.write(f"error: {err}\n")
    sys.exit(1)

DEFAULT_SPEC = (
    "specs/default.yaml"
    if Path("specs/default.yaml").exists()
    else f"{workflow.basedir}/specs/default.yaml"
)
SPEC_PATH = config.get("spec") or (
    workflow.overwrite_configfiles[-1]
    if workflow.overwrite_configfiles
    else DEFAULT_SPEC
)
try:
    SPEC = load_spec(
        SPEC_PATH
    )  # validated before any job runs: one line naming the file and field
except SpecError as err:
    sys.stderr.write(f"error: {err}\n")
    sys.exit(1)

OUT = f"results/{SPEC.name}"
CELLS = SPEC.cells()
SNAPSHOT_CELLS = SPEC.snapshot_cells()
# the rules' `params`: a spec edit reruns exactly the jobs whose settings changed
HASHES = SPEC.job_hashes()


wildcard_constraints:
    seed=r"\d+",
    split=r"test|validation",
    w=r"[^/]+",
    method=r"[A-Za-z0-9_]+",
    env=r"[A-Za-z0-9_.-]+|minari/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*",  # '/' only in minari/<dataset id>
    domain=r"[a-z]+",


# data rules and the report run where snakemake was started (cluster compute nodes often have no internet)
localrules:
    all,
    exorl_domain,
    data,
    cells,
    report,
    figures,


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report.output.report,
