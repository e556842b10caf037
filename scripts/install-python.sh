#!/usr/bin/env bash
# Create .venv at the repository root and install conveyor (editable) with the extras given, idempotently.
#   scripts/install-python.sh            conveyor with every backend and the test tools
#   scripts/install-python.sh EXTRAS     e.g. "all" for the product alone
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="${1:-test}"
PYTHON="${PYTHON:-python3}"
cd "$ROOT"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "install-python: conveyor needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
  exit 2
fi
if [[ ! -x .venv/bin/python ]]; then
  echo "install-python: creating .venv with $("$PYTHON" --version)" >&2
  "$PYTHON" -m venv .venv
fi
if [[ ! -x .venv/bin/uv ]]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check uv
fi
stamp=".venv/.conveyor-installed-$EXTRAS-$(sha256sum pyproject.toml | cut -c1-16)"
if [[ -f "$stamp" ]]; then
  exit 0
fi
echo "install-python: installing conveyor[$EXTRAS] into .venv" >&2
# Bytecode compiled at install, as pip does: uv does not by default, and where PYTHONDONTWRITEBYTECODE is set every
# run would compile MLflow, pandas... again (seconds per command).
.venv/bin/uv pip install --python .venv/bin/python -q --compile-bytecode -e ".[$EXTRAS]"
rm -f .venv/.conveyor-installed-"$EXTRAS"-*
touch "$stamp"
