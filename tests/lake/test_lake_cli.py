"""`conveyor lake ls|put|get` on a project whose environments have sibling file:// lakes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from conveyor.cli.main import main

PROJECT = """
[project]
name = "lakecli"

[environments.dev]
secrets = "env://LAKECLI_DEV_"
lake = "file://lakes/dev"

[environments.stage]
secrets = "env://LAKECLI_STAGE_"
lake = "file://lakes/stage"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "conveyor.toml").write_text(PROJECT)
    (tmp_path / "lakes" / "dev").mkdir(parents=True)
    (tmp_path / "lakes" / "stage").mkdir(parents=True)
    (tmp_path / "lakes" / "stage" / "eval.csv").write_text("age\n40\n")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_put_ls_get(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    local = tmp_path / "AdultCensusIncome.csv"
    local.write_text("age, fnlwgt\n39, 77516\n")
    p = ["--project", str(project)]
    code, out, _ = run(capsys, "lake", "put", str(local), "census/", "--env", "dev", *p)
    assert code == 0 and out.strip() == "census/AdultCensusIncome.csv"
    code, _, err = run(capsys, "lake", "put", str(local), "census/", "--env", "dev", *p)
    assert code == 2 and "already holds census/AdultCensusIncome.csv" in err
    assert (project / "lakes" / "dev" / "census" / "AdultCensusIncome.csv").read_text() == local.read_text()

    code, out, _ = run(capsys, "lake", "ls", "census", "-e", "dev", "--json", *p)
    listing = json.loads(out)
    assert code == 0 and listing["path"] == "census"
    assert listing["entries"] == [
        {"name": "census/AdultCensusIncome.csv", "type": "file", "size": local.stat().st_size}
    ]

    code, out, _ = run(
        capsys, "lake", "get", "census/AdultCensusIncome.csv", str(tmp_path / "back.csv"), "-e", "dev", "--json", *p
    )
    got = json.loads(out)
    assert code == 0 and (tmp_path / "back.csv").read_text() == local.read_text()
    assert got["reads"] == [
        {"path": "census/AdultCensusIncome.csv", "sha256": hashlib.sha256(local.read_bytes()).hexdigest()}
    ]


def test_env_from_environment_variable_and_refusals(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_ENV", "dev")
    code, out, err = run(capsys, "lake", "ls", "../stage", "--project", str(project))
    assert code == 2 and "outside the lake" in err and "../stage" in err
    code, _, err = run(capsys, "lake", "get", "eval.csv", "--project", str(project))
    assert code == 2 and "does not exist" in err and "conveyor lake put FILE eval.csv --env dev" in err
    code, out, _ = run(capsys, "lake", "ls", "--env", "stage", "--project", str(project))
    assert code == 0 and "eval.csv" in out
