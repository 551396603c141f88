# Shared helpers of the scripts/ha topologies (sourced, not run). Everything they start
# listens on 127.0.0.1 on ports apart from the machine's own PostgreSQL (5432) and
# MariaDB (3306), lives under $RLOCK_HA_DIR, and is stopped by the topology's `down`.
set -euo pipefail

RLOCK_HA_DIR="${RLOCK_HA_DIR:-/tmp/rlock-ha}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

# PostgreSQL primary + synchronous standby behind HAProxy.
PGSYNC_A_PORT=15432
PGSYNC_B_PORT=15433
PGSYNC_PROXY_PORT=15434
PGSYNC_ADMIN_PORT=15435
# PostgreSQL behind PgBouncer (transaction pooling).
PGB_PG_PORT=15442
PGB_PORT=15443
# MariaDB Galera: node i uses SQL port 1330(5+i) and Galera ports 14(5+i)67/68/69.
galera_sql_port() { echo $((13305 + $1)); }
galera_gcomm_port() { echo $((14467 + 100 * $1)); }

log() { printf '[ha %s] %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Runs a command as the postgres user (PostgreSQL refuses to run as root).
as_postgres() { runuser -u postgres -- "$@"; }

# Waits until `cmd…` succeeds, at most $1 seconds.
wait_for() {
  local seconds=$1; shift
  local end=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.2
  done
}

# Refuses to go on if a port we are about to use is taken (never reuse someone's service).
assert_port_free() {
  if ss -ltn "sport = :$1" | grep -q LISTEN; then die "port $1 is already in use"; fi
}

# Initialises a PostgreSQL cluster in $1 listening on port $2 with its socket in $3.
pg_init_cluster() {
  local dir=$1 port=$2 sockdir=$3
  as_postgres "$PG_BIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
  cat >>"$dir/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sockdir'
max_connections = 60
shared_buffers = 32MB
wal_level = replica
max_wal_senders = 4
wal_keep_size = 64MB
hot_standby = on
logging_collector = off
CONF
}

# Sends one command to an HAProxy admin socket on 127.0.0.1:$1 and prints the answer.
haproxy_cmd() {
  local port=$1; shift
  exec 9<>"/dev/tcp/127.0.0.1/$port"
  printf '%s\n' "$*" >&9
  timeout 2 cat <&9 || true
  exec 9<&-
}

# Stops a process recorded in a pid file (TERM, then KILL), if it runs.
stop_pidfile() {
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(head -n1 "$file" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}
