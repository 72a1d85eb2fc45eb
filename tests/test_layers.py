"""The package's layers, enforced: what each may import (every import statement, top level or inside functions).

    cfgrl.io, cfgrl.seeding      leaf helpers
    cfgrl.envs.dmc, .rollout     simulators and the lockstep rollout (numpy; policies are callables)
    cfgrl.data                   dataset files and samplers (no torch)
    cfgrl.envs.registry          env names and kinds (dataset maker, sampler, evaluation episodes)
    cfgrl.core                   the learning core (torch; nothing of data, envs or pipeline)
    methods                      cfgrl/cfgrl.py, gc_cfgrl.py, hcfgrl.py, baselines/ (built from cfgrl.core)
    cfgrl.pipeline               spec, train, evaluate, provenance, cli
    analysis                     statistics, tables, figures, report (no torch)
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import REPO

METHOD_MODULES = ("cfgrl.cfgrl", "cfgrl.gc_cfgrl", "cfgrl.hcfgrl", "baselines")
FORBIDDEN = {
    "cfgrl.io": ("cfgrl", "torch"),
    "cfgrl.seeding": ("cfgrl", "torch"),
    "cfgrl.envs.dmc": ("torch", "cfgrl.core", "cfgrl.data", "cfgrl.pipeline", "cfgrl.envs.registry", *METHOD_MODULES),
    "cfgrl.envs.rollout": ("torch", "cfgrl.core", "cfgrl.data", "cfgrl.pipeline", "cfgrl.envs.registry",
                           *METHOD_MODULES),
    "cfgrl.data": ("torch", "cfgrl.core", "cfgrl.pipeline", "cfgrl.envs.registry", "analysis", *METHOD_MODULES),
    "cfgrl.envs.registry": ("torch", "cfgrl.core", "cfgrl.pipeline", "analysis", *METHOD_MODULES),
    "cfgrl.core": ("cfgrl.data", "cfgrl.envs", "cfgrl.pipeline", "analysis", *METHOD_MODULES),
    "methods": ("cfgrl.data", "cfgrl.envs", "cfgrl.pipeline", "analysis"),
    "analysis": ("torch",),
}


def module_name(path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    if module.startswith(METHOD_MODULES) and module != "cfgrl":
        return "methods"
    for layer in sorted(FORBIDDEN, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


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
    if layer is None or module == "cfgrl.dmc":  # cfgrl.dmc: the old path of cfgrl.envs.dmc, a re-export
        return
    bad = sorted(name for name in imports_of(path) for banned in FORBIDDEN[layer]
                 if (name == banned or name.startswith(banned + ".")) and not name.startswith(module))
    assert not bad, f"{module} ({layer} layer) imports {bad}"


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
