# How etl.db here was written (see README.md): ROOT=<checkout of 0344173> bash make.sh
set -e
ROOT=${ROOT:?a checkout of commit 0344173}
PY=${PY:-$ROOT/.venv/bin/python}
R=${R:-/tmp/r4}
cd $R
: > empty.toml
mkdir -p inbox out out1
D="--config $R/empty.toml --inbox $R/inbox --processed $R/processed --failed $R/failed --db $R/etl.db"
gen() { (cd $ROOT && $PY -m filedrop_etl.generator "$@" --no-progress); }
once() { (cd $ROOT && $PY -m filedrop_etl run $D --once "$@") >> $R/daemon.log 2>&1 || echo "once exit $?"; }
gen --date 2026-03-01 --date 2026-03-02 --rows 300 --inbox $R/out
gen --date 2026-03-02 --rows 250 --seed 1 --inbox $R/out1
gen --date 2026-03-03 --rows 40 --inbox $R/out
# 1. a new day (merge): 300 inserted
cp out/transactions_2026-03-01.parquet inbox/; once
# 2. the same file again: 300 unchanged
cp out/transactions_2026-03-01.parquet inbox/; once
# 3. a second day: 300 inserted
cp out/transactions_2026-03-02.parquet inbox/; once
# 4. the same date, 250 rows of seed 1, replace mode: 250 updated, 50 deleted
cp out1/transactions_2026-03-02.parquet inbox/; once --write-mode replace
# 5. a third day, 40 rows
cp out/transactions_2026-03-03.parquet inbox/; once
# 6. a file that is not Parquet: failed; retried; failed again
printf 'not parquet' > inbox/transactions_2026-03-04.parquet; once
(cd $ROOT && $PY -m filedrop_etl retry --config $R/empty.toml --db $R/etl.db --inbox $R/inbox --failed $R/failed transactions_2026-03-04.parquet) >> $R/daemon.log 2>&1
once

# then, from $ROOT: report, history --limit 100 and show transactions_2026-03-02.parquet,
# each with --config $R/empty.toml --db $R/etl.db --json, and the WAL checkpointed:
# sqlite3 $R/etl.db 'PRAGMA wal_checkpoint(TRUNCATE)'