"""The package's layers, enforced: what each may import (every import statement, top level or inside functions).
Every module of cfgrl/, baselines/ and analysis/ belongs to one layer (a new module must be placed here).

    cfgrl (package), cpu_kernels,
    cfgrl.io, cfgrl.seeding      leaf helpers
    cfgrl.envs.dmc, .rollout     simulators and the lockstep rollout (numpy; policies are callables)
    cfgrl.data                   dataset files and samplers (no torch)
    cfgrl.envs.registry          env names and kinds (dataset maker, sampler, evaluation episodes)
    cfgrl.core                   the learning core (torch; nothing of data, envs or pipeline)
    methods                      cfgrl/cfgrl.py, gc_cfgrl.py, hcfgrl.py, baselines/ (built from cfgrl.core)
    cfgrl.methods                the registry: imports the methods by name, nothing above them
    cfgrl.pipeline               spec, train, evaluate, provenance, cli (nothing of analysis); inside the spec
                                 package loading -> model -> checks
    analysis                     statistics, tables, figures, report, its command line (no torch, even indirectly)
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

METHOD_MODULES = ("cfgrl.cfgrl", "cfgrl.gc_cfgrl", "cfgrl.hcfgrl", "baselines")
PIPELINE_JOBS = ("cfgrl.pipeline.train", "cfgrl.pipeline.evaluate", "cfgrl.pipeline.cli")  # what a spec serves
LEAF = ("torch", "numpy", "cfgrl.core", "cfgrl.data", "cfgrl.envs", "cfgrl.pipeline", "cfgrl.methods", "analysis",
        *METHOD_MODULES)
FORBIDDEN = {
    "cfgrl": ("torch", "cfgrl.core", "cfgrl.data", "cfgrl.envs", "cfgrl.pipeline", "cfgrl.methods", "analysis",
              *METHOD_MODULES),  # the package itself: only the CPU-kernel caps, set before numpy loads
    "cfgrl.cpu_kernels": LEAF,
    "cfgrl.io": ("cfgrl", "torch"),
    "cfgrl.seeding": ("cfgrl", "torch"),
    "cfgrl.envs.dmc": ("torch", "cfgrl.core", "cfgrl.data", "cfgrl.pipeline", "cfgrl.envs.registry", *METHOD_MODULES),
    "cfgrl.envs.rollout": ("torch", "cfgrl.core", "cfgrl.data", "cfgrl.pipeline", "cfgrl.envs.registry",
                           *METHOD_MODULES),
    "cfgrl.data": ("torch", "cfgrl.core", "cfgrl.pipeline", "cfgrl.envs.registry", "analysis", *METHOD_MODULES),
    "cfgrl.envs.registry": ("torch", "cfgrl.core", "cfgrl.pipeline", "analysis", *METHOD_MODULES),
    "cfgrl.envs": ("torch", "cfgrl.core", "cfgrl.pipeline", "analysis", *METHOD_MODULES),  # the package's docstring
    "cfgrl.dmc": ("torch", "cfgrl.core", "cfgrl.data", "cfgrl.pipeline", "cfgrl.envs.registry", *METHOD_MODULES),
    "cfgrl.core": ("cfgrl.data", "cfgrl.envs", "cfgrl.pipeline", "cfgrl.methods", "analysis", *METHOD_MODULES),
    "methods": ("cfgrl.data", "cfgrl.envs", "cfgrl.pipeline", "cfgrl.methods", "analysis"),
    "cfgrl.methods": ("cfgrl.data", "cfgrl.envs", "cfgrl.pipeline", "analysis"),
    "cfgrl.pipeline": ("analysis",),
    "cfgrl.pipeline.spec.model": ("analysis", "cfgrl.pipeline.spec.loading", *PIPELINE_JOBS),
    "cfgrl.pipeline.spec.checks": ("analysis", "cfgrl.pipeline.spec.loading", "cfgrl.pipeline.spec.model",
                                   *PIPELINE_JOBS),
    "cfgrl.__main__": ("analysis",),
    "analysis": ("torch", "cfgrl.core", "cfgrl.methods", *METHOD_MODULES),
}


def module_name(path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> str:
    if module.startswith(METHOD_MODULES) and module != "cfgrl":
        return "methods"
    for layer in sorted(FORBIDDEN, key=len, reverse=True):
        if module == layer or module.startswith(layer + ".") and layer != "cfgrl":
            return layer
    raise AssertionError(f"{module} belongs to no layer: place it in tests/test_layers.py's FORBIDDEN")


def imports_of(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


SOURCES = sorted(p for d in ("cfgrl", "baselines", "analysis") for p in (REPO / d).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_module_imports_respect_its_layer(path):
    module = module_name(path)
    layer = layer_of(module)
    imported = imports_of(path)
    bad = sorted(name for name in imported for banned in FORBIDDEN[layer]
                 if (name == banned or name.startswith(banned + ".")) and not name.startswith(module + "."))
    assert not bad, f"{module} ({layer} layer) imports {bad}"


def test_every_module_has_a_layer_and_the_layers_name_real_modules():
    modules = {module_name(p) for p in SOURCES}
    assert {layer_of(m) for m in modules} == set(FORBIDDEN) | {"methods"}


def test_analysis_loads_no_torch_even_indirectly():
    """Every analysis module (and the cfgrl modules they reach) imports without loading torch."""
    names = sorted(module_name(p) for p in SOURCES if module_name(p).startswith("analysis")
                   and not module_name(p).endswith("__main__"))
    code = (f"import sys; import {', '.join(names)}; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_data_and_env_layers_load_without_torch():
    code = ("import sys; import cfgrl.data.samplers, cfgrl.data.layout, cfgrl.data.episodes, cfgrl.data.exorl, "
            "cfgrl.data.ogbench, cfgrl.data.navigate, cfgrl.data.play, cfgrl.data.minari, cfgrl.data.download, "
            "cfgrl.envs.registry, cfgrl.envs.rollout, cfgrl.envs.dmc; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_every_layer_is_a_package_with_a_docstring():
    for package in ("core", "data", "envs", "pipeline"):
        init = REPO / "cfgrl" / package / "__init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"cfgrl/{package}/__init__.py explains its layer"


def test_only_paper_numbers_names_registered_methods_in_analysis():
    """The report and the plots take the paper's method choices (figures, tables, paper names) from
    analysis/paper_numbers.py; no other analysis module spells a registered method's name."""
    from cfgrl.methods import METHODS

    named = sorted(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}"
                   for path in SOURCES if path.parts[-2] == "analysis" and path.name != "paper_numbers.py"
                   for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in METHODS)
    assert not named, f"method names outside analysis/paper_numbers.py: {named}"
