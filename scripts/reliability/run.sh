#!/usr/bin/env bash
# Runs the reliability suite (test/reliability, jest project "reliability").
#   run.sh fast   everything but the database restarts and the soak, reduced sizes (CI)
#   run.sh full   everything at full size, with private PostgreSQL/MariaDB instances for
#                 R10 and R15; rewrites RELIABILITY.md from the figures
# Databases come from RLOCK_TEST_POSTGRES_URL / RLOCK_TEST_MYSQL_URL (SQLite always runs).
# Extra arguments go to jest (for example --testPathPatterns r01).
set -uo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-fast}
shift || true
if [ "$mode" = full ]; then export RLOCK_RELIABILITY_FULL=1; else unset RLOCK_RELIABILITY_FULL; fi
npx jest --selectProjects reliability --runInBand "$@"
status=$?
if [ "$mode" = full ]; then
  node scripts/reliability/report.js --write
else
  node scripts/reliability/report.js
fi
exit $status
