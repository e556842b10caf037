"""Scoring servers side by side: conveyor, azmlinfsrv and `mlflow models serve`, serving the same census model.

Each server runs alone pinned to core 0 (`taskset -c 0`), wrk runs on core 1, the POST body comes from a Lua
script. Per server: cold start (launch to first 200 on its scoring endpoint), a 3 s warm-up, then 10 s at
concurrency 1, 8 and 64, and the memory of its process tree afterwards.

    python benchmarks/serving.py            # full run (about 3 minutes)
    python benchmarks/serving.py --quick    # 2 s per point, for smoke use
    python benchmarks/serving.py --only conveyor

`conveyor` is the server as it ships (score.py called in a thread pool, so health checks and other clients are
answered during a slow call); `conveyor-auto` is the same server with `--offload auto` (score.py called on the event
loop while its calls stay fast), to show what that guarantee costs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
AZML_VENV = ROOT / ".cache" / "bench" / "azml"
REQUEST = {"age": 37, "hours-per-week": 40.0, "sex": "Female", "occupation": "Exec-managerial"}
CONCURRENCY = (1, 8, 64)

PYFUNC = '''
import json, os, sys

import mlflow.pyfunc


class ScorePy(mlflow.pyfunc.PythonModel):
    """score.py as an MLflow pyfunc: each row goes to run() as JSON text."""

    def load_context(self, context):
        os.environ["CONVEYOR_MODEL_DIR"] = context.artifacts["model_dir"]
        sys.path.insert(0, context.artifacts["package_dir"])
        import score

        score.init()
        self.score = score

    def predict(self, context, model_input, params=None):
        return [self.score.run(json.dumps(row)) for row in model_input.to_dict(orient="records")]
'''


@dataclass
class Result:
    server: str
    cold_start: float | None = None
    rss_mib: float | None = None
    pss_mib: float | None = None
    points: dict[int, dict[str, float]] = field(default_factory=dict)
    note: str = ""


def build_package(dest: Path) -> Path:
    """The census package layout, with a model fitted on generated census rows."""
    from conveyor.examples.census_package import write_census_package

    return write_census_package(dest, rows=5000, seed=7)


def log_pyfunc(package: Path, dest: Path) -> str:
    """Log score.py as an MLflow pyfunc in a file store under `dest`; returns its runs:/ URI."""
    import mlflow

    (dest / "pyfunc_code").mkdir()
    module = dest / "pyfunc_code" / "scorepy_pyfunc.py"
    module.write_text(PYFUNC)
    sys.path.insert(0, str(module.parent))
    import scorepy_pyfunc

    mlflow.set_tracking_uri(f"sqlite:///{dest / 'mlflow.db'}")
    experiment = mlflow.create_experiment("serving-bench", artifact_location=(dest / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.pyfunc.log_model(
            "model",
            python_model=scorepy_pyfunc.ScorePy(),
            artifacts={"model_dir": str(package / "model"), "package_dir": str(package)},
            code_paths=[str(module)],
        )
    return f"runs:/{run.info.run_id}/model"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_memory(pid: int) -> tuple[float, float]:
    """RSS and PSS (MiB) summed over a process and its descendants (PSS splits pages shared after fork)."""
    pids, frontier = [pid], [pid]
    while frontier:
        children = []
        for parent in frontier:
            for task in Path(f"/proc/{parent}/task").glob("*"):
                text = (task / "children").read_text() if (task / "children").exists() else ""
                children += [int(c) for c in text.split()]
        pids += children
        frontier = children
    rss = pss = 0
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            pass
    return rss / 1024, pss / 1024


def wrk(url: str, lua: Path, connections: int, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{round(seconds)}s",
            "--latency",
            "-s",
            str(lua),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(g) for g in sockets.groups()) if sockets else 0
    return {"rps": rps, "p50": latency("50"), "p99": latency("99"), "errors": errors}


def lua_script(dest: Path, name: str, body: dict) -> Path:
    path = dest / f"{name}.lua"
    quoted = json.dumps(body).replace("\\", "\\\\").replace("'", "\\'")
    path.write_text(f"wrk.method = 'POST'\nwrk.body = '{quoted}'\nwrk.headers['Content-Type'] = 'application/json'\n")
    return path


def measure(
    name: str,
    command: list[str],
    url: str,
    body: dict,
    work: Path,
    seconds: float,
    warmup: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Result:
    result = Result(name)
    log = open(work / f"{name}.log", "wb")  # noqa: SIM115 - closed below
    started = time.perf_counter()
    process = subprocess.Popen(
        ["taskset", "-c", "0", *command],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    try:
        with httpx.Client(timeout=5) as client:
            while time.perf_counter() - started < 120:
                if process.poll() is not None:
                    result.note = f"exited with {process.returncode}, see {work / (name + '.log')}"
                    return result
                try:
                    if client.post(url, json=body).status_code == 200:
                        result.cold_start = time.perf_counter() - started
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
            else:
                result.note = "not ready within 120 s"
                return result
        lua = lua_script(work, name, body)
        wrk(url, lua, 64, warmup)
        for connections in CONCURRENCY:
            result.points[connections] = wrk(url, lua, connections, seconds)
        result.rss_mib, result.pss_mib = tree_memory(process.pid)
        return result
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (it was started in a session of its own), SIGKILL after 30 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    except ProcessLookupError:
        process.wait()
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def table(results: list[Result]) -> str:
    lines = [
        f"{'server':<14} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}",
        "-" * 54,
    ]
    for r in results:
        for c, p in r.points.items():
            lines.append(f"{r.server:<14} {c:>4} {p['rps']:>9.0f} {p['p50']:>8.2f} {p['p99']:>8.2f} {p['errors']:>6}")
        if r.note:
            lines.append(f"{r.server:<14} {r.note}")
    lines += ["", f"{'server':<14} {'cold start s':>12} {'RSS MiB':>8} {'PSS MiB':>8}", "-" * 46]
    for r in results:
        cold = f"{r.cold_start:.2f}" if r.cold_start else "-"
        rss = f"{r.rss_mib:.0f}" if r.rss_mib else "-"
        pss = f"{r.pss_mib:.0f}" if r.pss_mib else "-"
        lines.append(f"{r.server:<14} {cold:>12} {rss:>8} {pss:>8}")
    ours_all = [r for r in results if r.server.startswith("conveyor") and r.points]
    peers = [r for r in results if not r.server.startswith("conveyor") and r.points]
    if ours_all and peers:
        lines += ["", "conveyor / peer (req/s ratio; p99 ratio, lower is better)"]
        for ours in ours_all:
            for peer in peers:
                for c in CONCURRENCY:
                    if c in peer.points and c in ours.points:
                        throughput = ours.points[c]["rps"] / peer.points[c]["rps"]
                        p99 = ours.points[c]["p99"] / peer.points[c]["p99"]
                        pair = f"{ours.server} vs {peer.server}"
                        lines.append(f"  {pair:<27} c{c:<3} req/s x{throughput:6.1f}  p99 x{p99:6.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per point and 1 s warm-up")
    parser.add_argument("--only", choices=["conveyor", "conveyor-auto", "azmlinfsrv", "mlflow"], action="append")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    seconds, warmup = (2.0, 1.0) if args.quick else (10.0, 3.0)
    servers = args.only or ["conveyor", "conveyor-auto", "azmlinfsrv", "mlflow"]
    if shutil.which("wrk") is None or ("azmlinfsrv" in servers and not (AZML_VENV / "bin" / "azmlinfsrv").exists()):
        subprocess.run(["bash", str(ROOT / "scripts" / "install-bench-tools.sh")], check=True)

    work = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
    package = build_package(work)
    results = []
    for name, extra in (("conveyor", []), ("conveyor-auto", ["--offload", "auto"])):
        if name not in servers:
            continue
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "conveyor.serving",
            str(package),
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            *extra,
        ]
        results.append(measure(name, command, f"http://127.0.0.1:{port}/score", REQUEST, work, seconds, warmup))
    if "azmlinfsrv" in servers:
        port = free_port()
        command = [
            str(AZML_VENV / "bin" / "azmlinfsrv"),
            "--entry_script",
            str(package / "score.py"),
            "--model_dir",
            str(package / "model"),
            "--port",
            str(port),
        ]
        env = {"AZUREML_MODEL_DIR": str(package / "model"), "PYTHONPATH": str(package)}
        results.append(
            measure(
                "azmlinfsrv",
                command,
                f"http://127.0.0.1:{port}/score",
                REQUEST,
                work,
                seconds,
                warmup,
                env=env,
                cwd=package,
            )
        )
    if "mlflow" in servers:
        uri = log_pyfunc(package, work)
        port = free_port()
        command = [
            str(Path(sys.executable).parent / "mlflow"),
            "models",
            "serve",
            "-m",
            uri,
            "--env-manager",
            "local",
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
        ]
        env = {
            "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
            "PYTHONPATH": str(work / "pyfunc_code"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        results.append(
            measure(
                "mlflow",
                command,
                f"http://127.0.0.1:{port}/invocations",
                {"dataframe_records": [REQUEST]},
                work,
                seconds,
                warmup,
                env=env,
            )
        )
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
