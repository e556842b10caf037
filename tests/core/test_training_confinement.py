"""A training script is dev-written code run with stage's credentials: it gets the confined lake, the secrets the
project declares and nothing else, and a read that bypasses lineage is impossible rather than unrecorded."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.compute import train
from conveyor.config import load_project
from conveyor.errors import CheckFailed, ConfigError
from conveyor.registry import ModelRegistry
from conveyor.training import sandbox

pytestmark = pytest.mark.slow
needs_sandbox = pytest.mark.skipif(
    sandbox.unavailable_reason() is not None,
    reason=f"{sandbox.unavailable_reason()}: scripts/install-system-deps.sh installs bubblewrap",
)

MODEL = (
    "import conveyor\n"
    "ctx = conveyor.context()\n"
    "(ctx.output_dir / 'weights.json').write_text('{}')\n"
    "ctx.register_model(ctx.output_dir, 'probe')\n"
)


@pytest.fixture()
def scratch(census_project: Path, tmp_path: Path) -> Path:
    """A copy of the census project (its own git repo) whose train.py a test replaces."""
    copy = tmp_path / "census"
    shutil.copytree(census_project, copy, ignore=shutil.ignore_patterns(".conveyor", ".git"))
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=copy, check=True)
    return copy


def commit(root: Path) -> None:
    identity = ["-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", *identity, "commit", "-q", "-m", "probe"], cwd=root, check=True)


def run(root: Path, env: str = "dev") -> tuple[str, object]:
    lines: list[str] = []
    result = train(load_project(root).environment(env), out=lines.append, err=lines.append)
    return "".join(lines), result


def findings(output: str) -> dict[str, object]:
    line = next(line for line in output.splitlines() if line.startswith("FINDINGS "))
    return json.loads(line.removeprefix("FINDINGS "))


def host_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        return probe.getsockname()[0]


@pytest.fixture()
def listener() -> Iterator[tuple[str, int]]:
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield host_address(), server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


@needs_sandbox
def test_a_hostile_script_in_stage_reaches_nothing_but_its_confined_lake(
    scratch: Path, listener: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = load_project(scratch)
    stage = project.environment("stage")
    lakes = {name: project.environment(name).lake_url.removeprefix("file://") for name in ("dev", "stage", "prod")}
    stores = [str(project.environment(name).secrets.path) for name in ("dev", "stage", "prod")]
    gate_store = str(project.gates.secrets.path)
    sealed = project.gates.eval_data_url().removeprefix("file://")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-credential-marker-7731")
    monkeypatch.setenv("CONVEYOR_STAGE_DATALAKE_FQDN", "host-credential-marker-7732")
    (scratch / ".conveyor").mkdir(exist_ok=True)
    (scratch / ".conveyor" / "ledger.db").write_text("ledger")
    address, port = listener
    (scratch / "train.py").write_text(
        f"""
import gc, json, os, socket
import conveyor

ctx = conveyor.context()
seen = {{}}
seen["ctx_attributes"] = sorted(a for a in ("environment", "project", "secrets", "registry") if hasattr(ctx, a))
seen["lake_inner"] = sorted(a for a in ("storage_options", "location", "url") if hasattr(ctx.lake, a))
seen["fs_inner"] = hasattr(ctx.lake.fs, "fs")
names = {{"Environment", "Project", "FileSecretStore", "EnvSecretStore", "Lake", "ConfinedFileSystem", "GateSettings"}}
seen["objects"] = sorted({{type(o).__name__ for o in gc.get_objects() if type(o).__name__ in names}})
try:
    from conveyor.config import load_project
    load_project({str(scratch)!r}).environment("stage").secret("datalake-fqdn")
    seen["store_via_config"] = "read"
except Exception as error:
    seen["store_via_config"] = type(error).__name__
paths = {{**{lakes!r}, "stores": {stores!r}, "gate_store": {gate_store!r}, "sealed": {sealed!r}}}
visible = []
for label, value in paths.items():
    for path in value if isinstance(value, list) else [value]:
        if os.path.exists(path):
            visible.append(label)
seen["visible"] = sorted(set(visible))
seen["state_dir"] = os.listdir(".conveyor") if os.path.isdir(".conveyor") else []
seen["home"] = os.path.exists({str(Path.home() / ".conveyor")!r})
environ = open("/proc/self/environ", "rb").read()
seen["env_markers"] = b"host-credential-marker" in environ or b"CONVEYOR_SECRETS" in environ
def readable(path):
    try:
        return open(path, "rb").read()
    except OSError:
        return b""
others = [p for p in os.listdir("/proc") if p.isdigit()]
seen["parent_visible"] = any(
    b"host-credential-marker" in readable(f"/proc/{{p}}/environ") or b"bin/pytest" in readable(f"/proc/{{p}}/cmdline")
    for p in others
)
try:
    socket.create_connection(({address!r}, {port}), timeout=3).close()
    seen["network"] = True
except OSError:
    seen["network"] = False
with ctx.lake.open("AdultCensusIncome.csv") as handle:
    seen["rows"] = sum(1 for _ in handle) - 1
print("FINDINGS " + json.dumps(seen))
{MODEL}
"""
    )
    commit(scratch)
    output, result = run(scratch, "stage")
    seen = findings(output)
    assert seen == {
        "ctx_attributes": [],
        "lake_inner": [],
        "fs_inner": False,
        "objects": [],
        "store_via_config": "SecretError",
        "visible": [],
        "state_dir": [],
        "home": False,
        "env_markers": False,
        "parent_visible": False,
        "network": False,
        "rows": 600,
    }
    assert result.confinement == {"sandbox": "bubblewrap", "network": False, "reason": None}
    tags = ModelRegistry(stage).resolve("probe").tags
    assert tags["data_files"] == "AdultCensusIncome.csv" and tags["data_digest"].startswith("sha256:")
    assert tags["training_sandbox"] == "bubblewrap" and tags["git_dirty"] == "false"


def test_every_door_into_the_lake_is_recorded(scratch: Path) -> None:
    lake = Path(load_project(scratch).environment("dev").lake_url.removeprefix("file://"))
    (lake / "extra").mkdir(exist_ok=True)
    for name in ("a.csv", "b.csv", "c.csv", "d.csv"):
        (lake / "extra" / name).write_text(f"x,y\n1,{name}\n")
    (scratch / "train.py").write_text(
        "import conveyor, pandas as pd\n"
        "ctx = conveyor.context()\n"
        "ctx.lake.fs.cat_file('extra/a.csv')\n"
        "pd.read_csv(ctx.lake.fs.open('extra/b.csv'))\n"
        "ctx.lake.get('extra/c.csv', ctx.output_dir.parent / 'tmp' / 'c.csv')\n"
        "ctx.lake.open('extra/d.csv', 'r').readline()\n"  # a partial read: the whole file is hashed all the same
        "print('READS', [r.path for r in ctx.lake.reads()])\n"
        "(ctx.output_dir / 'weights.json').write_text('{}')\n"
        "ctx.register_model(ctx.output_dir, 'probe')\n"
    )
    output, _ = run(scratch)
    tags = ModelRegistry(load_project(scratch).environment("dev")).resolve("probe").tags
    assert tags["data_files"] == "extra/a.csv,extra/b.csv,extra/c.csv,extra/d.csv"
    assert "READS ['extra/a.csv', 'extra/b.csv', 'extra/c.csv', 'extra/d.csv']" in output


def test_only_declared_secrets_reach_the_script(scratch: Path) -> None:
    toml = scratch / "conveyor.toml"
    toml.write_text(toml.read_text().replace("secrets = []", 'secrets = ["created-by"]', 1))
    (scratch / "train.py").write_text(
        "import conveyor\n"
        "ctx = conveyor.context()\n"
        "print('declared', ctx.secret('created-by'))\n"
        "ctx.secret('datalake-fqdn')\n"
    )
    lines: list[str] = []
    with pytest.raises(CheckFailed):
        train(load_project(scratch).environment("dev"), out=lines.append, err=lines.append)
    output = "".join(lines)
    assert "declared tester" in output
    assert "does not declare 'datalake-fqdn' for training" in output and "[training] secrets" in output


def test_a_registered_folder_may_not_link_to_host_files(scratch: Path) -> None:
    secret_file = load_project(scratch).environment("dev").secrets.path
    (scratch / "train.py").write_text(
        "import os, conveyor\n"
        "ctx = conveyor.context()\n"
        "(ctx.output_dir / 'weights.json').write_text('{}')\n"
        f"os.symlink({str(secret_file)!r}, ctx.output_dir / 'store.toml')\n"
        "ctx.register_model(ctx.output_dir, 'probe')\n"
    )
    with pytest.raises(CheckFailed):
        run(scratch)
    assert ModelRegistry(load_project(scratch).environment("dev")).model_names() == []


def test_without_a_sandbox_the_run_says_so_plainly_or_is_refused(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "BWRAP", "bwrap-is-not-installed-here")
    sandbox.unavailable_reason.cache_clear()
    try:
        (scratch / "train.py").write_text(MODEL)
        output, result = run(scratch)
        assert result.confinement == {"sandbox": "none", "network": True, "reason": "bubblewrap is not installed"}
        assert "WITHOUT a sandbox (bubblewrap is not installed)" in output
        tags = ModelRegistry(load_project(scratch).environment("dev")).resolve("probe").tags
        assert tags["training_sandbox"] == "none"
        toml = scratch / "conveyor.toml"
        toml.write_text(toml.read_text().replace('sandbox = "auto"', 'sandbox = "required"'))
        with pytest.raises(ConfigError, match="requires a sandbox and bubblewrap is not installed"):
            run(scratch)
    finally:
        sandbox.unavailable_reason.cache_clear()


def test_training_child_gets_a_scrubbed_environment_even_without_a_sandbox(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "BWRAP", "bwrap-is-not-installed-here")
    sandbox.unavailable_reason.cache_clear()
    monkeypatch.setenv("CONVEYOR_SECRETS_GATES", "file:///somewhere/gates.toml")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-host-token-marker-0042")
    try:
        (scratch / "train.py").write_text(
            "import os\nprint('ENV', sorted(k for k in os.environ if 'SECRET' in k or 'TOKEN' in k))\n" + MODEL
        )
        output, _ = run(scratch)
    finally:
        sandbox.unavailable_reason.cache_clear()
    assert "ENV []" in output
    assert os.environ["DATABRICKS_TOKEN"] not in output


@needs_sandbox
def test_project_files_the_commit_does_not_hold_are_hidden_or_mark_the_model_dirty(scratch: Path) -> None:
    (scratch / ".gitignore").write_text((scratch / ".gitignore").read_text() + "private-data/\n")
    (scratch / "private-data").mkdir()
    (scratch / "private-data" / "eval-copy.csv").write_text("age,fnlwgt\n1,2\n")
    (scratch / "train.py").write_text(
        "import os\nprint('SEES', os.path.exists('private-data/eval-copy.csv'), os.path.exists('notes.txt'))\n" + MODEL
    )
    commit(scratch)
    (scratch / "notes.txt").write_text("untracked, readable, so the version is marked dirty\n")
    output, _ = run(scratch)
    assert "SEES False True" in output
    assert ModelRegistry(load_project(scratch).environment("dev")).resolve("probe").tags["git_dirty"] == "true"


@pytest.mark.parametrize(
    ("planted", "kind"),
    [
        ("os.symlink({target!r}, ctx.output_dir / 'leak')", "a symbolic link"),
        ("os.symlink(os.path.dirname({target!r}), ctx.output_dir / 'leakdir')", "a symbolic link"),
        (
            "(ctx.output_dir / 'sub').mkdir(); os.symlink({target!r}, ctx.output_dir / 'sub' / 'leak')",
            "a symbolic link",
        ),
        ("os.mkfifo(ctx.output_dir / 'pipe')", r"a FIFO \(named pipe\)"),
    ],
)
def test_what_is_planted_after_register_model_is_refused_at_copy_time(scratch: Path, planted: str, kind: str) -> None:
    """register_model checks when it is called; the files are copied after the script ends. A link (to the
    environment's store, which the sandbox hides) or a FIFO planted in between is refused then, never followed."""
    target = str(load_project(scratch).environment("dev").secrets.path)
    (scratch / "train.py").write_text(
        "import os, conveyor\n"
        "ctx = conveyor.context()\n"
        "(ctx.output_dir / 'weights.json').write_text('{}')\n"
        "ctx.register_model(ctx.output_dir, 'probe')\n" + planted.format(target=target) + "\n"
    )
    commit(scratch)
    with pytest.raises(CheckFailed, match=f"is {kind}; a model holds regular files and folders only"):
        run(scratch)
    assert ModelRegistry(load_project(scratch).environment("dev")).model_names() == []
    mlruns = scratch / ".conveyor"
    copied = [p for p in mlruns.rglob("*") if p.name in ("leak", "dev.toml", "pipe")] if mlruns.exists() else []
    assert copied == []


def test_a_committed_link_in_the_inference_code_is_refused(scratch: Path) -> None:
    """The inference code is copied by conveyor outside the sandbox: a link there must not carry a host file in."""
    target = str(load_project(scratch).environment("dev").secrets.path)
    code_folder = scratch / load_project(scratch).config.project.code[0]
    os.symlink(target, code_folder / "leak.toml")
    (scratch / "train.py").write_text(MODEL)
    commit(scratch)
    with pytest.raises(CheckFailed, match="is a symbolic link"):
        run(scratch)
    assert ModelRegistry(load_project(scratch).environment("dev")).model_names() == []
