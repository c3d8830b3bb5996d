"""`python -m filedrop_etl`: the daemon and its commands, as the `filedrop-etl` script runs them."""

from filedrop_etl.daemon.app.console import main

raise SystemExit(main(prog="python -m filedrop_etl"))
