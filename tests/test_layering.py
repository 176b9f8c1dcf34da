"""The floors and rooms of the house, from every import statement of every module (an import inside a function
counts as much as one at the top):

    bai_core   the library           imports neither Prefect nor bai.tasks / bai.flows / bai.cli
    tasks/     bai.tasks             imports no flows and no CLI
    flows/     bai.flows             imports no CLI
    cli/       bai.cli               may import them all

as import-linter contracts in pyproject.toml (stability analysis's purity too); no module imports round a circle;
and no module reaches into another package's `_private` names (research scripts and benchmarks included: they use
the library's public API).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# folder -> the import name it installs as (pyproject.toml's package-dir)
PACKAGES = {"bai_core": "bai_core", "tasks": "bai.tasks", "flows": "bai.flows", "cli": "bai.cli"}
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


def lint_imports(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache", str(config)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_the_import_linter_contracts_hold():
    """pyproject.toml's [tool.importlinter] contracts: the floors (cli over flows over tasks over bai_core), the
    library without Prefect, stability analysis without torch, TRL or rl/, indirect imports included."""
    proc = lint_imports(ROOT / "pyproject.toml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout and "KEPT" in proc.stdout


def test_import_linter_finds_a_broken_contract(tmp_path):
    """The check can fail: a contract the house breaks (the train stage imports the detectors) is reported."""
    config = tmp_path / "broken.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["bai_core"]\n\n[[tool.importlinter.contracts]]\n'
                      'name = "rl without the detectors"\ntype = "forbidden"\nsource_modules = ["bai_core.rl"]\n'
                      'forbidden_modules = ["bai_core.stability"]\n')
    proc = lint_imports(config)
    assert proc.returncode != 0 and "rl without the detectors BROKEN" in proc.stdout


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
