"""Consumes dropped files: cli -> service -> watcher -> pipeline -> store/checks/files."""

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    """The installed package's version (`--version`, `etl_daemon_info`, the status page)."""
    try:
        return version("filedrop-etl")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"
