"""The house rules, read from the source: no import circle (imports that run, not those
under ``TYPE_CHECKING``), no module over 300 lines, no function over 60, and every
purposeful exception in ``errors.py`` unless a library's protocol needs its own base."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
#: Exceptions that subclass a library's own error, and why they must.
OWN_BASES = {
    # aiohttp's resolver refuses a host by raising OSError.
    "gateway.budget.egress.ForbiddenDestination",
    # pydantic turns a ValueError from a validator into a field error.
    "gateway.settings_checks.FieldProblem",
    # Control flow inside the passthrough: an answer made before the upstream is called.
    "gateway.web.openai.transcriptions._Answer",
    # The client library imports nothing of the gateway (it could ship on its own).
    "gateway.client.stream.StreamRefused",
    # The harness's own, outside the gateway.
    "loadtest.quality.runner.Refused",
    "loadtest.quality.speech.ToolMissing",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _runtime_imports(tree: ast.Module, modules: dict[str, Path]) -> set[str]:
    """Modules imported when the module is imported (top level, outside TYPE_CHECKING)."""
    out: set[str] = set()
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.add(full if full in modules else node.module)
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for field in ("body", "orelse", "finalbody", "handlers"):
                stack.extend(getattr(node, field, []))
    return out & modules.keys()


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, or None (depth-first search with colours)."""
    colour: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if colour.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in colour and (found := visit(nxt)):
                return found
        colour[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in colour and (found := visit(start)):
            return found
    return None


def test_no_import_circle() -> None:
    modules = _modules()
    graph = {
        name: _runtime_imports(ast.parse(path.read_text()), modules)
        for name, path in modules.items()
    }
    assert _cycle(graph) is None


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_modules_and_functions_are_small() -> None:
    too_long = []
    for name, path in _modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert too_long == []


def test_every_purposeful_exception_is_in_the_error_tree() -> None:
    elsewhere = set()
    for name, path in _modules().items():
        if name == "gateway.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                (isinstance(base, ast.Name) and base.id.endswith(("Error", "Exception")))
                or (isinstance(base, ast.Attribute) and base.attr.endswith(("Error", "Exception")))
                for base in node.bases
            ):
                elsewhere.add(f"{name}.{node.name}")
    assert elsewhere == OWN_BASES


def test_the_client_imports_nothing_of_the_gateway() -> None:
    """``gateway.client`` needs only ``websockets``: it could ship as its own package."""
    modules = _modules()
    outside = {
        f"{name} → {imported}"
        for name, path in modules.items()
        if name.startswith("gateway.client")
        for imported in _runtime_imports(ast.parse(path.read_text()), modules)
        if not imported.startswith("gateway.client")
    }
    assert outside == set()
