"""The `filedrop-etl` console script and `python -m daemon`: mask signals, then start.

The stop signals are blocked before anything else is imported, because an import can
start a native thread (OpenBLAS starts one with numpy) and threads inherit the mask:
so SIGTERM and SIGINT can only ever reach the main thread, whose handlers only set a
flag. Everything else is `daemon.cli`'s.
"""

from __future__ import annotations

import signal


def main(prog: str = "filedrop-etl") -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGTERM, signal.SIGINT))
    from daemon import cli  # after the mask, on purpose (see above)

    return cli.main(prog=prog)
