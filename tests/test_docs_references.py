"""Every module a docstring, a comment or a document names exists: the words follow the code.

Modules moved (the store into `daemon/warehouse/sqlite/`, the command line into
`daemon/app/`, ...) and 44 docstrings went on naming the old places. This reads, without
importing anything, the docstrings and comments of every Python file of the product, the
tools and the tests, and the whole of `docs/*.md` and README.md; it finds each dotted name
under `daemon`, `config`, `generator`, `tools` or `tests` (with or without the
`filedrop_etl.` the product installs under) and each path ending in `.py`, and holds that
the module exists in the tree, and that what follows it (`daemon.load.checks.FileChecks`,
`daemon.app.signals.TAKEN`, a class's member) is defined there. A name that stops at a
file's suffix (`daemon.log`) is a file, not a module. Names relative to a package
(`sqlite.staging`) are not read: they cannot be told from an attribute of a variable.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("daemon", "config", "generator", "tools", "tests")
DOTTED = re.compile(r"(?<![\w./-])(?:filedrop_etl\.)?(?:daemon|config|generator|tools|tests)"
                    r"(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(r"(?<![\w./-])(?:[A-Za-z_][\w-]*/)*[A-Za-z_]\w*\.py\b")
# A dotted name ending in one of these names a file (the soak's `daemon.log`), not a module.
FILE_SUFFIXES = {"py", "log", "toml", "db", "json", "md", "txt", "parquet", "pid", "lock"}
# Named on purpose though not ours: (reference, why).
NOT_OURS = {"config.py": "a user's own module that must not shadow ours (test_packaging)"}


def sources() -> Iterator[Path]:
    for top in PACKAGES:
        yield from sorted((ROOT / top).rglob("*.py"))
    yield from sorted((ROOT / "docs").glob("*.md"))
    yield ROOT / "README.md"


def prose(path: Path) -> Iterator[tuple[int, str]]:
    """The words of `path` with their line numbers: a document whole; of Python source, its
    docstrings (module, class, function) and comments."""
    text = path.read_text()
    if path.suffix == ".md":
        yield from enumerate(text.splitlines(), 1)
        return
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring is not None:
                first = node.body[0].lineno
                yield from enumerate(docstring.splitlines(), first)
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string


def references(text: str) -> Iterator[str]:
    yield from (m.group() for m in DOTTED.finditer(text))
    yield from (m.group() for m in PATH.finditer(text))


def module_file(name: str) -> Path | None:
    parts = name.split(".")
    for path in (ROOT.joinpath(*parts).with_suffix(".py"), ROOT.joinpath(*parts, "__init__.py")):
        if path.is_file():
            return path
    return None


def definition(body: list[ast.stmt], name: str) -> ast.stmt | None:
    """The statement of `body` (or of its `if`/`try` blocks) that binds `name`."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return node
        elif isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                return node
        elif isinstance(node, ast.AnnAssign):
            if isinstance(node.target, ast.Name) and node.target.id == name:
                return node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                return node
        elif isinstance(node, ast.If | ast.Try):
            blocks = [node.body, node.orelse, *([node.finalbody] if isinstance(node, ast.Try)
                                                else [])]
            for block in blocks:
                found = definition(block, name)
                if found is not None:
                    return found
    return None


def resolves(reference: str) -> bool:
    """Whether `reference` names a module of the tree, or a name one defines (and a class's
    member, one level down), or a Python file of the tree (`load/pipeline.py`)."""
    if reference in NOT_OURS:
        return True
    if reference.endswith(".py"):
        named = reference.removeprefix("filedrop_etl/")
        return any(p.as_posix() == named or p.as_posix().endswith("/" + named)
                   for top in PACKAGES for p in
                   (f.relative_to(ROOT) for f in (ROOT / top).rglob("*.py")))
    parts = reference.removeprefix("filedrop_etl.").split(".")
    if parts[-1] in FILE_SUFFIXES:
        return True
    for cut in range(len(parts), 0, -1):
        path = module_file(".".join(parts[:cut]))
        if path is None:
            continue
        rest = parts[cut:]
        if not rest:
            return True
        node = definition(ast.parse(path.read_text()).body, rest[0])
        if node is None:
            return False
        if len(rest) > 1 and isinstance(node, ast.ClassDef):
            return definition(node.body, rest[1]) is not None
        return True
    return False


def found() -> list[tuple[str, str]]:
    return [(f"{path.relative_to(ROOT)}:{line}", reference)
            for path in sources() for line, text in prose(path)
            for reference in references(text)]


def test_the_words_are_read() -> None:
    """The scan sees what it must, so that an empty scan cannot pass."""
    seen = {reference for _, reference in found()}
    assert {"daemon.load.quarantine", "daemon.warehouse.sqlite.nodes",
            "daemon.app.cli", "tests/test_pipeline.py"} <= seen
    assert len(seen) > 80


@pytest.mark.parametrize(("reference", "expected"), [
    ("daemon.store", False),
    ("daemon.cli", False),
    ("filedrop_etl.daemon.queries", False),
    ("daemon.load.checks.NoSuchThing", False),
    ("daemon.warehouse.roles.Warehouse.no_such_member", False),
    ("daemon/store.py", False),
    ("daemon.app.cli", True),
    ("filedrop_etl.daemon.watch.watcher", True),
    ("daemon.load.checks.FileChecks", True),
    ("daemon.app.signals.TAKEN", True),
    ("daemon.warehouse.roles.History.daemons", True),
    ("load/pipeline.py", True),
    ("tools.bench.variants", True),
    ("daemon.log", True),
])
def test_a_reference_resolves_only_to_what_exists(reference: str, expected: bool) -> None:
    assert resolves(reference) is expected


def test_every_module_named_in_the_words_exists() -> None:
    stale = [f"{where}: {reference}" for where, reference in found() if not resolves(reference)]
    assert not stale, "names of modules that do not exist:\n" + "\n".join(stale)
