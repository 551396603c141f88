#!/usr/bin/env bash
# PostgreSQL 15 primary + synchronous standby (streaming replication, synchronous_commit
# = on, the standby named in synchronous_standby_names) behind HAProxy on 127.0.0.1:15434.
#
#   pg-sync.sh up               two clusters (ports 15432/15433) and the proxy; prints the URL
#   pg-sync.sh failover         stop the primary hard (immediate), promote the standby, move the proxy
#                               (= stop-primary, then promote)
#   pg-sync.sh rebuild-standby  re-create the old primary as a standby of the new one (pg_basebackup)
#   pg-sync.sh async-standby    degrade: replication asynchronous and the standby disconnected
#   pg-sync.sh status | down
#
# HAProxy does what a Patroni/repmgr setup does through its REST check: it sends new
# connections to the node marked primary; here the script moves it through the runtime API.
source "$(dirname "$0")/lib.sh"
D="$RLOCK_HA_DIR/pgsync"
STATE="$D/primary" # which data directory (a or b) is the primary now

port_of() { [ "$1" = a ] && echo "$PGSYNC_A_PORT" || echo "$PGSYNC_B_PORT"; }
other() { [ "$1" = a ] && echo b || echo a; }
psql_on() { local port=$1; shift; psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -XAtq "$@"; }
ctl() { as_postgres "$PG_BIN/pg_ctl" "$@"; }

# Makes $2 a synchronous standby (application_name standby_$2) of the primary $1.
make_standby() {
  local primary=$1 node=$2
  rm -rf "$D/$node"
  as_postgres "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$(port_of "$primary")" -U postgres \
    -D "$D/$node" -R --wal-method=stream --checkpoint=fast >/dev/null
  cat >>"$D/$node/postgresql.conf" <<CONF
port = $(port_of "$node")
# A promoted standby runs alone until a new standby is attached: it must not wait for one.
synchronous_standby_names = ''
CONF
  echo "primary_conninfo = 'host=127.0.0.1 port=$(port_of "$primary") user=postgres application_name=standby_$node'" \
    >>"$D/$node/postgresql.auto.conf"
  ctl -D "$D/$node" -l "$D/$node.log" -w -t 60 start >/dev/null
  psql_on "$(port_of "$primary")" -c "ALTER SYSTEM SET synchronous_standby_names = 'standby_$node'" \
    -c "SELECT pg_reload_conf()" >/dev/null
  wait_for 60 bash -c "psql -h 127.0.0.1 -p $(port_of "$primary") -U postgres -XAtqc \
    \"SELECT 1 FROM pg_stat_replication WHERE application_name = 'standby_$node' AND sync_state = 'sync'\" | grep -q 1" \
    || die "standby $node did not become synchronous"
}

proxy_config() {
  cat >"$D/haproxy.cfg" <<CONF
global
  daemon
  maxconn 512
  stats socket ipv4@127.0.0.1:$PGSYNC_ADMIN_PORT level admin
defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  # A connection refused by the stopped primary is tried again (every second) on whichever
  # server is up by then, instead of on the dead one only.
  retries 3
  option redispatch 1
  default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
listen pg
  bind 127.0.0.1:$PGSYNC_PROXY_PORT
  option pgsql-check user postgres
  server a 127.0.0.1:$PGSYNC_A_PORT check
  server b 127.0.0.1:$PGSYNC_B_PORT check disabled
CONF
}

up() {
  for p in $PGSYNC_A_PORT $PGSYNC_B_PORT $PGSYNC_PROXY_PORT $PGSYNC_ADMIN_PORT; do assert_port_free "$p"; done
  rm -rf "$D"; mkdir -p "$D"; chmod 755 "$RLOCK_HA_DIR"; chown postgres: "$D"
  pg_init_cluster "$D/a" "$PGSYNC_A_PORT" "$D"
  echo "synchronous_commit = on" >>"$D/a/postgresql.conf"
  ctl -D "$D/a" -l "$D/a.log" -w -t 60 start >/dev/null
  psql_on "$PGSYNC_A_PORT" -c 'CREATE DATABASE test' >/dev/null
  echo a >"$STATE"
  make_standby a b
  proxy_config
  haproxy -f "$D/haproxy.cfg" -p "$D/haproxy.pid"
  wait_for 20 pg_isready -h 127.0.0.1 -p "$PGSYNC_PROXY_PORT" -q || die "HAProxy does not answer"
  log "pg-sync up: primary a:$PGSYNC_A_PORT, synchronous standby b:$PGSYNC_B_PORT, proxy :$PGSYNC_PROXY_PORT"
  echo "postgres://postgres@127.0.0.1:$PGSYNC_PROXY_PORT/test"
}

stop_primary() {
  local old; old=$(cat "$STATE")
  ctl -D "$D/$old" -m immediate stop >/dev/null
  log "primary $old stopped (immediate)"
}

promote() {
  local old new
  old=$(cat "$STATE"); new=$(other "$old")
  ctl -D "$D/$new" -w -t 60 promote >/dev/null
  log "standby $new promoted"
  haproxy_cmd "$PGSYNC_ADMIN_PORT" "enable server pg/$new" >/dev/null
  haproxy_cmd "$PGSYNC_ADMIN_PORT" "disable server pg/$old" >/dev/null
  haproxy_cmd "$PGSYNC_ADMIN_PORT" "shutdown sessions server pg/$old" >/dev/null
  echo "$new" >"$STATE"
  log "proxy moved to $new"
}

failover() {
  stop_primary
  promote
}

rebuild_standby() {
  local primary node
  primary=$(cat "$STATE"); node=$(other "$primary")
  ctl -D "$D/$node" -m immediate stop >/dev/null 2>&1 || true
  make_standby "$primary" "$node"
  log "$node is a synchronous standby of $primary again"
}

async_standby() {
  local primary node
  primary=$(cat "$STATE"); node=$(other "$primary")
  psql_on "$(port_of "$primary")" -c "ALTER SYSTEM SET synchronous_standby_names = ''" -c "SELECT pg_reload_conf()" >/dev/null
  psql_on "$(port_of "$node")" -c "ALTER SYSTEM SET primary_conninfo = ''" -c "SELECT pg_reload_conf()" >/dev/null
  wait_for 20 bash -c "psql -h 127.0.0.1 -p $(port_of "$primary") -U postgres -XAtqc 'SELECT count(*) FROM pg_stat_replication' | grep -qx 0" \
    || die "standby $node still streams"
  log "replication from $primary to $node is off (asynchronous, disconnected)"
}

status() {
  local primary; primary=$(cat "$STATE")
  echo "primary=$primary"
  psql_on "$(port_of "$primary")" -c 'SELECT application_name, state, sync_state FROM pg_stat_replication' || true
  haproxy_cmd "$PGSYNC_ADMIN_PORT" "show servers state pg" | tail -n +2 || true
}

down() {
  [ -d "$D" ] || return 0
  stop_pidfile "$D/haproxy.pid"
  for node in a b; do
    [ -f "$D/$node/postmaster.pid" ] && ctl -D "$D/$node" -m immediate stop >/dev/null 2>&1 || true
  done
  rm -rf "$D"
  log "pg-sync down"
}

case "${1:-}" in
  up) up ;;
  failover) failover ;;
  stop-primary) stop_primary ;;
  promote) promote ;;
  rebuild-standby) rebuild_standby ;;
  async-standby) async_standby ;;
  status) status ;;
  down) down ;;
  *) echo "usage: $0 up|failover|stop-primary|promote|rebuild-standby|async-standby|status|down" >&2; exit 2 ;;
esac
