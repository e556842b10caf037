"""The gate's evaluator is hostile code run on sealed data: it sees no network, no host environment, no host
files, and nothing it prints or returns leaves except the ruled metrics."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.cli.main import main
from conveyor.config import GatesConfig, load_project
from conveyor.config.gates import GateSettings
from conveyor.errors import ConfigError
from conveyor.testing import run_gates

pytestmark = [pytest.mark.slow, pytest.mark.container]


def host_address() -> str:
    """An address of this machine other than loopback (what a container on a bridge network would reach)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        return probe.getsockname()[0]


@pytest.fixture()
def listener() -> Iterator[tuple[str, int]]:
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield host_address(), server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


@pytest.fixture()
def hostile(census: Path) -> Iterator[Path]:
    """The census project with evaluate.py and the [gates] rules swapped for a test's own, restored afterwards."""
    saved = {name: (census / name).read_text() for name in ("evaluate.py", "conveyor.toml")}
    yield census
    for name, text in saved.items():
        (census / name).write_text(text)


def set_rules(root: Path, rules: dict[str, str]) -> None:
    toml = root / "conveyor.toml"
    text = toml.read_text()
    start = text.index("metrics = {", text.index("[gates]"))
    end = text.index("}", start) + 1
    inline = ", ".join(f'{name} = "{rule}"' for name, rule in rules.items())
    toml.write_text(text[:start] + "metrics = { " + inline + " }" + text[end:])


def test_the_evaluator_sees_no_network_no_host_environment_and_no_host_files(
    hostile: Path, image_build, listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    address, port = listener
    gate_store = load_project(hostile).gates.secrets.path
    monkeypatch.setenv("CONVEYOR_HOST_MARKER", "host-variable-marker-91")
    (hostile / "evaluate.py").write_text(
        f"""
import os, socket

def evaluate(model, data):
    seen = {{}}
    try:
        socket.create_connection(({address!r}, {port}), timeout=3).close()
        seen["network"] = 1.0
    except OSError:
        seen["network"] = 0.0
    environ = open("/proc/self/environ", "rb").read()
    seen["host_env"] = float(b"host-variable-marker-91" in environ or b"CONVEYOR_SECRETS" in environ)
    seen["env_now"] = float(len([k for k in os.environ if k not in ("CONVEYOR_PACKAGE_DIR", "CONVEYOR_MODEL_DIR")]))
    seen["host_files"] = float(any(os.path.exists(p) for p in ({str(hostile)!r}, {str(gate_store)!r}, {__file__!r})))
    try:
        open("/app/package/score.py", "a").close()
        seen["writable"] = 1.0
    except OSError:
        seen["writable"] = 0.0
    seen["root_user"] = float(os.getuid() == 0)
    seen["data_read_only"] = float(not os.access(data, os.W_OK))
    return seen
"""
    )
    observed = ("network", "host_env", "env_now", "host_files", "writable", "root_user")
    set_rules(hostile, {**{name: "== 0" for name in observed}, "data_read_only": "== 1"})
    report = run_gates(image_build)
    assert report.metrics == {**{name: 0.0 for name in observed}, "data_read_only": 1.0}
    assert report.ok


def test_what_the_evaluator_prints_or_raises_stays_in_a_private_log(hostile: Path, image_build, capsys) -> None:
    (hostile / "evaluate.py").write_text(
        """
import sys

def evaluate(model, data):
    row = data.read_text().splitlines()[1]
    print("SEALED-ROW-OUT", row)
    print("SEALED-ROW-ERR", row, file=sys.stderr)
    raise ValueError("SEALED-ROW-RAISED " + row)
"""
    )
    capsys.readouterr()
    assert main(["gate", image_build.short, "--project", str(hostile)]) == 1
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert "SEALED-ROW" not in shown and "ValueError" not in shown
    assert "may quote sealed data" in shown and "kept privately in" in shown
    log = hostile / ".conveyor" / "gates" / image_build.short / "evaluate-candidate.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    text = log.read_text()
    assert "SEALED-ROW-OUT" in text and "SEALED-ROW-ERR" in text and "SEALED-ROW-RAISED" in text


def test_only_the_ruled_metrics_leave_rounded(hostile: Path, image_build) -> None:
    (hostile / "evaluate.py").write_text(
        """
def evaluate(model, data):
    row = data.read_text().splitlines()[1]
    return {"r2": 0.123456789123, "mae": 1.0, "leak " + row: 1.0, "bits": 0.1234567890123456}
"""
    )
    set_rules(hostile, {"r2": ">= 0", "mae": "<= 5"})
    report = run_gates(image_build)
    assert report.metrics == {"r2": 0.123457, "mae": 1.0}
    recorded = json.dumps(json.loads(image_build.path.read_text())["gates"])
    assert "leak" not in recorded and "bits" not in recorded


def test_a_sealed_set_inside_an_environment_lake_is_refused(
    census: Path, image_build, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = load_project(census)
    dev_lake = Path(project.environment("dev").lake_url.removeprefix("file://"))
    inside = dev_lake / "hidden" / "eval.csv"
    inside.parent.mkdir(exist_ok=True)
    shutil.copyfile(project.gates.eval_data_url().removeprefix("file://"), inside)
    monkeypatch.setenv("CONVEYOR_SECRETS_GATES", "env://CONVEYOR_GATES_")
    monkeypatch.setenv("CONVEYOR_GATES_EVAL_DATA_URL", inside.as_uri())
    try:
        with pytest.raises(ConfigError, match="inside the dev lake"):
            run_gates(image_build)
    finally:
        shutil.rmtree(inside.parent)


def test_the_gate_store_comes_from_ci_for_the_gate_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = GateSettings(GatesConfig(eval_data="${secret:eval-data-url}"), tmp_path, tmp_path / "conveyor.toml")
    with pytest.raises(ConfigError, match=r"\[gates\] secrets is not set"):
        _ = settings.secrets_url
    monkeypatch.setenv("CONVEYOR_SECRETS_GATES", "env://CONVEYOR_GATES_")
    monkeypatch.setenv("CONVEYOR_GATES_EVAL_DATA_URL", "s3://sealed-bucket/eval/census.csv")
    assert settings.eval_data_url() == "s3://sealed-bucket/eval/census.csv"
    assert settings.required_secrets() == ["eval-data-url"]


def test_gates_refuse_to_evaluate_without_an_image(census: Path) -> None:
    from conveyor.package import build

    project = load_project(census)
    record = build(project, project.environment("dev"), model_spec="worst_regression/1", engine="none")
    with pytest.raises(Exception, match="evaluate only inside the built image"):
        run_gates(record)
    assert os.path.exists(record.path)
