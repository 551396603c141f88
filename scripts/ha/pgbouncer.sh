#!/usr/bin/env bash
# PostgreSQL 15 (port 15442) behind PgBouncer in transaction pooling mode (port 15443),
# with a small server pool so that client connections really share server sessions.
#
#   pgbouncer.sh up     prints three URLs: PgBouncer's database "test", PgBouncer's
#                       "test_serializable" (default_transaction_isolation = serializable),
#                       and PostgreSQL itself (direct, for checks behind the pooler's back)
#   pgbouncer.sh down
source "$(dirname "$0")/lib.sh"
D="$RLOCK_HA_DIR/pgbouncer"

up() {
  for p in $PGB_PG_PORT $PGB_PORT; do assert_port_free "$p"; done
  rm -rf "$D"; mkdir -p "$D"; chmod 755 "$RLOCK_HA_DIR"; chown postgres: "$D"
  pg_init_cluster "$D/pg" "$PGB_PG_PORT" "$D"
  as_postgres "$PG_BIN/pg_ctl" -D "$D/pg" -l "$D/pg.log" -w -t 60 start >/dev/null
  psql -h 127.0.0.1 -p "$PGB_PG_PORT" -U postgres -XAtqc 'CREATE DATABASE test'
  # A second database whose transactions are SERIALIZABLE, as on CockroachDB: conflicting
  # statements fail with 40001 instead of waiting for each other.
  psql -h 127.0.0.1 -p "$PGB_PG_PORT" -U postgres -XAtq -c 'CREATE DATABASE test_serializable' \
    -c "ALTER DATABASE test_serializable SET default_transaction_isolation = 'serializable'"
  echo '"postgres" ""' >"$D/userlist.txt"
  cat >"$D/pgbouncer.ini" <<CONF
[databases]
test = host=127.0.0.1 port=$PGB_PG_PORT dbname=test
test_serializable = host=127.0.0.1 port=$PGB_PG_PORT dbname=test_serializable
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $D/userlist.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 400
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = $D/pgbouncer.log
pidfile = $D/pgbouncer.pid
CONF
  chown -R postgres: "$D"
  as_postgres pgbouncer -d "$D/pgbouncer.ini"
  wait_for 20 pg_isready -h 127.0.0.1 -p "$PGB_PORT" -d test -q || die "PgBouncer does not answer"
  log "pgbouncer up: PostgreSQL :$PGB_PG_PORT behind PgBouncer (transaction pooling, 4 server connections) :$PGB_PORT"
  echo "postgres://postgres@127.0.0.1:$PGB_PORT/test"
  echo "postgres://postgres@127.0.0.1:$PGB_PORT/test_serializable"
  echo "postgres://postgres@127.0.0.1:$PGB_PG_PORT/test"
}

down() {
  [ -d "$D" ] || return 0
  stop_pidfile "$D/pgbouncer.pid"
  [ -f "$D/pg/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$D/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$D"
  log "pgbouncer down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
