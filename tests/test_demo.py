"""`conveyor demo`: the main job end to end, as `make demo` runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.container]


def test_demo_runs_the_whole_job(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "demo", "--dir", str(tmp_path), "--rows", "600", "--json"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["dev_model"]["tags"]["state"] == "dev"
    assert report["dev_model"]["tags"]["git_dirty"] == "false"
    assert report["stage_model"]["tags"]["state"] == "stage"
    assert report["dev_versions_after_stage"] == ["1"]
    assert report["build"]["digest"].startswith("sha256:")
    assert report["tests"]["ok"] and report["tests"]["failed"] == 0 and report["tests"]["passed"] >= 8
    assert report["gates"]["ok"]
    assert report["releases"]["qa"]["status"] == "live"
    assert report["releases"]["prod"]["status"] == "live"
    assert report["releases"]["prod"]["approved_by"] == ["bob"]
    assert "may not approve" in report["refused"]
    assert isinstance(report["prod_answer"]["response"]["estimated_wages"], float)
    assert report["audit"]["entries"] > 0
    if report["build"]["image"]:
        assert report["tests"]["ran_in"] == f"image {report['build']['image']['digest']}"
    # The servers were stopped: nothing answers on the stages' ports any more.
    import httpx

    for port in report["ports"].values():
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)
