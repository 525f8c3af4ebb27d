#!/usr/bin/env bash
# Makes the secrets deploy/compose.yaml mounts, in DIR (default deploy/secrets):
#   tls/        server.pem, server.key, ca.pem, health.pem, health.key, receipt.key (what
#               replicas and Envoy's health checks need; no CA or administrator key)
#   keys/       the keys every replica of one deployment shares: the audit chain key (a
#               replica with another key refuses to extend the shared trail) and the
#               citizen-ID HMAC key (pseudonyms must agree across replicas)
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
cp "$dir/pki/server/"{server.pem,server.key,ca.pem,health.pem,health.key,receipt.key} "$dir/tls/"
mkdir -p "$dir/keys"
# The bootstrap data directory made the deployment's keys when pki init registered the
# administrator; every replica gets the same ones.
cp "$dir/bootstrap/keys/"{audit-chain.key,citizen-hmac.key} "$dir/keys/" 2>/dev/null || \
  cp "$dir/bootstrap/keys/"* "$dir/keys/"
[ -f "$dir/template.key" ] || "$fvs" registry new-key --out "$dir/template.key"
if [ ! -f "$dir/pg_password" ]; then
  head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$dir/pg_password"
fi
printf 'postgres:5432:fvs:fvs:%s\n' "$(cat "$dir/pg_password")" > "$dir/pgpass"
echo "secrets in $dir; register the administrator in the shared database once it runs:"
echo "  fvs admin operator add --name admin --role admin --role registry \\"
echo "      --pki-dir $dir/pki --out $dir/pki --store postgresql://fvs:PASSWORD@HOST:5432/fvs"
