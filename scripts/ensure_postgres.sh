#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers for the tests, and prints its base URL on stdout.
# Order: $FVS_TEST_PG_URL if set; a server already answering at 127.0.0.1:5432 (trust auth);
# the machine's Debian cluster started with pg_ctlcluster; else Debian's postgresql package
# (installed if missing) run by initdb + pg_ctl in a temporary folder on port 55432.
# FVS_TEST_PG_PRIVATE=1 goes straight to the private cluster.
# The tests never skip the PostgreSQL suite: if none of this works, this script fails.
set -euo pipefail
answers() { pg_isready -q -h 127.0.0.1 -p "$1" -t 3 2>/dev/null; }
if [ -n "${FVS_TEST_PG_URL:-}" ]; then echo "$FVS_TEST_PG_URL"; exit 0; fi
private="${FVS_TEST_PG_PRIVATE:-0}"  # 1: always the private cluster below (fault tests)
if [ "$private" != "1" ] && command -v pg_isready >/dev/null && answers 5432; then
  echo "postgresql://postgres@127.0.0.1:5432/postgres"; exit 0
fi
if [ "$private" != "1" ] && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  for v in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$v" main start >&2 2>&1 || true
  done
  for _ in $(seq 1 20); do answers 5432 && break; sleep 0.5; done
  if answers 5432; then echo "postgresql://postgres@127.0.0.1:5432/postgres"; exit 0; fi
fi
bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [ -z "$bindir" ]; then
  echo "ensure_postgres: installing Debian's postgresql package" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
  bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
fi
root="${FVS_TEST_PG_DIR:-/tmp/fvs-test-pg}"
port=55432
run=(); if [ "$(id -u)" = "0" ]; then
  id fvspg >/dev/null 2>&1 || useradd --system --no-create-home fvspg >&2
  run=(runuser -u fvspg --)
fi
if ! answers "$port"; then
  rm -rf "$root"; mkdir -p "$root"; [ ${#run[@]} -gt 0 ] && chown fvspg "$root"
  "${run[@]}" "$bindir/initdb" -D "$root/data" -U postgres --auth=trust >&2
  "${run[@]}" "$bindir/pg_ctl" -D "$root/data" -l "$root/log" -w \
    -o "-p $port -k $root -c listen_addresses=127.0.0.1" start >&2
fi
answers "$port" || { echo "ensure_postgres: no PostgreSQL server could be started" >&2; exit 1; }
echo "postgresql://postgres@127.0.0.1:$port/postgres"
