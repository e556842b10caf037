"""schemathesis against the server's own /openapi.json: whatever it generates, the server never answers 5xx, and
every answer matches the document (status codes, content types, bodies, Allow headers)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Valid under the document is not always valid for the model (a tensor's shape must match its data, an age must be
# non-negative), so schema-valid requests may rightly get 4xx: that one check is left out.
CHECKS = ("--checks", "all", "--exclude-checks", "positive_data_acceptance")


@pytest.mark.schemathesis
def test_no_generated_request_gets_a_5xx(census_package: Path, start_server, tmp_path: Path) -> None:
    server = start_server(census_package, "--workers", "2")
    binary = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    assert binary, "schemathesis is a test dependency: make install"
    result = subprocess.run(
        [
            binary,
            "run",
            f"{server.url}/openapi.json",
            *CHECKS,
            "--max-examples",
            "150",
            "--seed",
            "20261129",
            "--generation-database",
            "none",
            "--request-timeout",
            "10",
            "--no-color",
            "--report",
            "junit",
            "--report-junit-path",
            str(tmp_path / "schemathesis.xml"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # schemathesis keeps a cache folder in its working directory
    )
    summary = result.stdout[result.stdout.find("SUMMARY") :]
    print(summary)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "error_id=" not in server.log(), server.log()  # every 5xx logs its error id
