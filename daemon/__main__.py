"""`python -m daemon`: see `daemon.console` and `daemon.cli`."""

from daemon.app.console import main

raise SystemExit(main(prog="python -m daemon"))
