#!/usr/bin/env bash
# Private PostgreSQL / MariaDB instances for the reliability suite's restart tests (R10,
# R15), started from the installed binaries in a temporary directory on their own port.
# The machine's shared servers (5432, 3306) are never touched.
#
#   private-db.sh start   postgres|mariadb DIR PORT WATCH_PID   prints the URL
#   private-db.sh restart postgres|mariadb DIR PORT fast|crash [DOWN_SECONDS]
#   private-db.sh stop    postgres|mariadb DIR PORT
#
# `start` leaves a watchdog behind that stops the instance and deletes DIR once
# WATCH_PID (the test process) has exited, or after 60 minutes at most.
set -euo pipefail
action=$1 kind=$2 dir=$3 port=$4
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

pg() { runuser -u postgres -- "$PG_BIN/$@"; }

pg_start() {
  pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" start >/dev/null
}

maria_start() {
  /usr/sbin/mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/mysql.sock" --port="$port" \
    --bind-address=127.0.0.1 --user=root --pid-file="$dir/mariadbd.pid" --log-error="$dir/error.log" \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=16M --max-connections=300 --skip-name-resolve \
    --innodb-flush-log-at-trx-commit=2 </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 120); do
    mysqladmin --socket="$dir/mysql.sock" -uroot ping >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  echo "MariaDB did not start: $(tail -5 "$dir/error.log")" >&2
  return 1
}

maria_stop() {
  local signal=$1 pid
  pid=$(cat "$dir/mariadbd.pid" 2>/dev/null || true)
  [ -n "$pid" ] || return 0
  kill "-$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 1 240); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null || true
}

stop_instance() {
  if [ "$kind" = postgres ]; then
    pg pg_ctl -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  else
    maria_stop TERM
  fi
}

case "$action" in
  start)
    watch_pid=$5
    mkdir -p "$dir"
    if [ "$kind" = postgres ]; then
      chown postgres "$dir"
      pg initdb -D "$dir/data" -U postgres --auth=trust >/dev/null
      pg_start
      runuser -u postgres -- psql -h 127.0.0.1 -p "$port" -U postgres -qc 'CREATE DATABASE test' >/dev/null
      url="postgres://postgres@127.0.0.1:$port/test"
    else
      mariadb-install-db --no-defaults --datadir="$dir/data" --user=root --auth-root-authentication-method=normal \
        --skip-test-db >/dev/null 2>&1
      maria_start
      mariadb --socket="$dir/mysql.sock" -uroot -e \
        "CREATE DATABASE test; CREATE USER 'rel'@'127.0.0.1'; GRANT ALL ON *.* TO 'rel'@'127.0.0.1'"
      url="mysql://rel@127.0.0.1:$port/test"
    fi
    # Watchdog: never outlive the test process.
    (
      trap '' HUP
      end=$((SECONDS + 3600))
      while kill -0 "$watch_pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 2; done
      "$0" stop "$kind" "$dir" "$port"
    ) </dev/null >/dev/null 2>&1 &
    echo "$url"
    ;;
  restart)
    mode=${5:-fast} down=${6:-1}
    if [ "$kind" = postgres ]; then
      pg pg_ctl -D "$dir/data" -m "$([ "$mode" = crash ] && echo immediate || echo fast)" -w stop >/dev/null
      sleep "$down"
      pg_start
    else
      maria_stop "$([ "$mode" = crash ] && echo KILL || echo TERM)"
      sleep "$down"
      maria_start
    fi
    ;;
  stop)
    stop_instance
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|restart|stop postgres|mariadb DIR PORT ..." >&2
    exit 2
    ;;
esac
