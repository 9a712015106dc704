#!/usr/bin/env bash
# The daily check of benches/run, in bash with the usual CLIs: the same
# checks as benches/daily_check.rhai. Targets from DATABASE_URL,
# REDIS_URL and PROMETHEUS_URL (what `opsh sandbox` exports).
#
#   benches/daily_check.sh BACKUP HEALTH_URL
set -euo pipefail
backup=$1 health=$2
conn=$(psql "$DATABASE_URL" -Atc "select count(*) || '/' || current_setting('max_connections') from pg_stat_activity")
mem=$(redis-cli -u "$REDIS_URL" INFO | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }')
up=$(curl -sf "$PROMETHEUS_URL/api/v1/query" --data-urlencode 'query=up' | jq '.data.result | length')
curl -sf "$PROMETHEUS_URL/api/v1/query" --data-urlencode 'query=count(up)' | jq -e '.status == "success"' >/dev/null
status=$(curl -s -o /dev/null -w '%{http_code}' "$health")
(cd "$(dirname "$backup")" && sha256sum --quiet -c "$(basename "$backup").sha256")
pg_restore --list "$backup" >/dev/null
rows=$(pg_restore -f - "$backup" | awk '/^COPY .* FROM stdin;$/ { c = 1; next } c && /^\\\.$/ { c = 0; next } c { n++ } END { print n + 0 }')
[ "$status" = 200 ] || { echo "unhealthy" >&2; exit 1; }
echo "pg $conn, redis $mem bytes, $up up series, health $status, backup $rows rows"
