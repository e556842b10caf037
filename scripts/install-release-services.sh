#!/usr/bin/env bash
# Install and start what conveyor's releases use: PostgreSQL (a team ledger), the distribution registry
# (docker-registry, one per stage), skopeo and podman. Every subcommand is idempotent.
#
#   install-release-services.sh install               apt-get install what is missing (root), prints nothing else
#   install-release-services.sh postgres DIR PORT     a throwaway cluster in DIR on 127.0.0.1:PORT; prints its URL
#   install-release-services.sh registry DIR PORT     a registry storing into DIR on 127.0.0.1:PORT; prints HOST:PORT
#   install-release-services.sh stop DIR              stop what `postgres` or `registry` started in DIR
set -euo pipefail

PACKAGES=(postgresql docker-registry skopeo podman runc busybox-static)

log() { echo "install-release-services: $*" >&2; }

have() { command -v "$1" >/dev/null 2>&1; }

pg_bin() {
  if have pg_ctl && have initdb; then dirname "$(command -v pg_ctl)"; return; fi
  local found
  found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  [[ -n "$found" && -x "$found/pg_ctl" ]] || { log "PostgreSQL is not installed (run: $0 install)"; exit 1; }
  echo "$found"
}

as_postgres() {
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install() {
  local missing=()
  (pg_bin) >/dev/null 2>&1 || missing+=(postgresql) # the same test `postgres` uses to find initdb/pg_ctl
  have docker-registry || missing+=(docker-registry)
  have skopeo || missing+=(skopeo)
  have podman || missing+=(podman)
  [[ -x /usr/sbin/runc ]] || have runc || missing+=(runc)
  [[ -x /bin/busybox ]] || missing+=(busybox-static)
  if ((${#missing[@]} == 0)); then return 0; fi
  if [[ "$(id -u)" != 0 ]]; then log "missing ${missing[*]}; run as root: apt-get install -y ${missing[*]}"; exit 1; fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 || {
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  }
}

postgres() {
  local dir="$1" port="$2" bin
  bin="$(pg_bin)"
  mkdir -p "$dir"
  [[ "$(id -u)" == 0 ]] && chown postgres "$dir" && chmod 700 "$dir"
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    as_postgres "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
  fi
  if ! as_postgres "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  fi
  echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}

registry() {
  local dir="$1" port="$2"
  mkdir -p "$dir/data"
  if [[ -f "$dir/registry.pid" ]] && kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null; then
    echo "127.0.0.1:$port"; return
  fi
  cat >"$dir/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
  setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
  echo $! >"$dir/registry.pid"
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "127.0.0.1:$port"; return; fi
    kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null || { log "registry failed: $(tail -3 "$dir/registry.log")"; exit 1; }
    sleep 0.1
  done
  log "registry on port $port did not start; see $dir/registry.log"; exit 1
}

stop() {
  local dir="$1"
  if [[ -f "$dir/data/PG_VERSION" ]]; then
    as_postgres "$(pg_bin)/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [[ -f "$dir/registry.pid" ]]; then
    kill "$(cat "$dir/registry.pid")" 2>/dev/null || true
    rm -f "$dir/registry.pid"
  fi
}

case "${1:-}" in
  install) install ;;
  postgres) install; postgres "${2:?DIR}" "${3:?PORT}" ;;
  registry) install; registry "${2:?DIR}" "${3:?PORT}" ;;
  stop) stop "${2:?DIR}" ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
