#!/usr/bin/env bash
# Makes the secrets deploy/compose.yaml mounts, in DIR (default deploy/secrets):
#   tls/        server.pem, server.key, ca.pem, health.pem, health.key (what replicas and
#               Envoy's health checks need; no CA or administrator key)
#   pki/        the CA and the administrator's certificate and key: keep OFFLINE
#   template.key  the template key every replica shares (fvs registry new-key)
#   pg_password, pgpass  the database password (PostgreSQL, and libpq's passfile for FVS)
# Usage: deploy/prepare.sh [DIR] [PUBLIC_HOST ...]
set -euo pipefail
dir="${1:-$(dirname "$0")/secrets}"; shift || true
fvs="${FVS:-fvs}"
umask 077
mkdir -p "$dir/tls" "$dir/pki"
hosts=(--host fvs-1 --host fvs-2); for h in "$@"; do hosts+=(--host "$h"); done
"$fvs" pki init --dir "$dir/pki" "${hosts[@]}" --data-dir "$dir/bootstrap"
cp "$dir/pki/"{server.pem,server.key,ca.pem,health.pem,health.key} "$dir/tls/"
[ -f "$dir/template.key" ] || "$fvs" registry new-key --out "$dir/template.key"
if [ ! -f "$dir/pg_password" ]; then
  head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$dir/pg_password"
fi
printf 'postgres:5432:fvs:fvs:%s\n' "$(cat "$dir/pg_password")" > "$dir/pgpass"
echo "secrets in $dir; register the administrator in the shared database once it runs:"
echo "  fvs admin operator add --name admin --role admin --role registry \\"
echo "      --pki-dir $dir/pki --out $dir/pki --store postgresql://fvs:PASSWORD@HOST:5432/fvs"
