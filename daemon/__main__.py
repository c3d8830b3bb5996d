"""`python -m filedrop_etl.daemon`; run from a clone as `python -m daemon`, the old form, it
says where to go first (`daemon` is `python-daemon`'s name once installed)."""

import sys

from filedrop_etl.daemon.app.console import main

if __package__ == "daemon":
    print("note: `python -m daemon` is now `python -m filedrop_etl` (or the `filedrop-etl` "
          "script); the old form works only from a clone", file=sys.stderr)
raise SystemExit(main(prog="python -m filedrop_etl"))
