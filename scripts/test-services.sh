#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis on loopback for the integration tests.
#
#   scripts/test-services.sh up     install (if missing) and start both, print the connection strings
#   scripts/test-services.sh env    print the connection strings of running servers as export lines
#   scripts/test-services.sh down   stop exactly what `up` started and remove its data
#
# `up` writes artifacts/test-services.env (KEY='value' lines; `set -a; . artifacts/test-services.env; set +a`).
# Nothing here touches Debian's own clusters or any server it did not start itself.
# TEST_SERVICES_DIR overrides the run folder (default /tmp/rag-test-services).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
run_dir="${TEST_SERVICES_DIR:-/tmp/rag-test-services}"
env_file="$repo/artifacts/test-services.env"
pg_data="$run_dir/pgdata"
pg_sock="$run_dir/pgsock"
pg_log="$run_dir/pg.log"
redis_dir="$run_dir/redis"
redis_pidfile="$run_dir/redis.pid"
state="$run_dir/state"

log() { echo "test-services: $*" >&2; }
die() { log "$*"; exit 1; }

pg_bin() {
  # Highest installed major version; Debian keeps binaries outside PATH.
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
  [[ -n "$dir" && -x "$dir/initdb" ]] && echo "$dir"
}

install_missing() {
  local wanted=()
  [[ -n "$(pg_bin || true)" ]] || wanted+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || wanted+=(redis-server)
  [[ ${#wanted[@]} -eq 0 ]] && return 0
  [[ $(id -u) -eq 0 ]] || die "missing ${wanted[*]}; run as root once to install them"
  log "installing ${wanted[*]}"
  # Installed before any server starts: an upgrade under a running postmaster breaks plpgsql loading.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${wanted[@]}" >/dev/null
}

# Runs a command as the PostgreSQL owner: initdb refuses root.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    su postgres -s /bin/bash -c "$(printf '%q ' "$@")"
  else
    "$@"
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$(( 20000 + RANDOM % 30000 ))
    port_in_use "$port" || { echo "$port"; return 0; }
  done
  die "no free port found"
}

pg_running() { [[ -f "$pg_data/postmaster.pid" ]] && as_pg "$(pg_bin)/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; }

redis_running() {
  [[ -f "$redis_pidfile" ]] || return 1
  local pid; pid="$(cat "$redis_pidfile")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null
}

write_env() {
  # shellcheck disable=SC1090
  . "$state"
  mkdir -p "$(dirname "$env_file")"
  cat >"$env_file" <<EOF
ConnectionStrings__Postgres='Host=127.0.0.1;Port=$PG_PORT;Database=rag_test;Username=postgres'
ConnectionStrings__Redis='127.0.0.1:$REDIS_PORT'
EOF
}

print_env() {
  [[ -f "$env_file" ]] || die "not running; start them with scripts/test-services.sh up"
  sed 's/^/export /' "$env_file"
}

up() {
  install_missing
  local bin; bin="$(pg_bin)" || die "PostgreSQL binaries not found"
  mkdir -p "$run_dir"
  chmod 755 "$run_dir"

  if [[ -f "$state" ]] && pg_running && redis_running; then
    log "already running"
    write_env
    print_env
    return 0
  fi
  [[ -f "$state" ]] && { log "stale state, restarting"; down_quiet; mkdir -p "$run_dir"; chmod 755 "$run_dir"; }

  local pg_port redis_port
  pg_port="$(free_port)"
  redis_port="$(free_port)"
  while [[ "$redis_port" == "$pg_port" ]]; do redis_port="$(free_port)"; done

  mkdir -p "$pg_data" "$pg_sock" "$redis_dir"
  if [[ $(id -u) -eq 0 ]]; then chown postgres:postgres "$pg_data" "$pg_sock"; touch "$pg_log"; chown postgres:postgres "$pg_log"; fi
  chmod 700 "$pg_data"
  as_pg "$bin/initdb" -D "$pg_data" -A trust -U postgres -E UTF8 --no-sync >"$run_dir/initdb.log" 2>&1 \
    || { cat "$run_dir/initdb.log" >&2; die "initdb failed"; }
  # Throwaway server: durability settings off for speed; nothing here outlives the test run.
  as_pg "$bin/pg_ctl" -D "$pg_data" -l "$pg_log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null || { tail -n 30 "$pg_log" >&2; die "PostgreSQL did not start"; }

  redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
    --dir "$redis_dir" --daemonize yes --pidfile "$redis_pidfile" --logfile "$run_dir/redis.log" >/dev/null

  printf 'PG_PORT=%s\nREDIS_PORT=%s\n' "$pg_port" "$redis_port" >"$state"

  local ok=0
  for _ in $(seq 1 100); do
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG; then ok=1; break; fi
    sleep 0.2
  done
  [[ $ok -eq 1 ]] || die "servers did not accept connections (see $run_dir/*.log)"

  "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtAc \
    "SELECT 1 FROM pg_database WHERE datname = 'rag_test'" | grep -q 1 \
    || "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qc "CREATE DATABASE rag_test" >/dev/null

  write_env
  log "postgres 127.0.0.1:$pg_port (data $pg_data), redis 127.0.0.1:$redis_port; env in $env_file"
  print_env
}

down_quiet() {
  local bin; bin="$(pg_bin || true)"
  if [[ -n "$bin" && -f "$pg_data/postmaster.pid" ]]; then
    as_pg "$bin/pg_ctl" -D "$pg_data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
  fi
  if redis_running; then
    local pid; pid="$(cat "$redis_pidfile")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$run_dir"
  rm -f "$env_file"
}

down() {
  down_quiet
  log "stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) print_env ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
