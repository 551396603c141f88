#!/usr/bin/env bash
# The shared test databases of this machine, as the reliability suite expects them.
export RLOCK_TEST_POSTGRES_URL="${RLOCK_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export RLOCK_TEST_MYSQL_URL="${RLOCK_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
