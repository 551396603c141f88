#!/usr/bin/env bash
# Installs (idempotently) the Debian packages the HA topologies need: PostgreSQL 15,
# MariaDB with Galera 4 (and rsync for its state transfers), HAProxy and PgBouncer.
# Installing them never starts their services here (the tests start private instances).
set -euo pipefail
packages=(postgresql-15 mariadb-server galera-4 rsync haproxy pgbouncer)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[ha] packages present: ${packages[*]}"
  exit 0
fi
echo "[ha] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Keep the packages' own services from starting on install (they would take ports).
policy=/usr/sbin/policy-rc.d
had_policy=0
[ -e "$policy" ] && had_policy=1
if [ "$had_policy" = 0 ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
fi
status=0
apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
[ "$had_policy" = 0 ] && rm -f "$policy"
exit $status
