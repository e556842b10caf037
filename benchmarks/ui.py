"""Dashboard benchmark: every page of `conveyor ui` on a ledger of 1,000 releases and 200 builds (and ×10), beside
the same reads through the CLI's `--json`.

Run: .venv/bin/python benchmarks/ui.py [--releases 1000] [--builds 200] [--grow 10] [--runs 20]

The project is real: 200 attested builds (package, OCI archive, provenance, test and gate attestations signed by the
builder `ci`), as many versions of the model in its MLflow registry (runs with r2 and mae), and a ledger of signed
events (carol requests, alice rejects a third of them, each approval window still open), written through the
ledger's own Writer, so every event is checked by the rules and signed like the CLI's. `conveyor ui` runs as its own
process and is read over HTTP with keep-alive; each page is fetched once cold and `--runs` times warm, after a first
read that verifies the whole chain (as a server re-reads it when the ledger's head moves, and every 30 s). The CLI
column runs `conveyor releases list --json`, `history STAGE --json` and `audit verify --json` as new processes: each
verifies the chain as well, so it is the read a script or CI step pays. RSS is the server's after all pages.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests" / "release"))

import release_support  # noqa: E402  (the release tests' attested builds and keys)

TARGET_MS = 200.0

PROJECT = """[project]
name = "census"

[environments.stage]
secrets = "env://"
lake = "file://{root}/lake"
registry = "sqlite:///{root}/mlflow.db"

[environments.prod]
secrets = "env://"
lake = "file://{root}/lake"
registry = "sqlite:///{root}/mlflow.db"

[trust]
allowed_signers = "allowed_signers"
builders = ["ci"]

[release.prod]
target = "oci://127.0.0.1:9/census"
env = "prod"
approvers = ["alice", "bob", "dave"]
min_approvals = 2
timeout = "3650d"
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_project(folder: Path, keys: release_support.Keys, builds: int, releases: int) -> Path:
    """A project with `builds` attested builds and `releases` signed release requests (a third rejected)."""
    from conveyor.config import load_project
    from conveyor.package.record import BuildRecord
    from conveyor.release.attested import attested_shipment
    from conveyor.release.ledger import Ledger
    from conveyor.release.releases import Releases
    from conveyor.release.status import EventKind
    from conveyor.trust import AllowedSigners, identify

    root = folder / "census"
    root.mkdir(parents=True)
    (root / "conveyor.toml").write_text(PROJECT.format(root=root))
    (root / "allowed_signers").write_text(keys.allowed_signers)
    paths = [release_support.write_build(root, f"build-{i}", model_version=str(i + 1)) for i in range(builds)]
    _register_versions(root, builds)
    project = load_project(root)
    desk = Releases(project, Ledger.open(project))
    desk.create(paths[0], "prod", keys.carol)  # adopts the project's policy, as the team's first request does
    allowed = AllowedSigners.parse(keys.allowed_signers)
    carol, alice = identify(allowed, keys.carol), identify(allowed, keys.alice)
    with desk.ledger.writing() as writer:
        policy = writer.state.in_force()
        stage = policy.stage("prod")
        attested = [attested_shipment(BuildRecord.load(p), policy) for p in paths]
        shipments = [shipment.to_json(model_env) for shipment, model_env in attested]
        for n in range(2, releases + 1):
            data = {
                "stage": "prod",
                "kind": "release",
                "source_release": None,
                "target": stage.target,
                "policy": stage.to_json(),
                "policy_digest": stage.digest,
                "policy_set": policy.digest,
                "build": shipments[n % builds],
                "break_glass": False,
            }
            writer.append(EventKind.RELEASE_REQUESTED, n, data, carol)
            if n % 3 == 0:
                writer.append(EventKind.RELEASE_REJECTED, n, {"comment": f"<b>not {n}</b>"}, alice)
    desk.ledger.close()
    return root


def _register_versions(root: Path, count: int) -> None:
    """`count` versions of the census model in the project's MLflow registry, each from a run with r2 and mae."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("census", artifact_location=str(root / "mlruns"))
    client.create_registered_model(release_support.MODEL)
    for i in range(count):
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "r2", 0.3 + (i % 17) / 100)
        client.log_metric(run.info.run_id, "mae", 0.2 - (i % 13) / 200)
        client.create_model_version(release_support.MODEL, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(release_support.MODEL, "prod", str(count // 2))


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"conveyor ui exited with {process.returncode}")
        try:
            httpx.head(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("conveyor ui did not answer within 60 s")


def measure_pages(root: Path, runs: int, releases: int) -> tuple[dict[str, tuple[float, float, float]], float]:
    """Per page: (cold ms, warm median ms, warm p95 ms); and the server's RSS in MiB afterwards."""
    port = _free_port()
    env = {**os.environ, "CONVEYOR_NO_UPDATE_CHECK": "1"}
    process = subprocess.Popen(
        [str(BIN / "conveyor"), "ui", "--project", str(root), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base + "/static/style.css", process)
        with httpx.Client(base_url=base, timeout=60) as client:
            start = time.perf_counter()
            client.get("/").raise_for_status()  # the first read after start verifies the whole chain
            first = (time.perf_counter() - start) * 1000
            builds = client.get("/builds").text
            digest = builds.split('href="/builds/', 1)[1].split('"', 1)[0]
            pages = {
                "/ (stages)": "/",
                "/stages/prod": "/stages/prod",
                "/stages/prod (last page)": "/stages/prod?page=9999",
                "/releases/N": f"/releases/{max(1, releases // 2)}",
                "/waiting": "/waiting",
                "/builds": "/builds",
                "/builds/DIGEST": f"/builds/{digest}",
                "/models": "/models",
                "/audit": "/audit",
            }
            found: dict[str, tuple[float, float, float]] = {}
            for name, path in pages.items():
                start = time.perf_counter()
                answer = client.get(path)
                cold = (time.perf_counter() - start) * 1000
                if answer.status_code != 200:
                    raise SystemExit(f"{path}: HTTP {answer.status_code}")
                times = []
                for _ in range(runs):
                    start = time.perf_counter()
                    client.get(path).raise_for_status()
                    times.append((time.perf_counter() - start) * 1000)
                times.sort()
                found[name] = (cold, statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)])
        found["first read after start (verifies the chain)"] = (first, first, first)
        return found, _rss_mib(process.pid)
    finally:
        process.terminate()
        process.wait(10)


def measure_cli(root: Path, runs: int) -> dict[str, float]:
    """Median ms of each CLI read, as a new process."""
    commands = {
        "releases list --json": ["releases", "list", "--stage", "prod", "--json"],
        "history prod --json": ["history", "prod", "--json"],
        "audit verify --json": ["audit", "verify", "--json"],
    }
    found = {}
    for name, args in commands.items():
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run([str(BIN / "conveyor"), *args, "--project", str(root)], check=True, capture_output=True)
            times.append((time.perf_counter() - start) * 1000)
        found[name] = statistics.median(times)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--builds", type=int, default=200)
    parser.add_argument("--grow", type=int, default=10, help="also measure a ledger this many times larger (0: no)")
    parser.add_argument("--runs", type=int, default=20, help="warm fetches of each page")
    parser.add_argument("--cli-runs", type=int, default=3)
    args = parser.parse_args(argv)
    if not shutil.which("ssh-keygen"):
        raise SystemExit("ssh-keygen is needed (scripts/install-system-deps.sh installs openssh-client)")
    os.environ.pop("CI", None)  # the benchmark's project is outside git: first use adopts it, as on a laptop
    sizes = [args.releases] + ([args.releases * args.grow] if args.grow > 1 else [])
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-ui-") as tmp:
        folder = Path(tmp)
        keys = release_support.make_keys(folder / "keys")
        release_support.KEYS[:] = [keys]
        results = []
        for size in sizes:
            start = time.perf_counter()
            root = make_project(folder / f"ledger-{size}", keys, args.builds, size)
            made = time.perf_counter() - start
            pages, rss = measure_pages(root, args.runs, size)
            cli = measure_cli(root, args.cli_runs)
            results.append((size, made, pages, rss, cli))
    for size, made, pages, rss, cli in results:
        print(f"\n## {size:,} releases, {args.builds} builds (made in {made:.1f} s); server RSS {rss:.0f} MiB")
        print(f"| page | cold ms | warm median ms | warm p95 ms | < {TARGET_MS:.0f} ms warm |")
        print("|---|---:|---:|---:|:---:|")
        for name, (cold, median, p95) in pages.items():
            print(f"| {name} | {cold:.0f} | {median:.1f} | {p95:.1f} | {'yes' if p95 < TARGET_MS else 'NO'} |")
        print("\n| the same read through the CLI (new process) | median ms |")
        print("|---|---:|")
        for name, ms in cli.items():
            print(f"| {name} | {ms:.0f} |")
    if len(results) == 2:
        grown = results[1][3] / results[0][3]
        print(f"\nserver RSS ×{grown:.2f} for a ledger ×{args.grow}")


if __name__ == "__main__":
    main()
