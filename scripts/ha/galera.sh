#!/usr/bin/env bash
# A three-node MariaDB Galera cluster (galera-4) on loopback: node i listens for SQL on
# 1330(5+i) (13306, 13307, 13308) and for Galera on 14i67 (group), 14i68 (IST), 14i69 (SST).
# Private datadirs, sockets and config files: the machine's MariaDB (3306) is never touched.
#
#   galera.sh up         bootstrap node 1, join nodes 2 and 3 (rsync SST); prints the URLs
#   galera.sh kill N     SIGKILL node N
#   galera.sh start N    start node N again (it rejoins through IST/SST) and wait until Synced
#   galera.sh status | down
source "$(dirname "$0")/lib.sh"
D="$RLOCK_HA_DIR/galera"
NODES=(1 2 3)

cnf() { echo "$D/n$1.cnf"; }
sql() { local n=$1; shift; mariadb --defaults-file=/dev/null --protocol=socket -S "$D/n$n.sock" -uroot -N -B "$@"; }
wsrep() { sql "$1" -e "SHOW GLOBAL STATUS LIKE '$2'" 2>/dev/null | awk '{print $2}'; }
synced() { [ "$(wsrep "$1" wsrep_local_state_comment)" = Synced ] && [ "$(wsrep "$1" wsrep_ready)" = ON ]; }

write_cnf() {
  local n=$1 g peers=""
  g=$(galera_gcomm_port "$n")
  for m in "${NODES[@]}"; do peers+="${peers:+,}127.0.0.1:$(galera_gcomm_port "$m")"; done
  cat >"$(cnf "$n")" <<CONF
[mariadbd]
user = mysql
datadir = $D/n$n
socket = $D/n$n.sock
pid-file = $D/n$n.pid
log-error = $D/n$n.err
port = $(galera_sql_port "$n")
bind-address = 127.0.0.1
skip-name-resolve
max_connections = 200
innodb_buffer_pool_size = 64M
innodb_log_file_size = 32M
innodb_flush_log_at_trx_commit = 2
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
wsrep_on = ON
wsrep_provider = /usr/lib/galera/libgalera_smm.so
wsrep_cluster_name = rlock_ha
wsrep_cluster_address = gcomm://$peers
wsrep_node_name = n$n
wsrep_node_address = 127.0.0.1
wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:$g;ist.recv_addr=127.0.0.1:$((g + 1));gcache.size=64M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S"
wsrep_sst_method = rsync
wsrep_sst_receive_address = 127.0.0.1:$((g + 2))
wsrep_slave_threads = 2
CONF
}

start_node() {
  local n=$1; shift
  mkdir -p "$D/n$n"; chown -R mysql: "$D"
  setsid /usr/sbin/mariadbd --defaults-file="$(cnf "$n")" "$@" </dev/null >>"$D/n$n.out" 2>&1 &
  wait_for 120 synced "$n" || { tail -n 30 "$D/n$n.err" >&2; die "node $n did not reach Synced"; }
  log "node $n synced (cluster size $(wsrep "$n" wsrep_cluster_size))"
}

up() {
  for n in "${NODES[@]}"; do
    g=$(galera_gcomm_port "$n")
    for p in "$(galera_sql_port "$n")" "$g" $((g + 1)) $((g + 2)); do assert_port_free "$p"; done
  done
  rm -rf "$D"; mkdir -p "$D"; chmod 755 "$RLOCK_HA_DIR"
  for n in "${NODES[@]}"; do write_cnf "$n"; done
  chown -R mysql: "$D"
  mariadb-install-db --defaults-file="$(cnf 1)" --auth-root-authentication-method=normal \
    --skip-test-db >"$D/install.log" 2>&1 || { cat "$D/install.log" >&2; die "mariadb-install-db failed"; }
  start_node 1 --wsrep-new-cluster
  sql 1 -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; CREATE DATABASE IF NOT EXISTS test;"
  start_node 2
  start_node 3
  log "galera up: 3 nodes, SQL ports $(galera_sql_port 1) $(galera_sql_port 2) $(galera_sql_port 3)"
  for n in "${NODES[@]}"; do printf 'mysql://root@127.0.0.1:%s/test\n' "$(galera_sql_port "$n")"; done
}

kill_node() {
  local pid; pid=$(cat "$D/n$1.pid")
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  log "node $1 killed (SIGKILL)"
}

status() {
  for n in "${NODES[@]}"; do
    printf 'n%s state=%s size=%s ready=%s\n' "$n" "$(wsrep "$n" wsrep_local_state_comment)" \
      "$(wsrep "$n" wsrep_cluster_size)" "$(wsrep "$n" wsrep_ready)"
  done
}

down() {
  [ -d "$D" ] || return 0
  for n in "${NODES[@]}"; do stop_pidfile "$D/n$n.pid"; done
  rm -rf "$D"
  log "galera down"
}

case "${1:-}" in
  up) up ;;
  kill) kill_node "$2" ;;
  start) start_node "$2" ;;
  status) status ;;
  down) down ;;
  *) echo "usage: $0 up|kill N|start N|status|down" >&2; exit 2 ;;
esac
