"""`python -m daemon`: see `daemon.console` and `daemon.cli`."""

from daemon.console import main

raise SystemExit(main(prog="python -m daemon"))
