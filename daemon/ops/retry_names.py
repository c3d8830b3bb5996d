"""The names a failed file may go back to the inbox under, for `retry`, `status` and the
status page.

Owns the refusal of a file whose own name can never load (it matches no feed's pattern,
or holds no calendar date: a retry under that name would fail it again, `name_refusal`),
the name such a file most likely meant (`suggested_name`, from `routing.likely_name`)
and the command that retries it as that name (`retry_as`), and the check of a name an
operator gives `retry --as` (`new_name_refusal`: one the daemon loads). It touches no
file: the retry itself is `daemon.ops.retries`'.
"""

from __future__ import annotations

from filedrop_etl.config.file_names import Feeds
from filedrop_etl.config.invocation import WORDS_ONLY, CommandLine
from filedrop_etl.daemon import files, routing
from filedrop_etl.daemon.errors import FileNameError
from filedrop_etl.daemon.ops.folders import FailedFile

NAME_NEVER_LOADS = "its name can never load"


def suggested_name(failed: FailedFile, feeds: Feeds) -> str | None:
    """The name a failed file whose own can never load most likely meant
    (`routing.likely_name`), to `retry NAME --as` it; None if none is likely, or if its
    own loads."""
    return routing.likely_name(failed.original, feeds)


def retry_as(failed: FailedFile, name: str, line: CommandLine = WORDS_ONLY) -> str:
    """The command that retries `failed` as `name`, written by `line` (the options that
    find the daemon: `config.invocation`)."""
    return line("retry", files=[failed.name], then=("--as", name))


def new_name_refusal(name: str, feeds: Feeds) -> tuple[str, str] | None:
    """Why `retry --as` may not send a file back as `name`, and what to do; None if the
    daemon would load a file of that name (its feed's pattern, a calendar date)."""
    if name in ("", ".", "..") or "/" in name or "\0" in name or files.is_ignored(name) \
            or name.endswith(files.SIDECAR_SUFFIX):
        return (f"--as {name!r} is not a name the daemon takes from the inbox",
                "give a file name without a directory, not hidden, not a sidecar's")
    try:
        routing.run_date_from_name(name, routing.feed_of(name, feeds))
    except FileNameError as exc:
        return (f"--as {name}: {exc.message}",
                f"give --as a name one of the feeds' patterns accepts "
                f"({', '.join(feeds.examples)}), with the run date of its rows")
    return None


def name_refusal(failed: FailedFile, feeds: Feeds,
                 line: CommandLine = WORDS_ONLY) -> tuple[str, str] | None:
    """Why a retry cannot help `failed`, and what to do instead (the command written by
    `line`); None when it can.

    A retry gives the file back the name it was dropped under: if that name matches no
    feed's pattern, or its feed cannot read a run date from it, the file fails at its name
    again, whatever it holds. The `show` command and the status page say this instead of
    proposing the retry.
    """
    contract = feeds.for_file(failed.original)
    # With one feed, its own words (as before feeds): the name against its pattern.
    if contract is None and len(feeds) == 1:
        [contract] = feeds.all
    if contract is None:
        why = (f"file name {failed.original!r} matches no feed's pattern "
               f"({', '.join(feeds.examples)})")
        rule = "one those patterns accept, with the run date of its rows"
    else:
        try:
            routing.run_date_from_name(failed.original, contract)
        except FileNameError as exc:
            why, rule = exc.message, f"like {routing.name_rule(contract)}"
        else:
            return None
    # The way out: the command that sends it back under the name it most likely meant,
    # else under one the operator chooses.
    likely = suggested_name(failed, feeds)
    if likely is not None:
        return (f"{NAME_NEVER_LOADS}: {why}",
                f"`{retry_as(failed, likely, line)}` (the name it most likely meant)")
    return f"{NAME_NEVER_LOADS}: {why}", f"`{retry_as(failed, 'NEW_NAME', line)}`, NEW_NAME {rule}"
