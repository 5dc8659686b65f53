#!/bin/sh
# Debian's PostgreSQL server for the tests of the PostgreSQL controller (tests/process/test_postgres*.py),
# installed when missing and possible. The tests start throwaway servers of their own (tests/support/
# postgres.py: initdb in a temporary directory, a free port) and never use the package's own cluster; they
# skip, saying why, when there is no initdb. Waits for the dpkg lock another installation may hold.
for d in /usr/lib/postgresql/*/bin; do
	if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then exit 0; fi
done
if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null 2>&1
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
		postgresql >/dev/null || \
		echo "postgresql could not be installed: the PostgreSQL cluster tests will be skipped" >&2
else
	echo "no PostgreSQL server (apt-get install postgresql): the PostgreSQL cluster tests will be skipped" >&2
fi
exit 0
