"""CLI benchmark: conveyor's everyday commands beside the equivalent MLflow client calls, as whole processes.

Run: .venv/bin/python benchmarks/cli.py [--runs 5] [--train-runs 3] [--no-demo]

On a project trained on the real census file (scripts/fetch-census.sh, 32,561 rows), each command is run as a new
process, alternating with its MLflow peer (`mlflow --help`, `mlflow --version`, a `python` script making the MLflow
client calls that give the same answer), after one warm-up run of each. The table gives medians and the ratio
MLflow/conveyor. Reads are measured on the embedded default (SQLite in the project) and against a real
`mlflow server` on loopback. The answers are compared: conveyor's `--json` against the MLflow script's output.

`train` is measured against the same training code run by plain `python` (overhead = the difference of the
medians) and against that code with MLflow's own logging and registration added.

The release ledger's reads (`releases list/show`, `history`) need releases: the project is made by `conveyor demo`
(build, tests in the image, QA, an approved prod release). Without a container engine, pass --no-demo: the project
is made by `conveyor init` and those rows measure an empty ledger.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HELP_TARGET = 0.3
READ_TARGET = 1.0
TRAIN_OVERHEAD_TARGET = 3.0
MODEL = "worst_regression"

LIST_PEER = """
import json, sys
from mlflow import MlflowClient

uri = sys.argv[1]
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
listed = []
for model in client.search_registered_models():
    aliases = {}
    for alias, version in model.aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    for v in sorted(client.search_model_versions(f"name = '{model.name}'"), key=lambda v: -int(v.version)):
        listed.append({"name": v.name, "version": str(v.version), "run_id": v.run_id, "source": v.source,
                       "created_at": v.creation_timestamp, "aliases": sorted(aliases.get(str(v.version), [])),
                       "tags": dict(v.tags), "metrics": {}, "params": {}})
print(json.dumps(listed))
"""

SHOW_PEER = """
import json, sys
from mlflow import MlflowClient

uri, name, alias = sys.argv[1:4]
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
v = client.get_model_version_by_alias(name, alias)
run = client.get_run(v.run_id)
print(json.dumps({"name": v.name, "version": str(v.version), "run_id": v.run_id, "source": v.source,
                  "created_at": v.creation_timestamp, "aliases": sorted(v.aliases), "tags": dict(v.tags),
                  "metrics": dict(run.data.metrics), "params": dict(run.data.params)}))
"""

# The project's own training code, run by plain python: read the census file, fit, save the model files.
PLAIN_TRAIN = """
import sys, tempfile
from pathlib import Path

sys.path.insert(0, sys.argv[1])
import train

with open(sys.argv[2], "rb") as handle:
    frame = train.load(handle)
x_scaler, y_scaler, model, metrics = train.fit(frame)
out = Path(tempfile.mkdtemp(prefix="plain-train-"))
train.save(out, x_scaler, y_scaler, model)
"""

# The same, with MLflow's own run, logging, pyfunc model and registration (what one writes with MLflow alone).
MLFLOW_TRAIN = (
    PLAIN_TRAIN
    + """
import mlflow
import mlflow.pyfunc

uri = sys.argv[3]
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
client = mlflow.MlflowClient(uri, uri)
found = client.get_experiment_by_name("census-mlflow")
experiment = found.experiment_id if found else client.create_experiment("census-mlflow", artifact_location=sys.argv[5])
with mlflow.start_run(experiment_id=experiment):
    mlflow.log_params({"features": ",".join(train.FEATURES), "target": train.TARGET, "test_size": 0.33})
    mlflow.log_metrics(metrics)
    project = Path(sys.argv[1])
    info = mlflow.pyfunc.log_model(
        name="model",
        loader_module="conveyor_pyfunc",
        data_path=str(out),
        code_paths=[sys.argv[4], str(project / "score.py"), str(project / "inference")],
        pip_requirements=["numpy", "scikit-learn"],
    )
    mlflow.register_model(info.model_uri, "worst_regression_mlflow", tags={"state": "dev"})
"""
)


@dataclass
class Row:
    command: str
    conveyor: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peer_label: str = ""
    peer: list[float] = field(default_factory=list)
    target: float | None = None
    same_answer: bool | None = None
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.conveyor)

    @property
    def peer_median(self) -> float | None:
        return statistics.median(self.peer) if self.peer else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env() -> dict[str, str]:
    """What a person's shell has: bytecode written and read as usual, no test-suite settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "CONVEYOR_ENV")}
    env["COLUMNS"] = "120"
    return env


def run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, env=child_env(), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return done


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, the process and what it waited for) of one run of `command`."""
    cpu = cpu_of_children()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return elapsed, cpu_of_children() - cpu


def measure(row: Row, ours: list[str], peer: list[str] | None, cwd: Path, runs: int, ok: tuple[int, ...] = (0,)) -> Row:
    """Warm up once, then alternate conveyor and its peer `runs` times."""
    timed(ours, cwd, ok)
    if peer:
        timed(peer, cwd)
    for _ in range(runs):
        wall, cpu = timed(ours, cwd, ok)
        row.conveyor.append(wall)
        row.cpu.append(cpu)
        if peer:
            row.peer.append(timed(peer, cwd)[0])
    return row


def same_json(ours: list[str], peer: list[str], cwd: Path) -> bool:
    mine = json.loads(run(ours, cwd).stdout)
    theirs = json.loads(run(peer, cwd).stdout)
    return bool(mine == theirs)


def make_project(work: Path, conveyor: Path, demo: bool) -> tuple[Path, str]:
    """A project with releases (by `conveyor demo`) or without (by `conveyor init`); returns it and how it was made."""
    if demo and shutil.which("podman"):
        done = run([str(conveyor), "demo", "--dir", str(work / "demo"), "--json"], work, check=False)
        if done.returncode == 0:
            return Path(json.loads(done.stdout)["project"]), "conveyor demo (2 releases: qa, prod)"
        print(f"conveyor demo failed ({done.returncode}); measuring an empty ledger:\n{done.stderr[-1500:]}")
    root = work / "init" / "census"
    run(
        [
            str(conveyor),
            "init",
            str(root),
            "--secrets-dir",
            str(work / "init" / "secrets"),
            "--lakes-dir",
            str(work / "init" / "lakes"),
        ],
        work,
    )
    return root, "conveyor init (empty ledger)"


def start_server(store: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    env = {**child_env(), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{store}", "--host", "127.0.0.1"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--workers", "1"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"mlflow server exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("mlflow server did not start within 120 s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=10)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def table(rows: list[Row]) -> str:
    lines = [
        "| command | conveyor | (its CPU) | MLflow peer | peer / conveyor | target | met | same answer |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        peer = row.peer_median
        ratio = f"×{peer / row.median:.1f}" if peer else "—"
        target = f"< {row.target:g} s" if row.target is not None else ""
        met = "" if row.target is None else ("yes" if row.median < row.target else "**no**")
        answer = {True: "yes", False: "**no**", None: ""}[row.same_answer]
        label = f"{seconds(peer)} ({row.peer_label})" if peer else (row.peer_label or "—")
        lines.append(
            f"| {row.command}{' ' + row.note if row.note else ''} | {seconds(row.median)} "
            f"| {seconds(statistics.median(row.cpu)) if row.cpu else ''} | {label} | {ratio} "
            f"| {target} | {met} | {answer} |"
        )
    return "\n".join(lines)


def bytecode_state() -> str:
    import importlib.util

    import mlflow

    cached = Path(importlib.util.cache_from_source(mlflow.__file__)).exists()
    return "compiled (.pyc present)" if cached else "NOT compiled: the first runs compile it (see notes)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each read command and its peer")
    parser.add_argument("--train-runs", type=int, default=3, help="timed runs of each training variant")
    parser.add_argument("--no-demo", action="store_true", help="make the project with `conveyor init` (no releases)")
    parser.add_argument("--conveyor", type=Path, default=BIN / "conveyor", help="the conveyor executable to time")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()

    conveyor = str(args.conveyor)
    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="conveyor-bench-cli-"))
    census = Path(run([str(ROOT / "scripts" / "fetch-census.sh")], ROOT).stdout.strip().splitlines()[-1])
    load_before = os.getloadavg()
    started = time.perf_counter()
    server = None
    try:
        project, made_by = make_project(work, Path(conveyor), demo=not args.no_demo)
        print(f"project: {project} ({made_by})", flush=True)
        run([conveyor, "lake", "put", str(census), "--env", "dev", "--overwrite"], project)
        for _ in range(2):
            run([conveyor, "train", "--env", "dev"], project)
        store = project / ".conveyor" / "dev" / "mlflow.db"
        local = f"sqlite:///{store}"
        versions = json.loads(run([conveyor, "models", "list", MODEL, "--env", "dev", "--json"], project).stdout)
        newest = versions[0]["version"]
        run(
            [
                python,
                "-c",
                f"from mlflow import MlflowClient; MlflowClient('{local}', '{local}')"
                f".set_registered_model_alias('{MODEL}', 'champion', '{newest}')",
            ],
            project,
        )
        server, remote = start_server(store, work / "mlflow-server.log")
        with (project / "conveyor.toml").open("a") as toml:
            dev_secrets = run([conveyor, "secrets", "check", "--env", "dev", "--json"], project).stdout
            toml.write(
                f'\n[environments.remote]\nsecrets = "{json.loads(dev_secrets)["store"]}"\n'
                f'lake = "${{secret:datalake-fqdn}}"\nregistry = "{remote}"\n'
                'state = "${secret:alg-state}"\ncreated_by = "${secret:created-by}"\n'
            )
        peers = work / "peers"
        peers.mkdir()
        for name, text in (("list.py", LIST_PEER), ("show.py", SHOW_PEER)):
            (peers / name).write_text(text)
        print("measuring reads...", flush=True)

        rows: list[Row] = []
        for flag in ("--version", "--help"):
            row = Row(f"conveyor {flag}", peer_label=f"mlflow {flag}", target=HELP_TARGET)
            rows.append(measure(row, [conveyor, flag], [str(BIN / "mlflow"), flag], project, args.runs))
        for env, uri, where in (("dev", local, "SQLite"), ("remote", remote, "mlflow server")):
            ours = [conveyor, "models", "list", "--env", env]
            peer = [python, str(peers / "list.py"), uri]
            row = Row(f"models list --env {env} ({where})", peer_label="MlflowClient searches", target=READ_TARGET)
            row.same_answer = same_json([*ours, "--json"], peer, project)
            rows.append(measure(row, ours, peer, project, args.runs))
            ours = [conveyor, "models", "show", f"{MODEL}@champion", "--env", env]
            peer = [python, str(peers / "show.py"), uri, MODEL, "champion"]
            label = "MlflowClient get by alias + run"
            row = Row(f"models show {MODEL}@champion --env {env} ({where})", peer_label=label, target=READ_TARGET)
            row.same_answer = same_json([*ours, "--json"], peer, project)
            rows.append(measure(row, ours, peer, project, args.runs))
        for command, ok in (
            (["lake", "ls", "--env", "dev"], (0,)),
            (["secrets", "check", "--env", "dev"], (0,)),
            (["releases", "list"], (0,)),
            (["releases", "show", "1"], (0, 2)),
            (["history", "prod"], (0, 2)),
        ):
            row = Row(" ".join(command), peer_label="no MLflow equivalent", target=READ_TARGET)
            if "empty" in made_by and command[0] in ("releases", "history"):
                row.note = "(empty ledger)"
            rows.append(measure(row, [conveyor, *command], None, project, args.runs, ok))

        print("measuring train...", flush=True)
        (peers / "plain_train.py").write_text(PLAIN_TRAIN)
        (peers / "mlflow_train.py").write_text(MLFLOW_TRAIN)
        loader = Path(__file__).resolve().parents[1] / "src" / "conveyor" / "registry" / "pyfunc_loader.py"
        shutil.copyfile(loader, peers / "conveyor_pyfunc.py")
        plain = [python, str(peers / "plain_train.py"), str(project), str(census)]
        mlflow_db = f"sqlite:///{work / 'mlflow-train.db'}"
        with_mlflow = [
            python,
            str(peers / "mlflow_train.py"),
            str(project),
            str(census),
            mlflow_db,
            str(peers / "conveyor_pyfunc.py"),
            (work / "mlflow-artifacts").as_uri(),
        ]
        train = Row("train --env dev (census, 32,561 rows)", peer_label="same code + MLflow logging/registration")
        baseline = Row("same training code, plain python")
        mlflow_script = Row("same code + MLflow")
        variants = [(train, [conveyor, "train", "--env", "dev"]), (baseline, plain), (mlflow_script, with_mlflow)]
        for _, command in variants:  # warm-up
            timed(command, project)
        for _ in range(args.train_runs):  # the three alternate, so that the machine's load falls on each alike
            for row, command in variants:
                wall, cpu = timed(command, project)
                row.conveyor.append(wall)
                row.cpu.append(cpu)
        train.peer = mlflow_script.conveyor
        overhead = Row("train overhead (conveyor − plain python)", target=TRAIN_OVERHEAD_TARGET)
        overhead.conveyor = [train.median - baseline.median]
        overhead.cpu = [statistics.median(train.cpu) - statistics.median(baseline.cpu)]
        overhead.peer = [mlflow_script.median - baseline.median]
        overhead.peer_label = "MLflow's overhead on the same code"
        rows += [train, baseline, overhead]
    finally:
        if server is not None:
            stop_server(server)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print(table(rows))
    print()
    print(
        f"- {args.runs} timed runs per read command ({args.train_runs} per training variant), medians, each a new "
        f"process, alternating with its peer after one warm-up run of each; project made by {made_by}. CPU: user + "
        "system seconds of the process and the processes it waited for (less sensitive to the machine's load)."
    )
    print(f"- bytecode of site-packages: {bytecode_state()}; PYTHONDONTWRITEBYTECODE unset for the runs.")
    print(
        f"- load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
        f"whole benchmark {time.perf_counter() - started:.0f} s."
    )
    print(f"- command: {' '.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    main()
