#!/usr/bin/env bash
# A local production-shaped cluster: PostgreSQL + Redis on loopback with private data folders, 3 silos and
# 2 frontends in cluster mode. `up` starts it (building first), `down` stops exactly what `up` started,
# `status` reports. `up` and `status` print one line per process:
#   silo <name> <pid> <silo-port> <gateway-port>
#   frontend <pid> <url>
#   operator-key-file <path>
# Environment: RAG_DEV_DIR (state folder, default artifacts/dev-cluster), Rag__OperatorKey (operator key;
# generated into the state folder when unset), RAG_DEV_PG_PORT (55432), RAG_DEV_REDIS_PORT (56379),
# RAG_DEV_SILO_BASE (11111), RAG_DEV_GATEWAY_BASE (30000), RAG_DEV_HTTP_BASE (8080), RAG_DEV_SILOS (3),
# RAG_DEV_FRONTENDS (2).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
state="${RAG_DEV_DIR:-$repo/artifacts/dev-cluster}"
pg_port="${RAG_DEV_PG_PORT:-55432}"
redis_port="${RAG_DEV_REDIS_PORT:-56379}"
silo_base="${RAG_DEV_SILO_BASE:-11111}"
gateway_base="${RAG_DEV_GATEWAY_BASE:-30000}"
http_base="${RAG_DEV_HTTP_BASE:-8080}"
silos="${RAG_DEV_SILOS:-3}"
frontends="${RAG_DEV_FRONTENDS:-2}"
pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_servers() {
  if [ -z "$(pgbin)" ] || ! command -v redis-server >/dev/null; then
    echo "installing postgresql and redis-server" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >&2
  fi
}

start_postgres() {
  local bin; bin="$(pgbin)"
  mkdir -p "$state/pg"
  chown postgres:postgres "$state/pg"
  if [ ! -f "$state/pg/data/PG_VERSION" ]; then
    su postgres -c "$bin/initdb -D '$state/pg/data' -A trust -U postgres" >/dev/null
  fi
  if ! su postgres -c "$bin/pg_ctl -D '$state/pg/data' status" >/dev/null 2>&1; then
    su postgres -c "$bin/pg_ctl -D '$state/pg/data' -o \"-c listen_addresses=127.0.0.1 -p $pg_port -k '$state/pg'\" -l '$state/pg/postgres.log' -w start" >/dev/null
  fi
  psql -h 127.0.0.1 -p "$pg_port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='rag'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE rag" >/dev/null
}

start_redis() {
  mkdir -p "$state/redis"
  if ! alive "$state/redis/redis.pid"; then
    redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$state/redis" --save "" --appendonly yes --appendfsync everysec \
      --daemonize yes --pidfile "$state/redis/redis.pid" --logfile "$state/redis/redis.log"
    for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
}

cluster_env() {
  export Rag__Mode=cluster
  export ConnectionStrings__Postgres="Host=127.0.0.1;Port=$pg_port;Database=rag;Username=postgres"
  export ConnectionStrings__Redis="127.0.0.1:$redis_port"
  export Orleans__ClusterId=dev
  export Rag__OperatorKey
  Rag__OperatorKey="$(cat "$state/operator.key")"
}

start_silo() {
  local i=$1 name="silo$1"
  local pidfile="$state/$name.pid"
  alive "$pidfile" && return 0
  # exec: the recorded PID is the silo itself; every descriptor is redirected so the caller's pipes close.
  ( cd "$state" && Orleans__SiloName="$name" Orleans__SiloPort=$((silo_base + i - 1)) Orleans__GatewayPort=$((gateway_base + i - 1)) \
      exec dotnet "$repo/src/Silo/bin/Release/net10.0/RagOrleans.Silo.dll" --urls "http://127.0.0.1:$((http_base + 100 + i))" ) \
      >"$state/$name.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

start_frontend() {
  local i=$1 pidfile="$state/frontend$1.pid"
  alive "$pidfile" && return 0
  ( cd "$state" && exec dotnet "$repo/src/Frontend/bin/Release/net10.0/RagOrleans.Frontend.dll" --urls "http://127.0.0.1:$((http_base + i - 1))" ) \
      >"$state/frontend$i.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

wait_ready() {
  local url=$1
  for _ in $(seq 240); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz" || true)" = 200 ] && return 0
    sleep 0.5
  done
  echo "not ready: $url" >&2
  return 1
}

status() {
  for i in $(seq "$silos"); do
    alive "$state/silo$i.pid" && echo "silo silo$i $(cat "$state/silo$i.pid") $((silo_base + i - 1)) $((gateway_base + i - 1))"
  done
  for i in $(seq "$frontends"); do
    alive "$state/frontend$i.pid" && echo "frontend $(cat "$state/frontend$i.pid") http://127.0.0.1:$((http_base + i - 1))"
  done
  [ -f "$state/operator.key" ] && echo "operator-key-file $state/operator.key"
  return 0
}

up() {
  install_servers
  mkdir -p "$state"
  if [ -n "${Rag__OperatorKey:-}" ]; then
    printf '%s\n' "$Rag__OperatorKey" >"$state/operator.key"
  elif [ ! -f "$state/operator.key" ]; then
    printf 'op.%s\n' "$(head -c 32 /dev/urandom | base64 | tr -d '=+/\n')" >"$state/operator.key"
  fi
  chmod 600 "$state/operator.key"
  start_postgres
  start_redis
  dotnet build "$repo/src/Silo/Silo.csproj" -c Release -nologo -v quiet >&2
  dotnet build "$repo/src/Frontend/Frontend.csproj" -c Release -nologo -v quiet >&2
  cluster_env
  start_silo 1
  wait_ready "http://127.0.0.1:$((http_base + 101))"
  for i in $(seq 2 "$silos"); do start_silo "$i"; done
  for i in $(seq 2 "$silos"); do wait_ready "http://127.0.0.1:$((http_base + 100 + i))"; done
  for i in $(seq "$frontends"); do start_frontend "$i"; done
  for i in $(seq "$frontends"); do wait_ready "http://127.0.0.1:$((http_base + i - 1))"; done
  status
}

stop_pidfile() {
  local pidfile=$1
  if alive "$pidfile"; then
    local pid; pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

down() {
  for f in "$state"/frontend*.pid "$state"/silo*.pid; do [ -e "$f" ] && stop_pidfile "$f"; done
  if alive "$state/redis/redis.pid"; then
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || stop_pidfile "$state/redis/redis.pid"
  fi
  if [ -f "$state/pg/data/PG_VERSION" ]; then
    su postgres -c "$(pgbin)/pg_ctl -D '$state/pg/data' -m fast stop" >/dev/null 2>&1 || true
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
