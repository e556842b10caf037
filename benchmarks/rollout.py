"""A stage's port during a rollout beside the same port serving one release, in one run.

Setups of a `local://` stage's forwarder in front of conveyor's server (census package, 1 worker each):

- `plain`: the forwarder pipes each connection to the live server, as every stage runs;
- `split-10`: the forwarder reads each request and sends 10% down the split's candidate route, which here leads
  to the live server itself: the split's own cost, as when the candidate has capacity of its own;
- `canary-10`: the same split to a candidate server that shares the live server's core (two servers on one
  core: what a one-core host pays for a canary, beyond the split);
- `shadow`: the live server answers every request and a copy goes to a candidate server started as conveyor
  starts a shadow's (nice 19 for it and its session), which takes only what CPU the live server leaves.

The servers run on core 0 (`taskset -c 0`) and wrk on core 1, in two layouts: `shared`, the forwarder on core 0
with the servers (what its CPU costs them), and `apart`, the forwarder on core 1 beside wrk (what the hop costs a
caller when the forwarder has a core the servers do not need). Per setup a 3 s warm-up, then 10 s at concurrency
1, 8 and 64. The forwarder's route is written by hand and every route is admitted (no ledger), so the figures are
the split's own cost.

    python benchmarks/rollout.py            # about 5 minutes
    python benchmarks/rollout.py --quick    # 2 s per point
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from conveyor.release.routes import Route, Split, served_package, stats_path
from conveyor.release.targets.local import lowest_priority
from serving import CONCURRENCY, REQUEST, build_package, free_port, lua_script, stop, tree_memory, wrk

FORWARDER = (
    "import sys\n"
    "from pathlib import Path\n"
    "from conveyor.release.forwarder import run\n"
    "run(int(sys.argv[1]), Path(sys.argv[2]), lambda route: None)\n"
)


def start(command: list[str], log: Path, core: int = 0) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            ["taskset", "-c", str(core), *command], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def server(package: Path, work: Path, name: str, nice: int = 0) -> tuple[subprocess.Popen[bytes], int, str]:
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
    ]
    process = start(["nice", "-n", str(nice), *command], work / f"{name}.log")
    if nice:
        lowest_priority(process.pid)  # as the local target starts a shadow's server
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            digest = served_package(port)
            return process, port, digest or ""
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"the {name} server did not start; see {work / (name + '.log')}")


def shadow_outcomes(route_file: Path) -> dict[str, int]:
    """The shadow copies' outcomes (same, differs, error, dropped) in the forwarder's last stats line."""
    try:
        last = json.loads(stats_path(route_file).read_text().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return {}
    return next((f["shadow"] for f in last["figures"] if f["role"] == "shadow"), {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per point and 1 s warm-up")
    parser.add_argument("--layouts", default="shared,apart", help="shared, apart or both (default)")
    args = parser.parse_args()
    seconds, warmup = (2.0, 1.0) if args.quick else (10.0, 3.0)
    if shutil.which("wrk") is None:
        subprocess.run(["bash", str(Path(__file__).parent.parent / "scripts" / "install-bench-tools.sh")], check=True)
    work = Path(tempfile.mkdtemp(prefix="conveyor-rollout-bench-"))
    package = build_package(work)
    servers = [server(package, work, "live"), server(package, work, "candidate"), server(package, work, "shadow", 19)]
    (_, live_port, digest), (_, candidate_port, _), (_, shadow_port, _) = servers
    setups = {
        "plain": None,
        "split-10": Split(live_port, 2, digest, "canary", 10),
        "canary-10": Split(candidate_port, 2, digest, "canary", 10),
        "shadow": Split(shadow_port, 3, digest, "shadow", 0),
    }
    layouts = {"shared": 0, "apart": 1}
    lua = lua_script(work, "score", REQUEST)
    try:
        for layout in args.layouts.split(","):
            rows: dict[str, dict[int, dict[str, float]]] = {}
            memory: dict[str, float] = {}
            outcomes: dict[str, int] = {}
            for name, split in setups.items():
                route_file = work / f"{layout}-{name}.route"
                Route(live_port, 1, digest, 1, split).write(route_file)
                port = free_port()
                command = [sys.executable, "-c", FORWARDER, str(port), str(route_file)]
                forwarder = start(command, work / f"{layout}-{name}-fw.log", layouts[layout])
                url = f"http://127.0.0.1:{port}/score"
                try:
                    deadline = time.monotonic() + 30
                    while time.monotonic() < deadline:
                        try:
                            if httpx.post(url, json=REQUEST, timeout=5).status_code == 200:
                                break
                        except httpx.TransportError:
                            time.sleep(0.1)
                    wrk(url, lua, 64, warmup)
                    rows[name] = {c: wrk(url, lua, c, seconds) for c in CONCURRENCY}
                    memory[name] = tree_memory(forwarder.pid)[0]
                finally:
                    stop(forwarder)
                if split is not None and split.mode == "shadow":
                    outcomes = shadow_outcomes(route_file)
            print(f"\nlayout {layout}: the forwarder on core {layouts[layout]}, the servers on core 0, wrk on core 1")
            print(table(rows, memory, outcomes))
    finally:
        for process, _, _ in servers:
            stop(process)
    shutil.rmtree(work, ignore_errors=True)


def table(rows: dict[str, dict[int, dict[str, float]]], memory: dict[str, float], outcomes: dict[str, int]) -> str:
    lines = [f"{'stage port':<12} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}", "-" * 52]
    for name, points in rows.items():
        for c, p in points.items():
            lines.append(f"{name:<12} {c:>4} {p['rps']:>9.0f} {p['p50']:>8.2f} {p['p99']:>8.2f} {p['errors']:>6}")
    plain = rows.get("plain", {})
    lines += ["", "against plain (p50 and p99 ratios, lower is better; forwarder RSS)"]
    for name, points in rows.items():
        if name == "plain":
            continue
        for c in CONCURRENCY:
            if c in points and c in plain:
                p50 = points[c]["p50"] / plain[c]["p50"]
                p99 = points[c]["p99"] / plain[c]["p99"]
                lines.append(f"  {name:<10} c{c:<3} p50 x{p50:5.2f}  p99 x{p99:5.2f}")
        lines.append(f"  {name:<10} forwarder RSS {memory.get(name, 0):.0f} MiB (plain {memory.get('plain', 0):.0f})")
    if outcomes:
        copies = sum(outcomes.values())
        shares = ", ".join(f"{kind} {count / copies:.0%}" for kind, count in sorted(outcomes.items()))
        lines.append(f"  shadow copies: {copies} ({shares})")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
