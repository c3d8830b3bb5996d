"""filedrop-etl, installed under one name of its own.

The repository keeps the folders its users know at its top level (`daemon/`, `generator/`,
`config/`); this package links to them, so the product imports itself, and installs, as
`filedrop_etl.daemon`, `filedrop_etl.generator` and `filedrop_etl.config`. Generic
top-level names collided: `python-daemon` (an Apache Airflow dependency) also installs
`daemon`, and overwrote ours when installed after us. Run the daemon as `filedrop-etl` or
`python -m filedrop_etl`, the generator as `filedrop-etl-generate` or
`python -m filedrop_etl.generator`.
"""
