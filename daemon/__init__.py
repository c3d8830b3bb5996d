"""Consumes dropped files: app (the process) -> watch (detection, the worker) -> load (one
file) -> warehouse (the seam; sqlite/ and postgresql/ behind it); ops serves operators."""

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    """The installed package's version (`--version`, `etl_daemon_info`, the status page)."""
    try:
        return version("filedrop-etl")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"
