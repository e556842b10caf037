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
    shipped = report["shipped"]
    assert shipped["digest"].startswith("sha256:")
    assert shipped["tests"]["ok"] and shipped["tests"]["failed"] == 0 and shipped["tests"]["passed"] >= 8
    assert shipped["gates"]["ok"]
    assert shipped["qa"]["status"] == "live"
    assert shipped["prod"]["status"] == "live"
    assert shipped["prod"]["requested_by"] == "alice"
    assert shipped["prod"]["approved_by"] == ["bob"]
    assert "may not approve" in shipped["refused"]
    assert "allowed_signers" in shipped["outsider_refused"]
    assert isinstance(shipped["prod_answer"]["response"]["estimated_wages"], float)
    assert shipped["ledger_events"] > 0
    # The package prod runs scored prod's lake file: every row, with the prediction appended, as Parquet.
    from pathlib import Path

    import pyarrow.parquet as pq

    batch = shipped["batch"]
    assert batch["rows"] == 600 and batch["env"] == "prod"
    scored = pq.read_table(Path(report["lakes"]["prod"]) / batch["output"]["path"])
    assert scored.num_rows == 600 and set(batch["predictions"]) <= set(scored.column_names)
    if shipped["image_digest"]:
        assert shipped["tests"]["ran_in"] == f"image {shipped['image_digest']}"
        assert shipped["prod"]["image_digest"] == shipped["image_digest"]
    # The servers were stopped: nothing answers on the stages' ports any more.
    import httpx

    for port in report["ports"].values():
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)
