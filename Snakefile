# cfgrl workflow: data -> train (method, env, seed) -> evaluate (method, env, seed, w) -> cells -> report.
# Spec: `--config spec=specs/X.yaml` or `--configfile specs/X.yaml`; the default is specs/default.yaml.
import sys
from pathlib import Path

from cfgrl.envs import resolve_env
from cfgrl.spec import SpecError, eval_cells, job_hashes, load_spec

DEFAULT_SPEC = "specs/default.yaml" if Path("specs/default.yaml").exists() else f"{workflow.basedir}/specs/default.yaml"
SPEC_PATH = config.get("spec") or (workflow.overwrite_configfiles[-1] if workflow.overwrite_configfiles
                                   else DEFAULT_SPEC)
try:
    SPEC = load_spec(SPEC_PATH)
except SpecError as err:
    sys.stderr.write(f"error: {err}\n")
    sys.exit(1)

OUT = f"results/{SPEC['name']}"
CELLS = eval_cells(SPEC)
HASHES = job_hashes(SPEC)  # `params` of the rules: a spec edit reruns exactly the jobs whose settings changed


wildcard_constraints:
    seed=r"\d+",
    split=r"test|validation",
    w=r"[^/]+",
    method=r"[A-Za-z0-9_]+",
    env=r"[A-Za-z0-9_.-]+|minari/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*",  # '/' only in minari/<dataset id>
    domain=r"[a-z]+",


rule all:
    input:
        f"{OUT}/report.md",


include: "rules/pipeline.smk"
