"""`python -m daemon`: see `daemon.cli`."""

import signal

# Before any import can start a native thread (OpenBLAS starts one with numpy): threads
# inherit this mask, so the stop signals can only ever reach the main thread.
signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGTERM, signal.SIGINT))

from daemon.cli import main  # noqa: E402  (must follow the mask above)

raise SystemExit(main())
