"""Experiment specs: a YAML file read, validated before any job runs and returned as a typed, frozen `Spec`.

Every error is one line that names the file and the field, e.g.
`specs/x.yaml: methods.gc_cfgrl.w[2]: must be a number, got 'high'`. Structure (keys and types) is checked by the
JSON schema (schema.yaml); values by the checks: numbers in the range their config class declares beside the
field, enumerated settings among their choices, seeds that fit every RNG, w grids of distinct finite weights,
selection rules that never look at the reported episodes, validation episodes that can never be the reported ones,
and a cap on the number of cells (`limits.max_cells`).

Three modules, importing one way (loading -> model -> checks):
    model     the typed spec and what the DAG asks of it (cells, jobs, job hashes), `w_label`
    loading   `load_spec`: YAML, defaults (DEFAULTS, ENV_DEFAULTS), schema messages, the section builders
    checks    the value checks (seeds, w grids, config overrides, selection rules, shared-critic groups)
"""

from cfgrl.pipeline.spec.checks import (
    DIVERGENCE_COLUMNS,
    MAX_OVER_TEST_IS_BIASED,
    critic_group_problem,
    knob_value,
    select_problem,
)
from cfgrl.pipeline.spec.loading import DEFAULTS, ENV_DEFAULTS, load_spec, schema
from cfgrl.pipeline.spec.model import (
    UNGUIDED_CELL,
    Analysis,
    EnvEntry,
    EvalSettings,
    MethodEntry,
    SelectRule,
    Spec,
    SpecError,
    Sweep,
    spec_hash,
    w_label,
)

__all__ = ["DEFAULTS", "DIVERGENCE_COLUMNS", "ENV_DEFAULTS", "MAX_OVER_TEST_IS_BIASED", "UNGUIDED_CELL", "Analysis",
           "EnvEntry", "EvalSettings", "MethodEntry", "SelectRule", "Spec", "SpecError", "Sweep",
           "critic_group_problem", "knob_value", "load_spec", "schema", "select_problem", "spec_hash", "w_label"]
