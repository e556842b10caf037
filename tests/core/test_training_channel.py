"""The training API without a child process: the same context, its requests answered by a broker in this process."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor.config import load_project
from conveyor.errors import SecretError
from conveyor.secrets.redaction import redact, remember
from conveyor.training.broker import TrainingBroker
from conveyor.training.channel import Client
from conveyor.training.context import TrainingContext
from conveyor.training.remote_errors import encode_error, raise_if_error
from conveyor.training.settings import RunSettings


class InProcessClient(Client):
    """A client whose requests a handler in this same process answers, errors crossing as they do over the
    channel (encoded, then raised as `RemoteError`)."""

    def __init__(self, answer: Callable[[dict[str, Any], bytes], tuple[dict[str, Any], bytes]]) -> None:
        self._answer = answer
        self._lock = threading.Lock()

    def request(self, op: str, payload: bytes = b"", **fields: Any) -> tuple[dict[str, Any], bytes]:
        with self._lock:
            try:
                answer, data = self._answer({"op": op, **json.loads(json.dumps(fields))}, payload)
            except Exception as error:
                answer, data = encode_error(error, redact), b""
        raise_if_error(answer)
        return answer, data

    def close(self) -> None:
        return None


def test_an_in_process_context_reads_the_lake_with_lineage_and_refuses_undeclared_secrets(
    census_project: Path, tmp_path: Path
) -> None:
    environment = load_project(census_project).environment("dev")
    settings = RunSettings("dev", "dev", "local", "census", str(census_project), "train.py", [], str(tmp_path), [])
    unused, _ = socket.socketpair()
    broker = TrainingBroker(unused, settings, environment.lake, environment.secret, tmp_path)
    ctx = TrainingContext(InProcessClient(broker.answer), settings, remember)
    with ctx.lake.open("AdultCensusIncome.csv", "r") as handle:
        assert handle.readline().startswith("age")
    assert [read.path for read in broker.lake.reads()] == ["AdultCensusIncome.csv"]
    with pytest.raises(SecretError, match="does not declare 'datalake-fqdn'"):
        ctx.secret("datalake-fqdn")
    with pytest.raises(FileNotFoundError):
        ctx.lake.open("nope.csv")
    unused.close()
