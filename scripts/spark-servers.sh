#!/usr/bin/env bash
# Start Spark servers on loopback from the PySpark distribution in .venv, the ones the tests start:
#   scripts/spark-servers.sh cluster    a standalone master and worker (compute = "spark://127.0.0.1:PORT")
#   scripts/spark-servers.sh connect    a Spark Connect server        (compute = "sc://127.0.0.1:PORT")
# It prints the URL and runs until Ctrl-C, which stops the servers and their executors.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/install-python.sh" >/dev/null
command -v java >/dev/null 2>&1 || "$ROOT/scripts/install-system-deps.sh"
exec "$ROOT/.venv/bin/python" "$ROOT/tests/spark_servers.py" "${1:-cluster}"
