"""The floors of the house, read off every import statement of every module (an AST scan, so an import inside a
function counts as much as one at the top):

    bai_core   the library           imports neither Prefect nor bai.tasks / bai.flows / bai.cli
    tasks/     bai.tasks             imports no flows and no CLI
    flows/     bai.flows             imports no CLI
    cli/       bai.cli               may import them all

and no module reaches into another package's `_private` names (research scripts and benchmarks included: they use
the library's public API).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder -> the import name it installs as (pyproject.toml's package-dir)
PACKAGES = {"bai_core": "bai_core", "tasks": "bai.tasks", "flows": "bai.flows", "cli": "bai.cli"}
FORBIDDEN = {
    "bai_core": ("prefect", "bai.tasks", "bai.flows", "bai.cli", "tasks", "flows", "cli"),
    "tasks": ("bai.flows", "bai.cli", "flows", "cli"),
    "flows": ("bai.cli", "cli"),
}
SCANNED = ("bai_core", "tasks", "flows", "cli", "benchmarks", "research")


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import in the file; `import a.b` gives ("a.b", [])."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
    return found


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def names_module(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def package_of(module: str) -> str:
    """The package a module belongs to (bai_core.rl.stage -> bai_core.rl)."""
    return module.rsplit(".", 1)[0]


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    top = relative.parts[0]
    parts = [PACKAGES.get(top, top), *relative.parts[1:]]
    return ".".join(parts).removesuffix(".__init__")


def floor_violations(folder: str) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line}: imports {module}"
            for path in modules(folder) for line, module, _ in imports(path)
            if any(names_module(module, forbidden) for forbidden in FORBIDDEN[folder])]


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_each_floor_imports_only_downward(folder):
    assert modules(folder), f"{folder}/ has no modules: the scan would pass vacuously"
    assert floor_violations(folder) == []


def test_no_module_imports_another_packages_private_names():
    violations = []
    for folder in SCANNED:
        for path in modules(folder) if (ROOT / folder).is_dir() else []:
            importer = module_name(path)
            for line, module, names in imports(path):
                private = [name for name in names if name.startswith("_") and not name.startswith("__")]
                # A package's own modules share its private names (a module and its siblings); nobody else does.
                same_package = package_of(importer) == module or package_of(importer) == package_of(module)
                if private and not same_package:
                    violations.append(f"{path.relative_to(ROOT)}:{line}: {module}.{', '.join(private)}")
    assert violations == []


def test_the_scan_sees_an_import_inside_a_function(tmp_path):
    """What the AST scan is for: a function-level `import prefect` in bai_core is caught, as a top-level one is."""
    probe = tmp_path / "probe.py"
    probe.write_text("def later():\n    import prefect\n    from bai.flows.pipeline import bai_pipeline\n")
    assert [module for _, module, _ in imports(probe)] == ["prefect", "bai.flows.pipeline"]


STABILITY_FORBIDDEN = ("torch", "transformers", "trl", "prefect", "bai_core.rl", "bai.tasks", "bai.flows", "bai.cli")


def test_stability_analysis_is_pure():
    """bai_core/stability reads curves from any tool's log and judges them: no torch, no TRL, nothing of bai's RL
    run (the TRL callbacks that use it live in rl/). `bai diagnose` and `bai watch` run on the base install."""
    found = [f"{path.relative_to(ROOT)}:{line}: imports {module}"
             for path in (ROOT / "bai_core" / "stability").rglob("*.py") for line, module, _ in imports(path)
             if any(names_module(module, forbidden) for forbidden in STABILITY_FORBIDDEN)]
    assert (ROOT / "bai_core" / "stability" / "detectors.py").is_file() and found == []


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of the house it imports (at any level, a function's imports too). `from pkg import
    sub` imports the module pkg.sub (as import-linter reads it); `from pkg import name` imports pkg."""
    paths = {module_name(path): path for folder in PACKAGES for path in modules(folder)}
    graph = {}
    for module, path in paths.items():
        found = set()
        for _, imported, names in imports(path):
            submodules = {f"{imported}.{name}" for name in names} & set(paths)
            found |= submodules
            if imported in paths and (not names or len(submodules) < len(names)):
                found.add(imported)
        graph[module] = found - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, round a circle (Tarjan's strongly connected components)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_of_the_house_imports_round_a_circle():
    """Not even through an import inside a function: a circle means two modules that are one job, or a job that
    sits in the wrong room (the train stage and its ranks and machines had one; their store layout is run_store.py)."""
    graph = import_graph()
    assert "bai_core.rl.stage" in graph and cycles(graph) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # the check can fail
