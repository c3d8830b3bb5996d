"""Every command the README shows is one the program takes, and every name it uses exists.

README.md is read as a reader copies from it: the lines of its shell blocks (```sh) and
the `$ ` lines of its console examples, split as a shell splits them. Each
`filedrop-etl ...` is parsed by the program's own parser (the command exists; each option
exists, spelled in full, with its value), each `filedrop-etl-generate ...` by the
generator's, and each `make X` names a target of the Makefile; a command named in prose
(`filedrop-etl retry NAME`) must name a command and its options too. The settings table
lists exactly `SETTING_NAMES`, with each one's flag and variable; every `ETL_` variable
and `key = value` the README names is a setting (or a feed's key). Every event of the
"Log events" table is in the code, and every event the code logs is in the table. The
contents' links go to headings that exist. Nothing is run: `tests/test_readme.py` runs
the sqlite3 recipes, and the rest of the suite what the commands do. The cases at the end
hold that a typo fails here.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from filedrop_etl.config.feed_checks import CHECK_KEYS
from filedrop_etl.config.feed_parts import COLUMN_KEYS
from filedrop_etl.config.feeds import FEED_KEYS
from filedrop_etl.config.setting_values import SETTING_NAMES
from filedrop_etl.daemon.app import cli
from filedrop_etl.generator import cli as generator_cli

from .conftest import ROOT

README = ROOT / "README.md"
PRODUCT = ("daemon", "config", "generator", "filedrop_etl")
SEPARATORS = {"|", "||", "&&", ";", "&"}
LOG_METHODS = {"debug", "info", "warning", "error", "critical", "exception"}
# `ETL_` names that are not settings, each named on purpose: (name, why).
NOT_SETTINGS = {
    "ETL_CONFIG": "the config file itself, not a setting in it",
    "ETL_CRASH_AT": "the crash tests' switch",
    "ETL_CI_POSTGRES": "the server .ci/run uses",
    "ETL_DATABASE": "the README's example of a mistyped variable",
}
# Code spans of docs/ that begin with our program's name but are no command: (span, why).
NOT_COMMANDS = {
    "filedrop-etl (liveness check)": "the application_name of the liveness check's connection",
}


def readme() -> str:
    """README.md as it reads: without its HTML comments (the places kept for text to come)."""
    return re.sub(r"<!--.*?-->", "", README.read_text(encoding="utf-8"), flags=re.S)


def section(text: str, heading: str) -> str:
    """The text under `heading` down to the next heading of its level or above."""
    level = heading.split(" ")[0]
    start = text.index("\n" + heading + "\n") + len(heading) + 2
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", text[start:], re.M)]
    return text[start:start + ends[0]] if ends else text[start:]


# -- commands ----------------------------------------------------------------------------

def block_lines(text: str) -> Iterator[str]:
    """Each command line of the shell blocks and console examples, continuations joined."""
    for language, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.M | re.S):
        body = body.replace("\\\n", " ")
        for line in body.splitlines():
            if language == "sh" and line.strip() and not line.lstrip().startswith("#"):
                yield line.strip()
            elif language == "" and line.startswith("$ "):
                yield line[2:].strip()


def inline_spans(text: str) -> Iterator[str]:
    """Code spans of the prose that begin with one of our programs."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    for span in re.findall(r"`([^`\n]+(?:\n[^`\n]+)?)`", prose):
        words = span.split()
        if words and Path(words[0]).name in ("filedrop-etl", "filedrop-etl-generate"):
            yield " ".join(words)


def invocations(line: str) -> Iterator[tuple[str, list[str]]]:
    """(program, its arguments) for each command of ours in one shell line."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    segment: list[str] = []
    for token in [*lexer, ";"]:
        if token not in SEPARATORS:
            segment.append(token)
            continue
        found = _ours(segment)
        if found is not None:
            yield found
        segment = []


def _ours(words: list[str]) -> tuple[str, list[str]] | None:
    # A redirection ends the command's own words (`>/dev/null`, `2>&1`).
    for at, word in enumerate(words):
        if word[:1] in "<>" or re.fullmatch(r"\d[<>].*", word):
            words = words[:at]
            break
    while words:
        if words[0] == "sudo":
            words = words[3:] if words[1:2] == ["-u"] else words[1:]
        elif words[0] == "env" or re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            words = words[1:]
        else:
            break
    if not words:
        return None
    program = Path(words[0]).name
    if program in ("filedrop-etl", "filedrop-etl-generate", "make"):
        return program, words[1:]
    if program.startswith("python") and words[1:3] == ["-m", "filedrop_etl"]:
        return "filedrop-etl", words[3:]
    return None


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[str | None, list[str]]:
    """What argparse says of argv (its error, or None) and the options it did not take."""
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            _, extras = parser.parse_known_args(argv)
    except SystemExit as exit_:
        return (None if exit_.code == 0 else quiet.getvalue().strip() or "refused"), []
    return None, extras


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def _spelled_in_full(argv: list[str], options: set[str]) -> list[str]:
    return [f"{word.partition('=')[0]!r} is not an option spelled in full"
            for word in argv if word.startswith("--") and word.partition("=")[0] not in options]


def daemon_problems(argv: list[str], *, whole: bool = True) -> list[str]:
    """Why `filedrop-etl argv` is not a command line the program takes (none: it is).

    `whole` False is for a command named in prose (`retry NAME`): its command and its
    options must exist, but its arguments may be left out."""
    parser = cli.build_parser()
    commands = cli._commands(parser)
    if not whole and argv[:1] == ["COMMAND"]:  # `filedrop-etl COMMAND --help`: any of them
        argv = ["run", *argv[1:]]
    placed, unknown = cli._placed(argv, parser)
    if unknown is not None:
        return [f"{unknown!r} is no command (the commands: {', '.join(commands)})"]
    command = commands.get(placed[0]) if placed else None
    if command is None:
        return []  # --help or --version alone
    problems = _spelled_in_full(argv, _options(command) | _options(parser))
    if whole and not problems:
        # Through the program's own parser, whose errors log and exit 2: caught here.
        error, extras = _parse(parser, placed)
        problems += [error] if error else []
        problems += [f"not taken: {' '.join(extras)}"] if extras else []
    return problems


def generator_problems(argv: list[str], *, whole: bool = True) -> list[str]:
    parser = generator_cli.build_parser()
    problems = _spelled_in_full(argv, _options(parser))
    if whole and not problems:
        error, extras = _parse(parser, argv)
        problems += [error] if error else []
        problems += [f"not taken: {' '.join(extras)}"] if extras else []
    return problems


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][\w-]*):", text, re.M))


def make_problems(argv: list[str]) -> list[str]:
    words, targets = list(argv), make_targets()
    while words and words[0] == "-C":
        words = words[2:]
    return [f"no make target {word!r}" for word in words
            if not word.startswith("-") and "=" not in word and word not in targets]


def problems_of(program: str, argv: list[str], *, whole: bool = True) -> list[str]:
    if program == "make":
        return make_problems(argv)
    if program == "filedrop-etl-generate":
        return generator_problems(argv, whole=whole)
    return daemon_problems(argv, whole=whole)


def readme_commands(text: str | None = None) -> list[tuple[str, str, list[str], bool]]:
    """(the line, program, arguments, whether it is a whole command) for each in README
    (or in `text`)."""
    text = readme() if text is None else text
    found = [(line, program, argv, True) for line in block_lines(text)
             for program, argv in invocations(line)]
    found += [(span, program, argv, False) for span in inline_spans(text)
              for program, argv in invocations(span)]
    return found


def test_the_commands_are_read() -> None:
    """The reader finds what it must, so that an empty read cannot pass."""
    found = readme_commands()
    programs = {program for _, program, _, _ in found}
    assert programs == {"filedrop-etl", "filedrop-etl-generate", "make"}
    lines = {line for line, _, _, _ in found}
    assert any(line.startswith("make demo   # the three-run scenario") for line in lines)
    assert any("status --config /etc/filedrop-etl/etl.toml" in line for line in lines)
    assert len(found) > 40


@pytest.mark.parametrize(("line", "program", "argv", "whole"), readme_commands(),
                         ids=[line[:70] for line, _, _, _ in readme_commands()])
def test_each_readme_command_is_one_the_program_takes(line: str, program: str,
                                                      argv: list[str], whole: bool) -> None:
    assert not problems_of(program, argv, whole=whole), line


def docs_commands() -> list[tuple[str, str, list[str], bool]]:
    """The same of docs/*.md, where the README's depth went: its commands are held alike."""
    found = []
    for path in sorted((ROOT / "docs").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        found += [(f"{path.name}: {line}", program, argv, whole)
                  for line, program, argv, whole in readme_commands(text)
                  if line not in NOT_COMMANDS]
    return found


@pytest.mark.parametrize(("line", "program", "argv", "whole"), docs_commands(),
                         ids=[line[:70] for line, _, _, _ in docs_commands()])
def test_each_docs_command_is_one_the_program_takes(line: str, program: str,
                                                    argv: list[str], whole: bool) -> None:
    assert not problems_of(program, argv, whole=whole), line


def test_the_docs_name_only_settings_that_exist() -> None:
    assert len(docs_commands()) >= 10  # the reader finds them: an empty read cannot pass
    for path in sorted((ROOT / "docs").glob("*.md")):
        assert not setting_problems(path.read_text(encoding="utf-8")), path.name


@pytest.mark.parametrize(("program", "argv"), [
    ("filedrop-etl", ["stauts"]),
    ("filedrop-etl", ["status", "--josn"]),
    ("filedrop-etl", ["retry", "--all", "--dryrun"]),
    ("filedrop-etl", ["history", "--limit", "many"]),
    ("filedrop-etl", ["history", "--stat", "failed"]),  # argparse would take it; we do not
    ("filedrop-etl", ["run", "--write-mode", "upsert"]),
    ("filedrop-etl", ["show"]),
    ("filedrop-etl-generate", ["--date", "2026-02-30"]),
    ("filedrop-etl-generate", ["--date", "2026-02-10", "--feeds", "orders"]),
    ("make", ["demo-postgre"]),
    ("make", ["-C", "/opt/filedrop-etl", "install-runtim"]),
])
def test_a_typo_in_a_command_fails(program: str, argv: list[str]) -> None:
    assert problems_of(program, argv)


def test_a_line_is_split_as_a_shell_splits_it() -> None:
    line = ("sudo -u filedrop-etl env ETL_DB=postgresql://x@h/db PGPASSFILE=/p "
            "/opt/filedrop-etl/.venv/bin/filedrop-etl status --db /x >/dev/null || page "
            "&& make -C /opt/filedrop-etl install-runtime")
    assert list(invocations(line)) == [("filedrop-etl", ["status", "--db", "/x"]),
                                       ("make", ["-C", "/opt/filedrop-etl", "install-runtime"])]


# -- settings ------------------------------------------------------------------------------

def settings_table() -> list[list[str]]:
    rows = [re.split(r"(?<!\\)\|", line.strip().strip("|"))
            for line in section(readme(), "## Settings").splitlines() if line.startswith("| `")]
    assert rows, "README.md has no settings table under ## Settings"
    return [[cell.strip() for cell in row] for row in rows]


def test_the_settings_table_lists_every_setting_with_its_flag_and_variable() -> None:
    run_options = _options(cli._commands(cli.build_parser())["run"])
    listed = []
    for key, flag, variable, *_ in settings_table():
        name = key.strip("`")
        listed.append(name)
        assert variable == f"`ETL_{name.upper()}`", key
        if flag:
            assert flag.strip("`").split()[0] in run_options, f"{key}: {flag}"
    assert sorted(listed) == sorted(SETTING_NAMES)


def etl_variables(text: str) -> set[str]:
    return set(re.findall(r"\bETL_[A-Z][A-Z0-9_]*\b", text))


def setting_problems(text: str) -> list[str]:
    """Settings the text names that do not exist: `ETL_` variables and `key = value` spans."""
    settings = set(SETTING_NAMES)
    problems = [f"{variable} names no setting" for variable in sorted(etl_variables(text))
                if variable not in NOT_SETTINGS
                and variable.removeprefix("ETL_").lower() not in settings]
    keys = settings | set(FEED_KEYS) | set(COLUMN_KEYS) | set(CHECK_KEYS)
    problems += [f"`{key} = ...` names no setting nor a feed's key"
                 for key in re.findall(r"`([a-z_]+) = [^`]*`", text) if key not in keys]
    for body in re.findall(r"^ *```toml\n(.*?)^ *```", text, re.M | re.S):
        top = body.split("\n[", 1)[0] if not body.lstrip().startswith("[") else ""
        problems += [f"{key} in a TOML block is no setting"
                     for key in re.findall(r"^ *([a-z_]+) *=", top, re.M) if key not in settings]
    return problems


def test_every_setting_the_readme_names_exists() -> None:
    text = readme()
    assert {"ETL_DB", "ETL_NODE", "ETL_CONFIG"} <= etl_variables(text)
    assert not setting_problems(text)


@pytest.mark.parametrize("text", [
    "set `ETL_INBX` to the inbox", "`obsever = \"polling\"`",
    "```toml\nwrite_mod = \"merge\"\n```\n",
])
def test_a_typo_in_a_setting_fails(text: str) -> None:
    assert setting_problems(text)


# -- log events -------------------------------------------------------------------------

def documented_events() -> set[str]:
    table = [line for line in section(readme(), "## Log events").splitlines()
             if line.startswith("| `")]
    return {name for line in table for name in re.findall(r"`([a-z][a-z_]+)`", line.split("|")[1])}


def _product_trees() -> Iterator[ast.Module]:
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield ast.parse(path.read_text(encoding="utf-8"), str(path))


def code_strings() -> tuple[set[str], list[re.Pattern[str]], set[str]]:
    """Every string literal of the product; the f-strings logged as events, as patterns;
    the literal events its log calls name."""
    strings: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    logged: set[str] = set()
    for tree in _product_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LOG_METHODS and node.args):
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) \
                    and re.fullmatch(r"[a-z]+(_[a-z]+)+", first.value):
                logged.add(first.value)
            elif isinstance(first, ast.JoinedStr):
                parts = [re.escape(p.value) if isinstance(p, ast.Constant)
                         and isinstance(p.value, str) else "[a-z_]+" for p in first.values]
                patterns.append(re.compile("".join(parts)))
    return strings, patterns, logged


def event_problems(events: set[str]) -> list[str]:
    strings, patterns, _ = code_strings()
    return [f"{event} is logged nowhere in the code" for event in sorted(events)
            if event not in strings and not any(p.fullmatch(event) for p in patterns)]


def test_every_documented_event_is_logged() -> None:
    events = documented_events()
    assert {"file_processed", "daemon_started", "inbox_created", "http_request"} <= events
    assert not event_problems(events)


def test_every_logged_event_is_documented() -> None:
    _, _, logged = code_strings()
    assert "file_processed" in logged
    section_text = section(readme(), "## Log events")
    missing = sorted(event for event in logged if f"`{event}`" not in section_text)
    assert not missing, "events the README's Log events table does not name: " + ", ".join(missing)


def test_a_typo_in_an_event_fails() -> None:
    assert event_problems({"file_procesed"})
    assert event_problems({"inbox_creatd"})
    assert not event_problems({"work_created"})


# -- links --------------------------------------------------------------------------------

def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    body = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#+ (.*)$", body, re.M)}


def link_problems() -> list[str]:
    problems = []
    for path in (README, *sorted((ROOT / "docs").glob("*.md"))):
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            if not linked.exists():
                problems.append(f"{path.name}: {target}: no such file")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"{path.name}: {target}: no such heading")
    return problems


def test_every_link_goes_to_a_file_and_heading_that_exist() -> None:
    assert "try-it-the-demo-the-tests-and-a-files-life" in anchors(README)
    assert not link_problems()


def test_the_readme_leads_with_the_demo_and_the_tests() -> None:
    """A newcomer finds the two commands before any reference."""
    text = readme()
    assert text.index("make demo") < text.index("## Contents") < text.index("## Settings")
    assert "make test" in text[:text.index("## Contents")]
    headings = re.findall(r"^## (.*)$", text, re.M)
    order = ["Contents", "Try it: the demo, the tests and a file's life",
             "Installing on a server", "Dropping files and reading failures",
             "Loading your own files",
             "Growing past one machine: PostgreSQL, and daemons that share the work",
             "Settings"]
    assert [h for h in headings if h in order] == order
