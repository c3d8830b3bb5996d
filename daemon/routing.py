"""Which feed a file belongs to by its name, and what else its name says.

Owns the reading of a file name by the feeds a daemon serves: its feed (`feed_of`, or
`FileNameError` listing every feed's pattern and the nearest one), the run date it
promises, read with its feed's date format (`run_date_from_name`), the rule a person is
asked to follow for a new name (`name_rule`), what a `~N` re-drop shares with its first
drop (`redrop_of`), whether a name matching no feed stays in the inbox
(`left_unmatched`), and the name a misnamed file most likely meant (`likely_name`: its
date written loosely, its case or a letter or two off), which the refusals suggest to
`retry --as`. It touches no file: hashing, opening and moves are `daemon.files`'.
"""

from __future__ import annotations

import difflib
import re
import shlex

from filedrop_etl.config.contract import Contract
from filedrop_etl.config.file_names import ISO_DATE_FORMAT, Feeds, loose_date, loose_date_pattern
from filedrop_etl.config.invocation import WORDS_ONLY, CommandLine
from filedrop_etl.daemon.errors import FileNameError
from filedrop_etl.daemon.files import display_name


def _quoted(name: str) -> str:
    """`repr(name)` (so a newline shows as `\\n`), with undecodable bytes as `\\xNN`, as the
    log and the ledger show them, not as Python's `\\udcNN` surrogates."""
    return re.sub(r"\\udc([89a-f][0-9a-f])", r"\\x\1", repr(name))


def name_rule(contract: Contract) -> str:
    """What `run_date_from_name` accepts for `contract`, in words, for every hint that asks
    a person for a new name (tests/test_files.py holds its two examples to the parser)."""
    stem, dot, ext = contract.file_name_for("2026-03-04").rpartition(".")
    return (f"{contract.file_name_example} with the run date of its rows (a ~N before "
            f"{dot}{ext} is allowed: {stem}~1{dot}{ext} loads, "
            f"{stem}-copy{dot}{ext} fails on its name)")


_REDROP = re.compile(r"(?P<stem>.*)~(?P<n>\d+)(?P<ext>\.[^.~]*)?", re.DOTALL)


def redrop_of(name: str) -> tuple[str, int]:
    """The name a `~N` re-drop shares with its first drop, and N (0 for the first):
    `transactions_D~10.parquet` is (`transactions_D.parquet`, 10)."""
    match = _REDROP.fullmatch(name)
    if match is None:
        return name, 0
    return match["stem"] + (match["ext"] or ""), int(match["n"])


def run_date_from_name(name: str, contract: Contract) -> str:
    """The ISO run date a file name promises, read with the feed's date format, or
    `FileNameError` saying what was expected."""
    match = contract.file_name_pattern.fullmatch(name)
    if match is None:
        raise FileNameError(
            f"file name {_quoted(name)} does not match {contract.file_name_example}",
            hint="rename the file to the contract's pattern and drop it again",
        )
    text = match["date"]
    try:
        # ASCII digits only: the pattern's `\d` (and `strptime`) take any script's.
        run_date = contract.run_date_of(name) if text.isascii() else None
    except ValueError:
        run_date = None
    if run_date is None:
        raise FileNameError(
            f"file name {_quoted(name)} holds {text!r}, which is not a calendar date",
            hint="rename the file with the real run date and drop it again",
        ) from None
    return run_date


# How alike (difflib's ratio) a name must be to a feed's names to be told it is nearest:
# `order_D.parquet` is 0.98 like `orders_D.parquet`, `notes.txt` 0.15 like any.
NEAREST_RATIO = 0.6


def nearest_feed(name: str, feeds: Feeds) -> Contract | None:
    """The feed whose file names look most like `name` (digits taken as alike, so a date
    counts as the feed's date), for the hint to a name that matches none; None if no
    feed's look like it (`NEAREST_RATIO`)."""
    def looks(text: str) -> str:
        return re.sub(r"\d", "0", text)

    shape = looks(name)
    scored = [(difflib.SequenceMatcher(None, shape, looks(c.file_name_for(
        "2026-03-04"))).ratio(), -i, c) for i, c in enumerate(feeds)]
    best = max(scored, key=lambda x: x[:2], default=None)
    return best[2] if best is not None and best[0] >= NEAREST_RATIO else None


def _date_or_none(name: str, contract: Contract) -> str | None:
    try:
        return run_date_from_name(name, contract)
    except FileNameError:
        return None


# How alike (difflib's ratio, in small letters) a name but for its date must be to a
# feed's name but for its date to be taken for a misspelling of it: one or two letters
# off (`transaction_`, `transactions-`: 0.97), where another feed's name is not
# (`refunds_` for `orders_`: 0.67) nor a bare date (`2024-01-01.parquet`: 0.55).
LIKELY_RATIO = 0.8


def _loose_run_date(text: str, contract: Contract) -> tuple[str, float] | None:
    """The run date `text` holds written loosely (`2026-1-1`, `20260101`), in the feed's
    order of fields or else ISO's, and how alike the rest of `text` is to the rest of
    the feed's name (1.0: the same but for case), or None without a date in it."""
    rest = contract.file_name_template.replace("{date}", "").lower()
    for order in dict.fromkeys((contract.date_format, ISO_DATE_FORMAT)):
        for match in re.finditer(loose_date_pattern(order), text):
            found = loose_date(match)
            if found is not None:
                left = (text[:match.start()] + text[match.end():]).lower()
                return found, difflib.SequenceMatcher(None, left, rest).ratio()
    return None


def likely_name(name: str, feeds: Feeds) -> str | None:
    """The name a file that can not load by its own name most likely meant: a feed's
    name with its run date written in the feed's date format, and the `~N` it had
    (`Transactions_2026-1-1.PARQUET` -> `transactions_2026-01-01.parquet`); None for a
    name that loads as it is, or that is not a feed's name but for case, a letter or
    two (`LIKELY_RATIO`) and the way its date is written."""
    contract = feeds.for_file(name)
    if contract is not None and _date_or_none(name, contract) is not None:
        return None
    stem, n = redrop_of(name)
    scored = [(found[1], -i, c, found[0]) for i, c in enumerate(feeds)
              if (found := _loose_run_date(stem, c)) is not None]
    best = max(scored, key=lambda x: x[:2], default=None)
    if best is None or best[0] < LIKELY_RATIO:
        return None
    _, _, contract, day = best
    meant = contract.file_name_for(day)
    if n:
        head, dot, ext = meant.rpartition(".")
        meant = f"{head}~{n}.{ext}" if dot else f"{meant}~{n}"
    # As the daemon reads it: the feed it was made for, and the same day.
    if feeds.for_file(meant) is not contract or _date_or_none(meant, contract) != day:
        return None
    return meant if meant != name else None


def shell_word(name: str) -> str:
    """A file name as a command line to copy gives it: as it is where a shell takes it
    so (`transactions_D~1.parquet`), else quoted; one that is not UTF-8 as the log shows
    it (`\\xNN`), never as surrogates, which no log line, ledger row or terminal takes."""
    if re.fullmatch(r"[\w.~+@%,:=-]+", name, re.ASCII):
        return name
    return shlex.quote(name) if _quoted(name) == repr(name) else _quoted(name)


def feed_of(name: str, feeds: Feeds, line: CommandLine = WORDS_ONLY) -> Contract:
    """The feed a file name belongs to, or `FileNameError` listing every feed's pattern
    and the nearest one, and suggesting the name it most likely meant (`likely_name`),
    to retry it as (the command written by `line`, `config.invocation`). A daemon of one
    feed says what it always said, and that."""
    contract = feeds.for_file(name)
    if contract is not None:
        return contract
    meant = likely_name(name, feeds)
    # The name as the log shows it (undecodable bytes as `\xNN`), never as surrogates.
    shown = display_name(name)
    retry = (f"; or, once it is in failed/, `{line('retry', files=[shown], then=('--as', meant))}`"
             if meant else "")
    if len(feeds) == 1:
        try:
            run_date_from_name(name, feeds.all[0])  # raises its own words
        except FileNameError as exc:
            raise FileNameError(exc.message + (f"; it most likely meant {meant}"
                                               if meant else ""),
                                hint=exc.hint + retry, suggested_name=meant) from None
    nearest = nearest_feed(name, feeds)
    raise FileNameError(
        f"file name {_quoted(name)} does not match any feed's pattern "
        f"({', '.join(feeds.examples)})"
        + (f"; the nearest is {nearest.file_name_example}" if nearest else "")
        + (f"; it most likely meant {meant}" if meant else ""),
        hint="rename the file to its feed's pattern and drop it again, or declare a feed "
        "whose pattern it matches" + (f"; the nearest feed, {nearest.name}, takes "
                                      f"{name_rule(nearest)}" if nearest else "") + retry,
        suggested_name=meant,
    )


def feed_name(name: str, feeds: Feeds) -> str:
    """The name of the feed a file name belongs to, as logs, metrics and the ledger
    carry it: `""` for a name that matches no feed."""
    return feeds.name_of(name) or ""


def left_unmatched(name: str, feeds: Feeds) -> bool:
    """Whether a file of this name stays in the inbox untouched: it matches no feed, and
    the operator chose `unmatched = "leave"` for such files."""
    return feeds.unmatched == "leave" and feeds.for_file(name) is None
