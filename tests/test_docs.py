"""The docs keep up with the code: every setting is documented, every path named exists."""

from __future__ import annotations

import ast
import functools
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from moscow_clock.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION = ROOT / "docs" / "configuration.md"
DOCS = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")])
# Where a path written relative to a part of the tree may start.
BASES = (ROOT, ROOT / "moscow_clock", ROOT / "docs")
# Named as examples of what a contributor would create, not as files that exist.
EXAMPLES = {"moscow_clock/translations/de/LC_MESSAGES/messages.po"}
SUFFIXES = {".py", ".md", ".js", ".mjs", ".css", ".html", ".json", ".yaml", ".yml", ".toml"}
SUFFIXES |= {".txt", ".in", ".png", ".svg", ".po", ".pot", ".webmanifest", ".cfg"}
# Run output that left the tree, summarised row by row (its file names count).
ARCHIVE = ROOT / "bench" / "results-issue10.md"
SKIPPED_DIRS = {".git", ".venv", ".venv-test", "node_modules", "__pycache__"}
# A code span with a slash is a path when it starts where these do (not
# `text/javascript`, `Europe/Moscow` or `rtt/2`).
TOP = {p.name for base in BASES for p in base.iterdir()} - SKIPPED_DIRS


class _Recorder(Mapping[str, str]):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def settings_read() -> set[str]:
    """Every variable `Settings.from_env` reads: looked up at run time, and
    named as a string literal in its source (in case a read is conditional)."""
    recorder = _Recorder()
    Settings.from_env(recorder)
    source = ast.parse((ROOT / "moscow_clock" / "core" / "config.py").read_text())
    from_env = next(
        node
        for node in ast.walk(source)
        if isinstance(node, ast.FunctionDef) and node.name == "from_env"
    )
    literals = {
        node.value
        for node in ast.walk(from_env)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"[A-Z][A-Z0-9_]+", node.value)
    }
    return recorder.names | literals


def settings_documented(text: str) -> set[str]:
    """The variables in the first column of a table."""
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", text, re.MULTILINE))


def test_every_setting_is_documented() -> None:
    read = settings_read()
    documented = settings_documented(CONFIGURATION.read_text())
    assert len(read) >= 30, sorted(read)
    undocumented, unread = sorted(read - documented), sorted(documented - read)
    assert not undocumented, f"read but not in docs/configuration.md: {undocumented}"
    assert not unread, f"documented but never read: {unread}"


def test_the_settings_check_can_fail() -> None:
    assert "HOST" in settings_read()
    assert "NOT_A_SETTING" not in settings_read()
    assert settings_documented("| `HOST` | x |\n`PORT` in prose\n") == {"HOST"}


@functools.cache
def _repo_files() -> frozenset[str]:
    """The name of every file and folder in the repository."""
    names: set[str] = set()
    for _, dirs, files in os.walk(ROOT):
        dirs[:] = [name for name in dirs if name not in SKIPPED_DIRS]
        names.update(dirs, files)
    names.update(re.findall(r"^\| ([\w.-]+\.json) \|", ARCHIVE.read_text(), re.MULTILINE))
    return frozenset(names)


def named_paths(doc: Path) -> set[str]:
    """Paths a document names: link targets, and code spans that look like a
    file or folder of the repository (not routes, URLs, globs or templates)."""
    text = doc.read_text()
    found = set()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"[a-z]+:", target) and not target.startswith("#"):
            found.add(target.split("#")[0])
    for span in re.findall(r"`([^`\s]+)`", text):
        if not re.fullmatch(r"[\w.\-/]+", span) or span.startswith(("/", "..", ".venv")):
            continue
        if "/" in span and span.split("/")[0] in TOP:
            # `live/ticker.YIELD_BUDGET_S` names a module and a name in it
            stem, _, name = span.rpartition(".")
            found.add(span if f".{name}" in SUFFIXES or not stem else f"{stem}.py")
        elif "/" not in span and Path(span).suffix in SUFFIXES:
            found.add(span)
    return found - EXAMPLES


def _exists(name: str, doc: Path, files: frozenset[str]) -> bool:
    if "/" not in name.rstrip("/"):
        return name.rstrip("/") in files
    return any((base / name).exists() for base in (doc.parent, *BASES))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_named_exists(doc: Path) -> None:
    files = _repo_files()
    missing = sorted(name for name in named_paths(doc) if not _exists(name, doc, files))
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped,
    spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.MULTILINE | re.DOTALL)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_anchor_linked_exists(doc: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]*#[^)\s]+)\)", doc.read_text()):
        path, _, anchor = target.partition("#")
        if re.match(r"[a-z]+:", path):
            continue
        linked = (doc.parent / path).resolve() if path else doc
        if linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)} links to anchors that do not exist: {broken}"


def test_the_path_check_can_fail(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text(
        "See [a](docs/nowhere.md), `moscow_clock/core/gone.py`, `/ws`, `README.md`,"
        " `text/plain`, `web/nowhere.thing`, `live/ticker.Ticker`."
    )
    assert named_paths(doc) == {
        "docs/nowhere.md",
        "moscow_clock/core/gone.py",
        "README.md",
        "web/nowhere.py",
        "live/ticker.py",
    }
    files = _repo_files()
    assert not _exists("docs/nowhere.md", doc, files)
    assert not _exists("moscow_clock/core/gone.py", doc, files)
    assert _exists("README.md", doc, files)
    assert not _exists("web/nowhere.py", doc, files)
    assert _exists("core/sntp.py", doc, files)
    assert (
        slug("Memory per connection: from ~24 to ~18 KB")
        == "memory-per-connection-from-24-to-18-kb"
    )
    assert slug("The websocket protocol (`/ws`)") == "the-websocket-protocol-ws"
    assert "history" in anchors(ROOT / "docs" / "PERFORMANCE.md")
    assert "nowhere" not in anchors(ROOT / "docs" / "PERFORMANCE.md")
