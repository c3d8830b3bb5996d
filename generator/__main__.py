"""`python -m filedrop_etl.generator` (the `filedrop-etl-generate` script): deterministic daily
transaction files into an inbox. Run from a clone as `python -m generator`, the old form, it
says where to go first."""

import sys

from filedrop_etl.generator.cli import main

if __package__ == "generator":
    print("note: `python -m generator` is now `filedrop-etl-generate` (or `python -m "
          "filedrop_etl.generator`); the old form works only from a clone", file=sys.stderr)
raise SystemExit(main())
