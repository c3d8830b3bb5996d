"""The dependency arrows of the tree, held: who may import whom.

Read from the source with `ast` (nothing is imported): `generator` and `daemon` never
import each other; only a backend's own package imports its database driver; the
per-file load never imports operations, detection or the process; the warehouse
imports none of the packages that use it; nothing imports the process (`daemon.app`)
but the entry points; the proving tools are never imported by the product; the
product imports itself only under the one name it installs as, `filedrop_etl`;
nothing outside `daemon.warehouse` names a backend: no import of a backend package, no
backend's type (the registry picks the backend for a `db` setting); and the feed: only
the settings choose it, everything else is handed the contract and never defaults it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVERS = {"sqlite3": "daemon.warehouse.sqlite", "adbc_driver_sqlite": "daemon.warehouse.sqlite",
           "adbc_driver_manager": "daemon.warehouse.sqlite",
           "psycopg": "daemon.warehouse.postgresql", "pgpq": "daemon.warehouse.postgresql"}
# (importer's package, packages it must never import)
FORBIDDEN = [
    ("daemon", ("generator", "tools", "tests")),
    ("generator", ("daemon", "tools", "tests")),
    ("config", ("daemon", "generator", "tools")),
    ("daemon.load", ("daemon.ops", "daemon.watch", "daemon.app")),
    ("daemon.warehouse", ("daemon.load", "daemon.watch", "daemon.ops", "daemon.app")),
    ("daemon.ops", ("daemon.watch", "daemon.load", "daemon.app")),
    ("daemon.watch", ("daemon.app", "daemon.ops")),
    ("daemon.warehouse.sqlite", ("daemon.warehouse.postgresql",)),
    ("daemon.warehouse.postgresql", ("daemon.warehouse.sqlite",)),
]
ENTRY_POINTS = {"daemon.__main__", "daemon.app"}
# Named only inside `daemon.warehouse`: the backends' packages, and their own types.
BACKEND_PACKAGES = ("daemon.warehouse.sqlite", "daemon.warehouse.postgresql")
BACKEND_TYPES = re.compile(r"\b(PostgresUrl|Postgres\w+|Sqlite\w+)\b")
OURS = "filedrop_etl."


def modules() -> Iterator[tuple[str, Path]]:
    """Every module of the product, named without the `filedrop_etl.` it installs under:
    the top-level folders are read in place (`filedrop_etl/` links to them)."""
    for top in ("daemon", "generator", "config"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def imports(path: Path) -> set[str]:
    """What `path` imports; the product's own modules named as `modules()` names them, and
    a bare `daemon`, `config` or `generator` (not the product's: another package's, once
    installed) as `?daemon`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {_ours(name) for name in found}


def _ours(name: str) -> str:
    if name.startswith(OURS):
        return name.removeprefix(OURS)
    return "?" + name if name.split(".")[0] in {"daemon", "config", "generator"} else name


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_tree_is_read() -> None:
    names = dict(modules())
    assert {"daemon.warehouse.api", "daemon.warehouse.sqlite.warehouse", "daemon.load.pipeline",
            "daemon.watch.watcher", "daemon.ops.server", "daemon.app.service"} <= set(names)


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=lambda v: str(v))
def test_imports_follow_the_arrows(module: str, path: Path) -> None:
    wrong = []
    for name in imports(path):
        for driver, owner in DRIVERS.items():
            if within(name, driver) and not within(module, owner):
                wrong.append(f"{name}: only {owner} imports the {driver} driver")
        for importer, banned in FORBIDDEN:
            if within(module, importer):
                wrong += [f"{name}: {importer} never imports {b}" for b in banned
                          if within(name, b)]
        if name.startswith("?"):
            wrong.append(f"{name[1:]}: the product imports itself as {OURS}{name[1:]}")
        if within(name, "daemon.app") and not any(within(module, e) for e in ENTRY_POINTS):
            wrong.append(f"{name}: nothing imports the process but its entry points")
        if any(within(name, b) for b in BACKEND_PACKAGES) \
                and not within(module, "daemon.warehouse"):
            wrong.append(f"{name}: only daemon.warehouse names a backend (ask its registry)")
    assert not wrong, f"{module} breaks the import rules: {wrong}"


@pytest.mark.parametrize(("module", "path"), list(modules()), ids=lambda v: str(v))
def test_no_backend_type_is_named_outside_the_warehouse(module: str, path: Path) -> None:
    """Nothing outside `daemon.warehouse` asks which backend it has: no `isinstance` on
    a backend's type, no URL type, no backend's class, even in a comment."""
    if within(module, "daemon.warehouse"):
        return
    named = sorted(set(BACKEND_TYPES.findall(path.read_text())))
    assert not named, f"{module} names a backend's types: {named}"


def test_the_rules_would_catch_a_driver_outside_its_backend(tmp_path: Path) -> None:
    stray = tmp_path / "stray.py"
    stray.write_text("import sqlite3\nfrom filedrop_etl.daemon.ops import server\n"
                     "import config.settings\n")
    assert {"sqlite3", "daemon.ops", "daemon.ops.server", "?config.settings"} <= imports(stray)
    assert not within("daemon.load.pipeline", DRIVERS["sqlite3"])
    stray.write_text("from filedrop_etl.daemon.warehouse.postgresql.url import PostgresUrl\n")
    assert "daemon.warehouse.postgresql.url" in imports(stray)
    assert any(within(n, BACKEND_PACKAGES[1]) for n in imports(stray))
    assert BACKEND_TYPES.findall(stray.read_text()) == ["PostgresUrl"]


# What the product may take from `config.contract`: the types a contract is made of. The
# declared feed itself (`TRANSACTIONS` and its parts under their first names) is the
# settings' to choose, and reaches everything else as a value passed down from there.
CONTRACT_TYPES = {"Contract", "Column", "ColumnKind", "Check", "CheckKind", "Feeds",
                  "key_prefix"}
CHOOSES_THE_FEED = {"config.contract", "config.feeds", "config.settings"}


def feed_choices(path: Path) -> list[str]:
    """Where `path` names a declared feed instead of being handed one: a name other than
    the contract's types imported from `config.contract`, the module itself imported, or
    `TRANSACTIONS` as a default (of a parameter or a field)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = _ours(node.module)
            found += [f"imports {module}.{a.name}" for a in node.names
                      if (module == "config.contract" and a.name not in CONTRACT_TYPES)
                      or (module == "config" and a.name == "contract")]
        defaults: list[ast.expr | None] = []
        if isinstance(node, ast.arguments):
            defaults = [*node.defaults, *node.kw_defaults]
        elif isinstance(node, ast.AnnAssign):
            defaults = [node.value]
        found += [f"line {d.lineno}: defaults to TRANSACTIONS" for d in defaults
                  if d is not None and "TRANSACTIONS" in ast.unparse(d)]
    return found


@pytest.mark.parametrize(("module", "path"), [(m, p) for m, p in modules()
                                              if within(m, "daemon") or within(m, "config")],
                         ids=lambda v: str(v))
def test_the_feed_is_passed_never_defaulted(module: str, path: Path) -> None:
    """Issue 22: a forgotten contract argument type-checked and silently meant transactions."""
    found = feed_choices(path)
    if module in CHOOSES_THE_FEED:
        found = [f for f in found if "defaults to" in f]
    assert not found, f"{module} chooses the feed itself: {found}"


def test_the_feed_rule_would_catch_a_default(tmp_path: Path) -> None:
    stray = tmp_path / "stray.py"
    stray.write_text("from filedrop_etl.config import contract\n"
                     "from filedrop_etl.config.contract import TRANSACTIONS, Contract\n"
                     "def f(c: Contract = TRANSACTIONS) -> None: ...\n"
                     "class S:\n    c: Contract = field(default=TRANSACTIONS)\n")
    assert feed_choices(stray) == [
        "imports config.contract", "imports config.contract.TRANSACTIONS",
        "line 3: defaults to TRANSACTIONS", "line 5: defaults to TRANSACTIONS"]
