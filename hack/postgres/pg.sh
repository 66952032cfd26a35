#!/usr/bin/env bash
# A throw-away PostgreSQL for development and integration tests.
#
#   hack/postgres/pg.sh start DIR   initdb DIR (once), start it on 127.0.0.1:<free port>, write DIR/env
#   hack/postgres/pg.sh stop DIR    stop it (fast shutdown; waits until the postmaster is gone)
#   hack/postgres/pg.sh env DIR     print DIR/env (FAISS_POSTGRES_DSN=..., PG* variables)
#
# The server listens on 127.0.0.1 only, keeps its unix socket in DIR, runs with fsync off
# (test data only) and authenticates with scram-sha-256 as user "faiss" with a random
# password. initdb refuses to run as root, so as root the server runs as the "postgres"
# user (or "faiss-pg", created when missing); DIR is chowned to it.
# When initdb/pg_ctl are not installed and we are root, the Debian package is installed.
set -euo pipefail

usage() { echo "usage: $0 start|stop|env DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2
data="$dir/data"
envfile="$dir/env"
log="$dir/postgres.log"

find_bindir() {
  local candidate
  if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$candidate/pg_ctl" && -x "$candidate/initdb" ]]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

install_postgres() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "pg.sh: initdb/pg_ctl not found; install PostgreSQL (Debian: apt-get install postgresql)" >&2
    exit 1
  fi
  echo "pg.sh: installing PostgreSQL with apt-get" >&2
  # The Debian package would otherwise create and start a "main" cluster on port 5432.
  mkdir -p /etc/postgresql-common
  [[ -e /etc/postgresql-common/createcluster.conf ]] || echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2
}

bindir=$(find_bindir || true)
if [[ -z "$bindir" ]]; then
  install_postgres
  bindir=$(find_bindir) || { echo "pg.sh: PostgreSQL still not found after install" >&2; exit 1; }
fi

run_user=""
if [[ $(id -u) -eq 0 ]]; then
  if id postgres >/dev/null 2>&1; then
    run_user=postgres
  else
    id faiss-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin faiss-pg
    run_user=faiss-pg
  fi
fi

as_owner() {  # run a command as the server's owner
  if [[ -n "$run_user" ]]; then
    runuser -u "$run_user" -- "$@"
  else
    "$@"
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
  local port
  for _ in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 40000 ))
    if ! port_in_use "$port"; then echo "$port"; return 0; fi
  done
  echo "pg.sh: no free port found" >&2
  return 1
}

start() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  data="$dir/data"; envfile="$dir/env"; log="$dir/postgres.log"
  chmod 700 "$dir"
  [[ -n "$run_user" ]] && chown "$run_user" "$dir"
  if ! as_owner test -w "$dir"; then
    echo "pg.sh: $run_user cannot write $dir (a parent directory is not searchable?)" >&2
    exit 1
  fi
  if [[ ! -f "$data/PG_VERSION" ]]; then
    local password
    password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    (umask 077; printf '%s\n' "$password" >"$dir/password")
    [[ -n "$run_user" ]] && chown "$run_user" "$dir/password"
    as_owner "$bindir/initdb" -D "$data" -U faiss --pwfile="$dir/password" --auth=scram-sha-256 \
      --encoding=UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  local password port started=""
  password=$(cat "$dir/password")
  for _ in 1 2 3 4 5; do
    port=$(pick_port)
    if as_owner "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 start -o \
        "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$dir' -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB -c max_connections=30" >/dev/null; then
      started=1
      break
    fi
    # a port race: another process took the port between the probe and the bind
    as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1 && { started=1; break; }
  done
  [[ -n "$started" ]] || { echo "pg.sh: PostgreSQL did not start; last log lines:" >&2; tail -n 20 "$log" >&2; exit 1; }
  PGPASSWORD="$password" "$bindir/psql" -h "$dir" -p "$port" -U faiss -d postgres -qAt \
    -c "SELECT 1 FROM pg_database WHERE datname = 'faiss'" | grep -q 1 \
    || PGPASSWORD="$password" "$bindir/psql" -h "$dir" -p "$port" -U faiss -d postgres -q -c "CREATE DATABASE faiss" >/dev/null
  (umask 077; cat >"$envfile" <<ENV
FAISS_POSTGRES_DSN=postgresql://faiss:$password@127.0.0.1:$port/faiss
PGHOST=127.0.0.1
PGPORT=$port
PGUSER=faiss
PGPASSWORD=$password
PGDATABASE=faiss
PG_BINDIR=$bindir
ENV
)
  cat "$envfile"
}

stop() {
  if [[ -f "$data/postmaster.pid" ]]; then
    as_owner "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
  fi
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  env) cat "$envfile" ;;
  *) usage ;;
esac
