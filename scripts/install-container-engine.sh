#!/usr/bin/env bash
# Install a container engine and its tools for `conveyor build`/`conveyor test` and the release tests:
# podman, runc, skopeo, buildah, mmdebstrap and docker-registry (Debian packages). Idempotent: installs only what
# is missing, and writes /etc/containers/containers.conf (default_ulimits = []) only when that file does not exist.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PACKAGES=(podman runc skopeo buildah mmdebstrap docker-registry uidmap)
TOOLS=(podman runc skopeo buildah mmdebstrap docker-registry)

missing=()
for tool in "${TOOLS[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || [[ -x "/usr/sbin/$tool" || -x "/usr/bin/$tool" ]] || missing+=("$tool")
done

if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-container-engine: missing ${missing[*]} and no apt-get here; install podman, runc, skopeo," \
      "buildah, mmdebstrap and docker-registry with your OS's package manager" >&2
    exit 1
  fi
  SUDO=""
  [[ "$(id -u)" == "0" ]] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >&2
fi

# Root without CAP_SYS_RESOURCE (containers, CI sandboxes) cannot let podman raise rlimits.
if [[ ! -e /etc/containers/containers.conf && "$(id -u)" == "0" ]]; then
  mkdir -p /etc/containers
  cp "$ROOT/scripts/containers.conf" /etc/containers/containers.conf
  echo "install-container-engine: wrote /etc/containers/containers.conf (default_ulimits = [])" >&2
fi

podman --version
