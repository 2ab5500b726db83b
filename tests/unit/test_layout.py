"""The package's two sides (README "Layout", docs/architecture.md): the driver (the process the user starts), the
rank (every rank process and its node agent), the contract both import, common plumbing both run, and the plugins.

Every import counts, lazy and type-only ones included: a reader must be able to tell a module's side from its folder.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "scaletrain"
FRAMEWORKS = ("torch", "tensorflow", "keras", "ray", "wandb", "torch_xla", "jax")

# side -> the sides it may import (besides the standard library and third-party packages)
MAY_IMPORT = {
    "contract": {"contract"},
    "common": {"contract", "common"},
    "plugins": {"contract", "common", "plugins", "rank"},
    "rank": {"contract", "common", "plugins", "rank"},
    "driver": {"contract", "common", "plugins", "rank", "driver"},
    "commands": {"driver"},
}


def side(module: str) -> str:
    """The side of a dotted module name under scaletrain."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__", "compare", "scaling", "netcheck"):
        return "commands" if len(parts) > 1 else "contract"  # scaletrain/__init__ holds the version and the error type
    if parts[1] in ("strategies", "launchers", "workloads"):
        return "plugins"
    return parts[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every scaletrain module ``path`` imports, at the top, in a function or under TYPE_CHECKING."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("scaletrain"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("scaletrain"))
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in found if name in modules}


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_on_a_known_side():
    assert MODULES, PACKAGE
    unknown = {module_name(p) for p in MODULES} - {m for m in map(module_name, MODULES) if side(m) in MAY_IMPORT}
    assert not unknown, f"modules outside driver/, rank/, contract/, common/ and the plugins: {sorted(unknown)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_module_imports_only_the_sides_it_may(path):
    own = module_name(path)
    wrong = sorted(m for m in imports(path) if side(m) not in MAY_IMPORT[side(own)])
    assert not wrong, f"{own} ({side(own)}) imports {wrong}, which a {side(own)} module may not"


def _circles() -> list[list[str]]:
    graph = {module_name(p): imports(p) for p in MODULES}
    circles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if dep == node or dep == node.rsplit(".", 1)[0]:  # a module importing its own package's __init__
                continue
            if state.get(dep) == "open":
                circles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return circles


def test_no_import_circle():
    assert not _circles()


def test_the_contract_loads_every_job_without_a_framework_or_the_driver(tmp_path):
    """A rank loads job.json through the contract: for every strategy, launcher and workload that loads no framework
    and no driver-side module (a fresh interpreter, so nothing else imported them first)."""
    probe = """
import json, sys
from scaletrain.contract import config, registry
REQUIRED = {  # the settings a workload cannot go without; only their presence is checked when a job loads
    "mnist": {"data_dir": "data"},
    "cifar10": {"data_dir": "data"},
    "custom": {"torch": {"model": {"_target_": "m.Model"}, "train_data": {"_target_": "m.data"}}},
    "function": {"fn": {"_target_": "m.train"}},
}
for group, names in registry.GROUPS.items():
    for name in names:
        values = {"strategy": {"name": "ddp"}, "launcher": {"name": "local"}, "workload": {"name": "synthetic"}}
        values[group] = {"name": name, **(REQUIRED.get(name, {}) if group == "workload" else {})}
        config.load(values)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in FRAMEWORKS or m.startswith("scaletrain.driver"))))
""".replace("FRAMEWORKS", repr(FRAMEWORKS))
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout) == [], out.stderr
