"""The house measured from its source: lines per room, imports that run back up a floor or into the demo plug-in,
import circles (Tarjan, function-level imports included), and the "one way" counts issue 33 names.

    python research/house/rooms.py [TREE]     # TREE: a checkout (default: this one)

Used for issue 33's before/after table: run on a `git worktree` of the commit before and on this one.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

FOLDERS = {"bai_core": "bai_core", "tasks": "bai.tasks", "flows": "bai.flows", "cli": "bai.cli"}
FLOORS = ["bai_core", "bai.tasks", "bai.flows", "bai.cli"]  # lower to upper


def module_name(root: Path, path: Path) -> str:
    folder, *rest = path.relative_to(root).with_suffix("").parts
    parts = [FOLDERS[folder], *rest]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "bai":
        return f"{parts[1]}/"
    return f"bai_core/{parts[1]}/" if len(parts) > 2 or (len(parts) == 2 and parts[1] in PACKAGES) else "bai_core/*.py"


PACKAGES: set[str] = set()


def imports(path: Path, modules: set[str]) -> set[str]:
    """What a file imports, at any level: `from pkg import sub` imports the module pkg.sub, `from pkg import name`
    imports pkg (as import-linter reads it, and tests/test_layering.py)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            found |= submodules
            if len(submodules) < len(node.names):
                found.add(node.module)
    return found


def floor(module: str) -> int | None:
    for number, name in enumerate(FLOORS):
        if module == name or module.startswith(name + "."):
            return number
    return None


def runs_up(importer: str, imported: str) -> bool:
    """An import from a lower floor to a higher one, or the library importing Prefect."""
    here, there = floor(importer), floor(imported)
    if here == 0 and (imported == "prefect" or imported.startswith("prefect.")):
        return True
    return here is not None and there is not None and there > here


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(node):
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


def measure(root: Path) -> dict:
    paths = {module_name(root, p): p for folder in FOLDERS for p in sorted((root / folder).rglob("*.py"))
             if "suites" not in p.parts}
    PACKAGES.clear()
    PACKAGES.update(m.split(".")[1] for m, p in paths.items() if m.startswith("bai_core.") and p.name == "__init__.py")
    lines, files = defaultdict(int), defaultdict(int)
    for module, path in paths.items():
        lines[room(module)] += len(path.read_text().splitlines())
        files[room(module)] += 1
    graph, upward, into_demo = {}, [], []
    for module, path in paths.items():
        imported = imports(path, set(paths))
        graph[module] = {m for m in imported if m in paths and m != module}
        for target in graph[module] | {m for m in imported if m.split(".")[0] == "prefect"}:
            if runs_up(module, target):
                upward.append(f"{module} -> {target if target in paths else target.split('.')[0]}")
            if target.startswith("bai_core.demo") and not module.startswith("bai_core.demo"):
                into_demo.append(f"{module} -> {target}")
    text = {m: p.read_text() for m, p in paths.items()}
    return {
        "lines": dict(sorted(lines.items())), "files": dict(sorted(files.items())),
        "largest": sorted(((len(t.splitlines()), m) for m, t in text.items()), reverse=True)[:3],
        "upward": sorted(set(upward)), "into_demo": sorted({i.split(" -> ")[0] for i in into_demo}),
        "cycles": cycles(graph),
        "storage.endpoint_url": sum(t.count("storage.endpoint_url") for t in text.values()),
        "open_store(": sum(t.count("open_store(") for m, t in text.items() if not m.endswith("storage")),
        "fetch(.., endpoint)": sum(len(re.findall(r"fetch\([^)]*endpoint_url", t)) for t in text.values()),
        "AtomicFolder by hand": sum(len(re.findall(r"=\s*AtomicFolder\(", t)) for t in text.values()),
        "names demo:// or bai_demo outside demo/": sorted(
            m for m, t in text.items()
            if not m.startswith("bai_core.demo") and re.search(r"[\"']demo://|[\"']bai_demo[\"']", t)),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(measure(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[2]), indent=1))
