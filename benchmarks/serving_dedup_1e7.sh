#!/usr/bin/env bash
# The 10^7 start-up measurement of README "Duplicate search": needs the seeded PostgreSQL store and
# its data directory: FVS_BENCH_DATA_DIR=... FVS_BENCH_STORE=postgresql://... benchmarks/serving_dedup_1e7.sh
# 10^7 templates on PostgreSQL: (1) start from the template-index snapshot, the PQ search index
# builds in the background, graceful stop saves both; (2) start again: both from the snapshot.
set -u
cd "$(dirname "$0")/.."
D="${FVS_BENCH_DATA_DIR:?the data directory of the seeded store (keys, cache)}"
URL="${FVS_BENCH_STORE:?postgresql://... of the seeded store}"
run() {
  log=$1
  start=$(date +%s.%N)
  /usr/bin/time -v .venv/bin/python -m fvs serve --insecure --address 127.0.0.1:50999 --data-dir $D --store $URL --template-key-file $D/keys/template.key --providers cpu > $log 2> $log.err &
  pid=$!
  # wait for the duplicate search index (built or loaded)
  for i in $(seq 1 900); do
    if grep -q "duplicate search index: " $log $log.err 2>/dev/null; then break; fi
    sleep 1
  done
  ready=$(date +%s.%N)
  echo "$log: dedup index ready after $(python3 -c "print(round($ready - $start,1))") s"
  grep -h "template index:\|duplicate search index\|SERVING\|serving with" $log $log.err | cut -c1-220
  .venv/bin/python -m fvs health --server 127.0.0.1:50999 || true
  # RSS of the server process (time -v's child)
  child=$(pgrep -f "address 127.0.0.1:50999" | tail -1)
  grep VmRSS /proc/$child/status 2>/dev/null; grep VmHWM /proc/$child/status 2>/dev/null
  sleep 45  # the new search index is saved into the snapshot (about 30 s at 10^7)
  kill -TERM $child
  wait $pid
  grep -h "snapshot" $log $log.err | tail -3 | cut -c1-220
}
run /tmp/e1e7-a.log
run /tmp/e1e7-b.log
