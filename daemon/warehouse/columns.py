"""The daemon's tables' columns against what the database holds, for both backends.

Owns the one rule for a table that exists already: every column the daemon defines
must be there with its type (else the table is not ours, or was changed under us:
`SchemaMismatch`); a column the daemon does not define is a DBA's own (`ALTER TABLE ...
ADD COLUMN note text`) and is accepted, with a warning, when every insert the daemon
makes can leave it out: nullable, or with a default. Every statement the daemon writes
names its columns, so such a column changes nothing it does. An extra column that is
NOT NULL without a default would fail every insert, and is refused. Each backend reads
its catalog into `Held` values and gives the types in its own canonical spelling; this
module reads no database.

A declared feed's fact table follows its declaration instead (`evolve`): its columns
are the declaration's, so a column the table holds and the declaration does not is a
declared column removed, not a DBA's. At start, a column added to the declaration is
added to the table (nullable, or with its default); a column declared nullable that the
table holds NOT NULL is relaxed; a column declared NOT NULL that the table holds
nullable is tightened if it holds no null; a column removed, a changed type, a changed
key or nulls where the declaration allows none are refused while the table holds rows
(nothing is dropped or cast behind the operator's back), and an empty table is made
again as declared.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from filedrop_etl.daemon.errors import SchemaMismatch

log = structlog.get_logger("daemon.schema")

# Words that end a column's type in a definition (`"amount" double precision NOT NULL`).
_AFTER_TYPE = frozenset({"NOT", "NULL", "PRIMARY", "UNIQUE", "CHECK", "DEFAULT",
                         "REFERENCES", "GENERATED", "COLLATE", "CONSTRAINT"})
# Definitions that are a table's constraint, not a column.
_CONSTRAINTS = ("UNIQUE", "PRIMARY KEY", "CHECK", "FOREIGN KEY", "CONSTRAINT")


def declared(definitions: Iterable[str]) -> dict[str, str]:
    """Each column's name and declared type, in order, from a table's definitions (the
    first word of each is the quoted name; table constraints are skipped)."""
    out = {}
    for definition in definitions:
        if definition.upper().startswith(_CONSTRAINTS):
            continue
        name, _, rest = definition.partition(" ")
        words = []
        for word in rest.split():
            if word.upper() in _AFTER_TYPE:
                break
            words.append(word)
        out[name.strip('"')] = " ".join(words)
    return out


def not_null(definitions: Iterable[str], key: Iterable[str] = ()) -> frozenset[str]:
    """The columns that `definitions` make NOT NULL (or a column's PRIMARY KEY), and
    those of `key` (a table constraint's, NOT NULL in both backends)."""
    out = set(key)
    for definition in definitions:
        if definition.upper().startswith(_CONSTRAINTS):
            continue
        name, _, rest = definition.partition(" ")
        words = rest.upper().split()
        # A default's literal could read "NOT NULL": only what comes before it counts.
        head = words[:words.index("DEFAULT")] if "DEFAULT" in words else words
        if "PRIMARY" in head or " NOT NULL" in " " + " ".join(head):
            out.add(name.strip('"'))
    return frozenset(out)


@dataclass(frozen=True)
class Held:
    """One column as the database holds it: `required` when an insert that leaves it
    out would fail (NOT NULL, and no default or generated value); `not_null` when it
    may hold no null (whether or not it has a default)."""

    name: str
    type: str
    required: bool
    not_null: bool = False


@dataclass(frozen=True)
class Difference:
    """One table's columns against the daemon's: what is missing or changed (refused),
    and the extra columns, harmless (`extra`) or not (`blocking`)."""

    table: str
    missing: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    blocking: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        return bool(self.missing or self.changed or self.blocking)


def compare(table: str, expected: Mapping[str, str], held: Sequence[Held]) -> Difference:
    """`held` against `expected` (name to type, both in the backend's canonical form)."""
    found = {c.name: c for c in held}
    return Difference(
        table,
        missing=tuple(n for n in expected if n not in found),
        changed=tuple(f"{n} is {found[n].type}, expected {t}" for n, t in expected.items()
                      if n in found and found[n].type != t),
        extra=tuple(c.name for c in held if c.name not in expected and not c.required),
        blocking=tuple(c.name for c in held if c.name not in expected and c.required))


def refusal(difference: Difference) -> SchemaMismatch:
    """Why the daemon can not use the table, and what to do."""
    parts = []
    if difference.missing:
        parts.append(f"lacks the columns {list(difference.missing)}")
    if difference.changed:
        parts.append("has changed types (" + "; ".join(difference.changed) + ")")
    if difference.blocking:
        parts.append(f"has the columns {list(difference.blocking)}, NOT NULL without a "
                     "default, which every insert of the daemon would fail on")
    hint = ("give each extra column a default or drop its NOT NULL (ALTER TABLE ... ALTER "
            "COLUMN ... SET DEFAULT / DROP NOT NULL)" if not (difference.missing
                                                               or difference.changed) else
            "if this database was not created by this daemon, point --db at another; if "
            "someone altered the table, restore its columns and types as the README's "
            "Tables section gives them")
    return SchemaMismatch(f"table {difference.table} " + ", and ".join(parts), hint=hint)


def warn_extra(differences: Iterable[Difference]) -> None:
    """One warning per table that holds columns the daemon does not write."""
    for difference in differences:
        if difference.extra:
            log.warning("table_columns_extra", table=difference.table,
                        columns=list(difference.extra),
                        hint="columns the daemon does not define (added by hand?): it "
                        "leaves them out of its inserts, so they stay null or take "
                        "their default; nothing to do if that is what you meant")


@dataclass(frozen=True)
class Evolution:
    """What a start does to a declared feed's fact table that exists: add the columns
    `added`, drop the NOT NULL of those `relaxed`, make those `tightened` NOT NULL, make
    it again (`recreate`: why, for the log), or nothing; or, if `refusal`, refuse to
    start."""

    table: str
    added: tuple[str, ...] = ()
    recreate: str | None = None
    refusal: SchemaMismatch | None = None
    relaxed: tuple[str, ...] = ()
    tightened: tuple[str, ...] = ()

    @property
    def renulled(self) -> bool:
        """Whether a column's NOT NULL changes (SQLite can do that only by a rebuild)."""
        return bool(self.relaxed or self.tightened)


def evolve(feed: str, table: str, expected: Mapping[str, str], held: Sequence[Held], *,
           key: Sequence[str], held_key: Sequence[str], addable: Collection[str],
           has_rows: bool, not_null: Collection[str],
           holds_null: Callable[[str], bool]) -> Evolution:
    """A declared feed's fact table (`held`, its primary key `held_key`) against its
    declaration (`expected`: every column the daemon defines, name to type in the
    backend's canonical form; `not_null`: those of them that may hold no null; `key`);
    `addable`: the declared columns that an ALTER TABLE can add to a table holding rows
    (nullable, or with a default). `holds_null(column)` is asked, of a table holding
    rows, for each column declared NOT NULL that the table holds nullable: one without
    a null is tightened, one with a null refused."""
    found = {c.name: c for c in held}
    missing = tuple(n for n in expected if n not in found)
    removed = tuple(c.name for c in held if c.name not in expected)
    changed = tuple(f"{n} is {found[n].type}, declared {t}" for n, t in expected.items()
                    if n in found and found[n].type != t)
    rekeyed = tuple(key) != tuple(held_key)
    relaxed = tuple(n for n in expected
                    if n in found and found[n].not_null and n not in not_null)
    tighter = tuple(n for n in expected
                    if n in found and not found[n].not_null and n in not_null)
    if not (missing or removed or changed or rekeyed or relaxed or tighter):
        return Evolution(table)
    if not has_rows:
        return Evolution(table, recreate="empty, and unlike its declaration")
    parts, hints = [], []
    if removed:
        parts.append(f"has the columns {list(removed)}, which the feed no longer declares")
        hints.append(f"restore the declaration of {', '.join(removed)}")
    if changed:
        parts.append("has columns of another type (" + "; ".join(changed) + ")")
        hints.append("declare those columns as they were")
    if rekeyed:
        parts.append(f"is keyed on {list(held_key)}, the feed on {list(key)}")
        hints.append("declare the key as it was")
    unaddable = tuple(n for n in missing if n not in addable)
    if unaddable:
        parts.append(f"lacks the columns {list(unaddable)}, which can not be added to a "
                     "table that holds rows (NOT NULL without a default)")
        hints.append("declare each added column nullable or with a default")
    nulls = tuple(n for n in tighter if holds_null(n))
    if nulls:
        parts.append(f"has nulls in the columns {list(nulls)}, which the feed now "
                     "declares NOT NULL")
        hints.append(f"declare {', '.join(nulls)} nullable = true again, or fill the nulls "
                     f"(UPDATE {table} SET ... WHERE ... IS NULL) and start again")
    if not parts:
        return Evolution(table, added=missing, relaxed=relaxed, tightened=tighter)
    return Evolution(table, refusal=SchemaMismatch(
        f"feed {feed}: table {table} holds rows and " + ", and ".join(parts),
        hint="; or ".join(hints) + "; or, to start the feed's table afresh, move it aside "
        f"(ALTER TABLE {table} RENAME TO ...) or empty it: the next start makes it again, "
        "as declared"))
