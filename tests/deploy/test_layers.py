"""The deploy engine depends on models, kernel and the agent client, never on the control
plane's library (`core`), the API or the CLI: checked on the import graph, transitively."""

from __future__ import annotations

import ast
from pathlib import Path

import dockyard

SOURCE = Path(dockyard.__file__).parent
FORBIDDEN = ("dockyard.core", "dockyard.api", "dockyard.cli")


def module_file(name: str) -> Path | None:
    path = SOURCE.parent.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_by(name: str) -> set[str]:
    """The dockyard modules `name` imports (`from a import b` counts b when it is a module)."""
    path = module_file(name)
    assert path is not None, name
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names
                         if module_file(f"{node.module}.{a.name}"))
    return {m for m in found if m.startswith("dockyard.") and module_file(m)}


def reachable_from(roots: set[str]) -> dict[str, str]:
    """Every module reachable from `roots`, each with the module that first imported it."""
    seen = dict.fromkeys(roots, "")
    todo = list(roots)
    while todo:
        current = todo.pop()
        for imported in imported_by(current) - set(seen):
            seen[imported] = current
            todo.append(imported)
    return seen


def chain(seen: dict[str, str], module: str) -> str:
    links = [module]
    while seen[links[-1]]:
        links.append(seen[links[-1]])
    return " <- ".join(links)


def test_the_deploy_package_never_reaches_core_api_or_cli() -> None:
    roots = {f"dockyard.deploy.{p.stem}" for p in (SOURCE / "deploy").glob("*.py")}
    seen = reachable_from(roots)
    assert "dockyard.models.deployment_plan" in seen  # the walk does follow imports
    bad = [chain(seen, m) for m in sorted(seen) if m.startswith(FORBIDDEN)]
    assert bad == []


def test_the_walk_finds_a_forbidden_import_when_there_is_one() -> None:
    seen = reachable_from({"dockyard.core.deployments"})
    assert "dockyard.deploy.runner" in seen
    assert chain(seen, "dockyard.core.platform").endswith("dockyard.core.deployments")
