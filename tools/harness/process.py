"""The real daemon as a process: the one way tests, demos and proving tools start and stop it.

Owns the daemon's argv prefix (`python -m filedrop_etl`, with this interpreter), the
environment a harness gives it (its own, or its own less every `ETL_` setting, so that only
the argv configures the daemon), where its output goes (one log file, stderr with stdout),
and how it ends: a signal and a deadline, then SIGKILL if the deadline passes. It does not
read the log (`logtail.py` does) nor wait for the daemon to start (each caller knows which
line means started for it). The product never imports this module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STOP_SECONDS = 30.0


def daemon_argv(*args: str, wrapper: Sequence[str] = ()) -> list[str]:
    """The command that runs the daemon with `args`, under `wrapper` when given (a command
    that execs its argv, keeping its pid: one that drops privileges, say)."""
    return [*wrapper, sys.executable, "-m", "filedrop_etl", *args]


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its `ETL_` settings, then `extra`: a daemon
    configured by its argv alone, whatever the shell running the tests exports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_")}
    env.update(extra or {})
    return env


def start(argv: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None,
          append: bool = False, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    """Run `argv` (see `daemon_argv`) from `cwd`, stdout and stderr into `log_path`
    (appended to when `append`, as a case restarting its daemon keeps one log); `env`
    None inherits this process's environment."""
    with log_path.open("ab" if append else "wb") as log:
        return subprocess.Popen(list(argv), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                env=None if env is None else dict(env))


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
         timeout: float = STOP_SECONDS) -> int:
    """Send `sig` (unless it has exited) and wait up to `timeout` for the exit code. Past
    the deadline the process is killed and reaped, and `TimeoutExpired` raised: a daemon
    that does not stop is a failure, never one left running."""
    if process.poll() is None:
        process.send_signal(sig)
    return wait(process, timeout)


def wait(process: subprocess.Popen[bytes], timeout: float = STOP_SECONDS) -> int:
    """Wait up to `timeout` for the exit code of a process already told to stop (several
    daemons are signalled together, then waited for); killed as `stop` says past it."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(process)
        raise


def kill(process: subprocess.Popen[bytes], timeout: float = STOP_SECONDS) -> bool:
    """SIGKILL the process if it still runs (frozen or not), and reap it; whether it ran."""
    running = process.poll() is None
    if running:
        process.kill()
    process.wait(timeout=timeout)
    return running
