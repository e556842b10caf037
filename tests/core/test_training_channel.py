"""The training API without a child process: the same context answered in-process (for a remote cluster's driver)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from conveyor.config import load_project
from conveyor.errors import SecretError
from conveyor.training.broker import TrainingBroker
from conveyor.training.channel import InProcessClient
from conveyor.training.context import TrainingContext
from conveyor.training.settings import RunSettings


def test_an_in_process_context_reads_the_lake_with_lineage_and_refuses_undeclared_secrets(
    census_project: Path, tmp_path: Path
) -> None:
    environment = load_project(census_project).environment("dev")
    settings = RunSettings("dev", "dev", "local", "census", str(census_project), "train.py", [], str(tmp_path), [])
    unused, _ = socket.socketpair()
    broker = TrainingBroker(unused, settings, environment.lake, environment.secret, tmp_path)
    ctx = TrainingContext(InProcessClient(broker.answer), settings)
    with ctx.lake.open("AdultCensusIncome.csv", "r") as handle:
        assert handle.readline().startswith("age")
    assert [read.path for read in broker.lake.reads()] == ["AdultCensusIncome.csv"]
    with pytest.raises(SecretError, match="does not declare 'datalake-fqdn'"):
        ctx.secret("datalake-fqdn")
    with pytest.raises(FileNotFoundError):
        ctx.lake.open("nope.csv")
    unused.close()
