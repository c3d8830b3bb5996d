"""The `filedrop-etl` console script and `python -m filedrop_etl`: mask signals, then start.

The daemon's signals (`daemon.app.signals.TAKEN`) are blocked before anything else is
imported, because an import can start a native thread (OpenBLAS starts one with numpy)
and threads inherit the mask: so they can only ever reach the main thread, whose
handlers only set a flag, and none can end the process while it starts. Everything
else is `daemon.app.cli`'s.
"""

from __future__ import annotations

import signal


def main(prog: str = "filedrop-etl") -> int:
    from filedrop_etl.daemon.app import signals  # plain Python: it starts no thread

    signal.pthread_sigmask(signal.SIG_BLOCK, signals.TAKEN)
    from filedrop_etl.daemon.app import cli  # after the mask, on purpose (see above

    return cli.main(prog=prog)
