#!/bin/bash
# Init follows the official postgres image's contract (env vars, /docker-entrypoint-initdb.d).
set -Eeuo pipefail

# `docker run IMAGE -c fsync=off` / compose `command: [-c, ...]` -> postgres -c ...
if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	export POSTGRES_USER="${POSTGRES_USER:-postgres}"
	export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
	auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
		echo >&2 'error: POSTGRES_PASSWORD is not set (set it, or POSTGRES_HOST_AUTH_METHOD=trust to allow connections without a password)'
		exit 1
	fi

	pwargs=()
	pwfile="$(mktemp)"  # private to this user; keeps the password out of `ps`
	if [ -n "${POSTGRES_PASSWORD:-}" ]; then
		printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
		pwargs=(--pwfile="$pwfile")
	fi
	initdb -D "$PGDATA" --username="$POSTGRES_USER" "${pwargs[@]}" \
		--encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host="$auth" >/dev/null
	rm -f "$pwfile"
	echo "host all all all $auth" >> "$PGDATA/pg_hba.conf"

	# Temporary server on the unix socket only: no TCP client sees it before init is done.
	pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
	export PGUSER="$POSTGRES_USER" PGDATABASE=postgres
	psql_run=(psql -v ON_ERROR_STOP=1 --no-psqlrc -q)
	if [ "$POSTGRES_DB" != postgres ]; then
		"${psql_run[@]}" -v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
	fi
	export PGDATABASE="$POSTGRES_DB"
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
			*.sh)  echo "init: running $f"
			       if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
			*.sql) echo "init: running $f"; "${psql_run[@]}" -f "$f" ;;
			*)     [ -e "$f" ] && echo "init: ignoring $f" ;;
		esac
	done
	unset PGUSER PGDATABASE
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	echo 'init: done'
fi

exec "$@"
