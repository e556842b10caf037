#!/usr/bin/env bash
# Tools for benchmarks/serving.py, installed idempotently: wrk (Debian) and azmlinfsrv in its own venv
# (azureml-inference-server-http pins old dependencies, so it stays out of the project's venv).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
AZML_VENV="${AZML_VENV:-$ROOT/.cache/bench/azml}"

if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq wrk
fi
if [ ! -x "$AZML_VENV/bin/azmlinfsrv" ]; then
  python3 -m venv "$AZML_VENV"
  "$AZML_VENV/bin/pip" install -q azureml-inference-server-http numpy scikit-learn
fi
echo "bench tools ready: $(command -v wrk), $AZML_VENV/bin/azmlinfsrv"
