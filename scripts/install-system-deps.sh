#!/usr/bin/env bash
# Install the system tools conveyor's demo and tests use, idempotently: a container engine (podman + runc +
# skopeo + mmdebstrap for a base image made from Debian packages), a local OCI registry, PostgreSQL, Java for
# Spark, wrk for benchmarks, chromium for the dashboard's browser tests, and Azurite (npm) for the Azure Storage
# tests. Needs root for apt-get.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

declare -A NEED=(
  [podman]=podman [skopeo]=skopeo [mmdebstrap]=mmdebstrap [docker-registry]=docker-registry
  [wrk]=wrk [java]=default-jre-headless [node]=nodejs [npm]=npm [buildah]=buildah
)
NEED[ssh-keygen]=openssh-client  # signing keys (sshsig): ssh-keygen, ssh-agent, ssh-add
NEED[bwrap]=bubblewrap  # the training sandbox (Linux namespaces): stores, lakes and the network hidden from train.py
NEED[chromium]=chromium  # the dashboard's tests run in a real browser (Playwright drives the system chromium)
missing=()
for tool in "${!NEED[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${NEED[$tool]}")
done
# PySpark 4 (Spark clusters, Spark Connect, the Spark tests) runs on Java 17 or 21.
if command -v java >/dev/null 2>&1; then
  java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
  (( ${java_major:-0} >= 17 )) || missing+=(openjdk-17-jre-headless)
fi
[[ -x /usr/sbin/runc ]] || missing+=(runc)
[[ -x /bin/busybox ]] || missing+=(busybox-static)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v newuidmap >/dev/null 2>&1 || missing+=(uidmap)
[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)  # legible screenshots

if ((${#missing[@]})); then
  if [[ "$(id -u)" != 0 ]]; then
    echo "install-system-deps: missing ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "install-system-deps: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

for script in install-container-engine.sh install-azurite.sh install-release-services.sh; do
  if [[ -x "$ROOT/scripts/$script" ]]; then
    if [[ "$script" == install-release-services.sh ]]; then
      "$ROOT/scripts/$script" install >/dev/null
    else
      "$ROOT/scripts/$script" >/dev/null
    fi
  fi
done
