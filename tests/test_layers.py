"""The package's layers import only downward, and the server never imports the app.

core (pure) <- live (per-process state) <- web (the ASGI edge)
core <- server (Hypercorn)        __main__ and the package root compose them
"""

from __future__ import annotations

import ast
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
