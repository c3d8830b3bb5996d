"""The wheel a user builds from the repository, installed into a fresh venv and run.

Guards a found bug: `pip wheel .` left a subpackage out (the package list named the
top-level packages only), so an installed `filedrop-etl` failed at import, while the
Makefile's editable install hid it. `make install-runtime` (the servers' install) builds
the wheel and installs it with its dependencies into a new venv, once for the module
(about 15 s, most of it pip); it is run from a directory outside the repository, so
nothing can be imported from the tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

# The slow tier: builds the wheel and installs it in fresh venvs.
pytestmark = pytest.mark.slow

PACKAGES = ("daemon", "generator", "config")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    cwd: Path

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.venv / "bin" / argv[0]), *argv[1:]], cwd=self.cwd,
                              capture_output=True, text=True, timeout=120, check=False)


def _run(*argv: str, cwd: Path) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}\n{done.stderr}"


# Left out of the copy the wheel is built from: what a fresh clone does not have, and a
# `build/` left by an earlier build, which setuptools would reuse (and so hide the bug).
_NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "*.db*", "inbox",
    "processed", "failed", ".inbox.work", ".demo")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """`make install-runtime` in a clean copy of the tree: pip builds the wheel and
    installs it into a new venv, as on a server."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_IN_A_CLONE)
    _run("make", "install-runtime", f"PYTHON={sys.executable}", cwd=source)
    _run(str(source / ".venv" / "bin" / "pip"), "wheel", "--no-deps", "--quiet", "-w",
         str(root), str(source), cwd=root)
    [wheel] = root.glob("filedrop_etl-*.whl")
    work = root / "elsewhere"
    work.mkdir()
    yield Installed(wheel, source / ".venv", work)


def test_the_wheel_holds_every_package_of_the_tree(installed: Installed) -> None:
    in_tree = {f"filedrop_etl/{init.parent.relative_to(ROOT)}" for package in PACKAGES
               for init in (ROOT / package).rglob("__init__.py")}
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    in_wheel = {name.rpartition("/")[0] for name in names if name.endswith("/__init__.py")}
    assert {"filedrop_etl/daemon/ops/commands", "filedrop_etl/daemon/warehouse/sqlite",
            "filedrop_etl/daemon/warehouse/postgresql"} <= in_tree
    assert in_tree <= in_wheel, f"left out of the wheel: {sorted(in_tree - in_wheel)}"
    assert "filedrop_etl/config/etl.toml" in names
    # The declaration to copy, beside the settings it documents.
    assert "filedrop_etl/config/feeds.example.toml" in names
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"filedrop_etl"}, tops


def test_the_installed_console_script_runs_its_commands_and_the_daemon(
        installed: Installed) -> None:
    where = installed.run("python", "-c", "import filedrop_etl.daemon.ops.commands as c; "
                          "print(c.__file__)")
    assert where.returncode == 0 and where.stdout.startswith(str(installed.venv)), where
    version = installed.run("filedrop-etl", "--version")
    assert version.returncode == 0 and version.stdout.startswith("filedrop-etl "), version
    generated = installed.run("filedrop-etl-generate", "--date", "2026-02-10",
                              "--inbox", "inbox")
    assert generated.returncode == 0, generated
    loaded = installed.run("filedrop-etl", "run", "--once", "--db", "etl.db")
    assert loaded.returncode == 0, loaded
    assert '"event": "file_processed"' in loaded.stdout
    status = installed.run("filedrop-etl", "status", "--db", "etl.db", "--json")
    assert status.returncode == 0 and '"processed": 1' in status.stdout, status


def test_a_runtime_install_has_no_dev_tools(installed: Installed) -> None:
    for tool in ("pytest", "ruff", "mypy"):
        assert not (installed.venv / "bin" / tool).exists(), tool
    found = installed.run("python", "-c", "import importlib.util as u; "
                          "print([m for m in ('selenium', 'pytest') if u.find_spec(m)])")
    assert found.stdout.strip() == "[]", found


def test_local_modules_named_like_ours_do_not_shadow_it(installed: Installed) -> None:
    """`python -m` puts the working folder first on sys.path: a project's own `config.py`
    or `generator/` beside the command must not be taken for ours."""
    (installed.cwd / "config.py").write_text("raise ImportError('the local config.py')\n")
    (installed.cwd / "generator").mkdir(exist_ok=True)
    (installed.cwd / "generator" / "__init__.py").write_text("raise ImportError('local')\n")
    try:
        for argv in (("python", "-m", "filedrop_etl", "--version"),
                     ("python", "-m", "filedrop_etl.generator", "--help")):
            done = installed.run(*argv)
            assert done.returncode == 0, (argv, done.stderr)
    finally:
        (installed.cwd / "config.py").unlink()
        shutil.rmtree(installed.cwd / "generator")


def test_python_daemon_installs_beside_it_and_both_work(installed: Installed) -> None:
    """python-daemon (an Apache Airflow dependency) installs a top-level `daemon`; installed
    after us into one environment it once overwrote ours, and `filedrop-etl --help` died
    with an ImportError. Last in this module: it adds a package to the shared venv."""
    _run(str(installed.venv / "bin" / "pip"), "install", "--quiet", "python-daemon",
         cwd=installed.cwd)
    helped = installed.run("filedrop-etl", "--help")
    assert helped.returncode == 0 and "usage: filedrop-etl" in helped.stdout, helped
    theirs = installed.run("python", "-c", "import daemon; print(daemon.DaemonContext)")
    assert theirs.returncode == 0 and "DaemonContext" in theirs.stdout, theirs
    loaded = installed.run("filedrop-etl", "run", "--once", "--db", "etl.db")
    assert loaded.returncode == 0, loaded
