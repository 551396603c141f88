#!/usr/bin/env bash
# `npm run test:ha`: installs what the topologies need, then for each topology sets it up,
# runs its suite (jest project "ha") and tears it down. Whatever happens (failure, timeout,
# Ctrl-C), everything it started is stopped on exit. Pick topologies with
# RLOCK_HA_TOPOLOGIES="pg-sync galera pgbouncer" (the default: all three).
set -uo pipefail
cd "$(dirname "$0")/../.."
HA=scripts/ha
export RLOCK_HA_DIR="${RLOCK_HA_DIR:-/tmp/rlock-ha}"
export RLOCK_HA_FIGURES_DIR="${RLOCK_HA_FIGURES_DIR:-${RLOCK_HA_DIR}-figures}"
export RLOCK_HA_REQUIRE=1
read -r -a topologies <<<"${RLOCK_HA_TOPOLOGIES:-pg-sync galera pgbouncer}"
child=""

teardown() {
  [ -n "$child" ] && kill -TERM "$child" 2>/dev/null && wait "$child" 2>/dev/null
  for t in pg-sync galera pgbouncer; do bash "$HA/$t.sh" down || true; done
  rmdir "$RLOCK_HA_DIR" 2>/dev/null || true
}
trap teardown EXIT
trap 'echo "[ha] interrupted" >&2; exit 130' INT TERM

# Runs a command in the background and waits for it, so that a signal is handled at once.
run() {
  "$@" &
  child=$!
  wait "$child"
  local rc=$?
  child=""
  return $rc
}

started=$SECONDS
bash "$HA/setup.sh" || exit 1
rm -rf "$RLOCK_HA_FIGURES_DIR"
passed=()
failed=()
for t in "${topologies[@]}"; do
  t0=$SECONDS
  echo "== $t: set up"
  out="$RLOCK_HA_DIR.$t.url"
  if ! run timeout 240 bash "$HA/$t.sh" up >"$out"; then
    failed+=("$t")
    bash "$HA/$t.sh" down
    continue
  fi
  case "$t" in
    pg-sync) export RLOCK_HA_PG_SYNC_URL; RLOCK_HA_PG_SYNC_URL=$(cat "$out"); spec=test/ha/pg-failover.spec.ts ;;
    galera) export RLOCK_HA_GALERA_URLS; RLOCK_HA_GALERA_URLS=$(paste -sd, "$out"); spec=test/ha/galera.spec.ts ;;
    pgbouncer)
      export RLOCK_HA_PGBOUNCER_URL RLOCK_HA_PG_SERIALIZABLE_URL RLOCK_HA_PG_DIRECT_URL
      RLOCK_HA_PGBOUNCER_URL=$(sed -n 1p "$out")
      RLOCK_HA_PG_SERIALIZABLE_URL=$(sed -n 2p "$out")
      RLOCK_HA_PG_DIRECT_URL=$(sed -n 3p "$out")
      spec=test/ha/pgbouncer.spec.ts
      ;;
    *) echo "unknown topology $t" >&2; exit 2 ;;
  esac
  rm -f "$out"
  echo "== $t: test"
  if run timeout --kill-after=10 270 npx jest --selectProjects ha --forceExit --runTestsByPath "$spec"; then
    passed+=("$t")
  else
    failed+=("$t")
  fi
  echo "== $t: tear down"
  bash "$HA/$t.sh" down
  echo "== $t: $((SECONDS - t0)) s"
done

echo "== figures ($RLOCK_HA_FIGURES_DIR)"
for f in "$RLOCK_HA_FIGURES_DIR"/*.json; do [ -f "$f" ] && { echo "--- $(basename "$f" .json)"; cat "$f"; }; done
echo "== HA topologies passed: ${passed[*]:-none}; failed: ${failed[*]:-none}; total $((SECONDS - started)) s"
echo "ha: ${#passed[@]} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
