"""The package's layers import only downward, the server never imports the app,
and only server/hypercorn/ touches private names of the libraries it guards.

core (pure) <- live (per-process state) <- web (the ASGI edge)
core <- server (serving) <- server/hypercorn (the fence around Hypercorn)
__main__ and the package root compose them.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "moscow_clock"
MAY_IMPORT = {
    "core": {"core"},
    "live": {"core", "live"},
    "web": {"core", "live", "web"},
    "server": {"core", "server"},
}
# Third-party packages a pure module must not touch (they do I/O or hold state).
NOT_IN_CORE = {"quart", "hypercorn", "prometheus_client", "asyncio", "socket", "wsproto"}
# The libraries whose internals server/hypercorn/ leans on, fingerprinted by its
# guard; their private names (`_x`, not dunders) are used nowhere else.
GUARDED = ("hypercorn", "wsproto", "h11", "asyncio")
FENCE = PACKAGE / "server" / "hypercorn"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE)


def _imports(path: Path) -> set[str]:
    """Absolute dotted names of everything `path` imports (relative ones resolved)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join((*base, node.module)) if node.module else ".".join(base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _layer_of(dotted: str) -> str | None:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "moscow_clock" else None


def test_every_module_sits_in_a_layer() -> None:
    layers = {p.relative_to(PACKAGE).parts[0] for p in _modules()}
    assert layers <= set(MAY_IMPORT), f"a package with no rule: {layers - set(MAY_IMPORT)}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    layer = path.relative_to(PACKAGE).parts[0]
    upward = sorted(
        name
        for name in _imports(path)
        if (target := _layer_of(name)) is not None
        and target in MAY_IMPORT
        and target not in MAY_IMPORT[layer]
    )
    assert not upward, f"{layer} may import only {sorted(MAY_IMPORT[layer])}: {upward}"
    if layer == "core":
        impure = sorted(n for n in _imports(path) if n.split(".")[0] in NOT_IN_CORE)
        assert not impure, f"core is pure logic, no I/O or frameworks: {impure}"


def test_the_check_can_fail() -> None:
    """An upward import is seen (resolving `..` correctly), so the test above can fail."""
    sample = PACKAGE / "server" / "serve.py"
    assert "moscow_clock.core.config" in _imports(sample)
    assert _layer_of("moscow_clock.web.app") == "web"
    assert "web" not in MAY_IMPORT["server"]


# --- the fence around Hypercorn ------------------------------------------------


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _names_defined(trees: Iterator[ast.AST]) -> set[str]:
    """Private names these sources define: functions, classes, attributes
    assigned (`self._x = ...`), module and class variables, parameters."""
    found: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                found.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                found.add(node.id)
            elif isinstance(node, ast.arg):
                found.add(node.arg)
            elif isinstance(node, ast.alias):
                found.add((node.asname or node.name).split(".")[0])
    return {name for name in found if _private(name)}


@functools.cache
def library_private_names() -> frozenset[str]:
    """Every private name the guarded libraries define, from their source."""
    trees = []
    for library in GUARDED:
        spec = importlib.util.find_spec(library)
        assert spec is not None, library
        assert spec.origin is not None, library
        for path in Path(spec.origin).parent.rglob("*.py"):
            trees.append(ast.parse(path.read_bytes()))
    return frozenset(_names_defined(iter(trees)))


def _outside_the_fence() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if FENCE not in p.parents]


@functools.cache
def our_private_names() -> frozenset[str]:
    """Private names our own code outside the fence defines (its own `_x`)."""
    return frozenset(_names_defined(ast.parse(p.read_text()) for p in _outside_the_fence()))


def private_uses(source: str) -> list[str]:
    """Uses of a guarded library's private names in `source`: imported from
    it (`from asyncio import _x`, `import hypercorn._x`), reached through it
    (`asyncio._x`), or an attribute only that library defines (`stream._x`
    where `_x` is a Hypercorn method and nothing of ours)."""
    tree = ast.parse(source)
    libraries: set[str] = set()  # local names bound to a guarded module or its objects
    others: set[str] = set()  # ... to another module (`os._exit` is not asyncio's)
    uses: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = (alias.asname or alias.name).split(".")[0]
                if alias.name.split(".")[0] not in GUARDED:
                    others.add(bound)
                    continue
                libraries.add(bound)
                uses += [alias.name for part in alias.name.split(".") if _private(part)]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            bound_names = {alias.asname or alias.name for alias in node.names}
            if node.module.split(".")[0] not in GUARDED:
                others.update(bound_names)
                continue
            libraries.update(bound_names)
            if any(_private(part) for part in node.module.split(".")):
                uses.append(node.module)
            uses += [f"{node.module}.{a.name}" for a in node.names if _private(a.name)]
    theirs = library_private_names() - our_private_names()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            on = node.value.id if isinstance(node.value, ast.Name) else None
            if on in libraries or (on not in others and node.attr in theirs):
                uses.append(f"line {node.lineno}: .{node.attr}")
    return uses


@pytest.mark.parametrize("path", _outside_the_fence(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_private_names_of_guarded_libraries_stay_inside_the_fence(path: Path) -> None:
    uses = private_uses(path.read_text())
    assert not uses, (
        f"private names of {', '.join(GUARDED)} outside server/hypercorn/ "
        f"(move them there, behind its guard): {uses}"
    )


def test_the_fence_check_can_fail() -> None:
    """Each way of reaching a private name is seen, and our own are not flagged."""
    assert "_send_wsproto_event" in library_private_names()
    assert private_uses("from asyncio import _get_running_loop")
    assert private_uses("import asyncio\nasyncio._get_running_loop()")
    assert private_uses("from hypercorn.protocol import ws_stream as w\nw._x")
    assert private_uses("import hypercorn._private")
    assert private_uses("async def f(stream):\n    await stream._send_wsproto_event(1)")
    assert not private_uses("import asyncio\nasyncio.get_running_loop()")
    assert not private_uses("import os\nos._exit(1)")
    assert not private_uses("class A:\n    def f(self):\n        return self.__dict__")
    assert (FENCE / "ping.py").exists()
    assert PACKAGE / "server" / "pinger.py" in _outside_the_fence()
    assert FENCE / "streams.py" not in _outside_the_fence()
