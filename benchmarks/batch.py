"""Batch scoring side by side: conveyor's local and Spark engines, MLflow's `spark_udf`, and the practical limit.

The same census model (worst_regression/1, trained in the benchmark's own project) scores the same census-format
Parquet file (seeded synthetic rows from `conveyor.examples.census_data`, cached by rows, seed and generator
version), and every peer writes the rows with the prediction appended as Parquet. Peers, each in its own process:

- `limit`: a plain pyarrow + numpy loop (read a batch, apply the folded affine model, write it): the practical limit;
- `local`: `conveyor.batch.score_batch(..., engine="local")`;
- `spark-local`: `score_batch(..., engine="spark")` on Spark local mode (`local[*]`);
- `spark-cluster`: the same on a standalone cluster (a master and a 2-core worker on loopback, tests/spark_servers);
- `spark-udf`: `mlflow.pyfunc.spark_udf` on the registered model, `local[*]`, fed the model's two feature columns;
- `spark-udf-cluster`: the same on the standalone cluster.

Spark peers are timed once their session is up (the JVM start, ~10 s here, is left out of every peer alike).
Peak RSS is the sum of each process's high-water mark (VmHWM) over the peer's process tree: the Python driver,
its JVM and the JVM's Python workers (and on the cluster, the executor JVM and its workers).

    python benchmarks/batch.py                 # 1M and 10M rows (about 10 minutes here)
    python benchmarks/batch.py --quick         # 100k and 400k rows
    python benchmarks/batch.py --rows 2000000 --peers limit,local --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / ".cache" / "bench" / "batch"
PROJECT = HOME / "project"
LAKES = HOME / "lakes"
SEED = 2024
GENERATOR = 1  # bump when the generated rows change
CHUNK = 500_000
PEERS = ("limit", "local", "spark-local", "spark-udf", "spark-cluster", "spark-udf-cluster")
MODEL = "worst_regression/1"
FEATURES = ("age", "hours-per-week")


# --- the workspace: project, model and data, made once -------------------------------------------------------


def project() -> Path:
    """The benchmark's census project with worst_regression/1 trained in dev (made once, again when the project
    file's format has changed since)."""
    import shutil

    from conveyor.config import load_project
    from conveyor.errors import ConfigError

    try:
        load_project(PROJECT)
    except ConfigError:
        print(f"making the benchmark project anew in {PROJECT}", file=sys.stderr)
        shutil.rmtree(PROJECT, ignore_errors=True)
        shutil.rmtree(HOME / "secrets", ignore_errors=True)
    if not (PROJECT / "conveyor.toml").is_file():
        from conveyor.examples.scaffold import init_project

        init_project(PROJECT, secrets_dir=HOME / "secrets", lakes_dir=LAKES, rows=5000, git=False)
    environment = load_project(PROJECT).environment("dev")
    from conveyor.registry import ModelRegistry

    if "worst_regression" not in ModelRegistry(environment).model_names():
        from conveyor.compute import train

        print("training worst_regression in the benchmark project", file=sys.stderr)
        train(environment, out=lambda _: None, err=lambda _: None)
    return PROJECT


def with_cluster_environment(url: str | None) -> None:
    """Declare (or drop) the `cluster` environment: dev's secrets, lake and registry, computing on `url`."""
    path = PROJECT / "conveyor.toml"
    text = re.sub(r"\n\[environments\.cluster\]\n(?:[^\[].*\n?)*", "\n", path.read_text())
    if url:
        registry = (PROJECT / ".conveyor" / "dev" / "mlflow.db").resolve()
        secrets = (HOME / "secrets" / "dev.toml").resolve()
        text = text.rstrip("\n") + (
            f'\n\n[environments.cluster]\nsecrets = "file://{secrets}"\nlake = "${{secret:datalake-fqdn}}"\n'
            f'registry = "sqlite:///{registry}"\ncompute = "{url}"\n'
        )
    path.write_text(text)


def dataset(rows: int) -> str:
    """The lake path of `rows` census-format rows as Parquet (written once: chunks of 500k rows, seeded)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from conveyor.examples.census_data import census_frame

    name = f"bench/census-{rows}-seed{SEED}-g{GENERATOR}.parquet"
    path = LAKES / "dev" / name
    if path.is_file():
        return name
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    print(f"generating {rows:,} census rows into {path}", file=sys.stderr)
    writer = None
    for index, start in enumerate(range(0, rows, CHUNK)):
        table = pa.Table.from_pandas(
            census_frame(min(CHUNK, rows - start), seed=SEED * 1000 + index), preserve_index=False
        )
        writer = writer or pq.ParquetWriter(partial, table.schema, compression="snappy")
        writer.write_table(table)
    assert writer is not None
    writer.close()
    partial.replace(path)
    return name


# --- measuring a peer in its own process -------------------------------------------------------------------


def high_water_mib(pids: list[int]) -> float:
    """The sum of VmHWM (peak RSS) over `pids` and all their descendants, in MiB."""
    seen: set[int] = set()
    frontier = list(pids)
    total_kib = 0
    while frontier:
        pid = frontier.pop()
        if pid in seen:
            continue
        seen.add(pid)
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kib += int(line.split()[1])
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    frontier += [int(c) for c in (task / "children").read_text().split()]
    return total_kib / 1024


@dataclass
class Measured:
    rows: int
    peer: str
    seconds: float
    rss_mib: float
    call_seconds: float | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def run_peer(peer: str, rows: int, source: str, cluster: Any | None) -> Measured:
    """Run one peer in a fresh process; it reports its timing and the peak RSS of its process tree."""
    command = [sys.executable, __file__, "--as-peer", peer, "--source", source, "--rows", str(rows)]
    if cluster is not None and peer.endswith("cluster"):
        command += ["--worker-pid", str(cluster.servers[-1].process.pid)]
    environment = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    environment.pop("CONVEYOR_SPARK_MASTER", None)
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=3600)
    report = next((line for line in reversed(done.stdout.splitlines()) if line.startswith("{")), None)
    if done.returncode != 0 or report is None:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-15:])
        return Measured(rows, peer, 0.0, 0.0, note=f"failed (exit {done.returncode}): {tail}")
    data = json.loads(report)
    if data["rows"] != rows:
        return Measured(rows, peer, 0.0, 0.0, note=f"wrote {data['rows']} rows, not {rows}")
    return Measured(rows, peer, data["seconds"], data["rss_mib"], data.get("call_seconds"))


# --- the peers (run inside the peer process) ---------------------------------------------------------------


def peer_limit(source: str, output: str, batch_rows: int) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from conveyor.config import load_project
    from conveyor.registry import materialize

    environment = load_project(PROJECT).environment("dev")
    package = materialize(MODEL, environment, PROJECT / ".conveyor" / "packages")
    folded = json.loads((package / "model" / "weights.json").read_text())
    (w0, w1), bias = folded["weights"], folded["bias"]
    lake = LAKES / "dev"
    (lake / output).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    writer = None
    rows = 0
    for batch in pq.ParquetFile(lake / source, pre_buffer=False).iter_batches(batch_size=batch_rows):
        age = batch.column("age").to_numpy().astype(np.float64)
        hours = batch.column("hours-per-week").to_numpy().astype(np.float64)
        scored = pa.RecordBatch.from_arrays(
            [*batch.columns, pa.array(age * w0 + hours * w1 + bias)], names=[*batch.schema.names, "estimated_wages"]
        )
        writer = writer or pq.ParquetWriter(lake / output / "part-00000.parquet", scored.schema, compression="snappy")
        writer.write_batch(scored)
        rows += batch.num_rows
    assert writer is not None
    writer.close()
    return {"rows": rows, "seconds": time.perf_counter() - started}


def peer_conveyor(environment_name: str, engine: str, source: str, output: str, batch_rows: int) -> dict[str, Any]:
    from conveyor.batch import score_batch
    from conveyor.config import load_project

    environment = load_project(PROJECT).environment(environment_name)
    if engine == "spark":
        from conveyor.compute import spark_session

        spark_session(environment)  # the JVM starts here, outside the timing
    started = time.perf_counter()
    result = score_batch(environment, source, output, model=MODEL, engine=engine, overwrite=True, batch_rows=batch_rows)
    return {"rows": result.rows, "seconds": result.seconds, "call_seconds": time.perf_counter() - started}


def peer_spark_udf(environment_name: str, source: str, output: str) -> dict[str, Any]:
    import mlflow
    import pyarrow.parquet as pq
    from pyspark.sql.functions import struct

    from conveyor.compute import spark_session
    from conveyor.config import load_project

    environment = load_project(PROJECT).environment(environment_name)
    spark = spark_session(environment)
    mlflow.set_tracking_uri(environment.registry_uri)
    mlflow.set_registry_uri(environment.registry_uri)
    lake = environment.lake()
    started = time.perf_counter()
    udf = mlflow.pyfunc.spark_udf(spark, f"models:/{MODEL}", result_type="double", env_manager="local")
    frame = spark.read.parquet(lake.url_of(source))
    scored = frame.withColumn("estimated_wages", udf(struct(*FEATURES)))
    scored.write.mode("overwrite").parquet(lake.url_of(output))
    seconds = time.perf_counter() - started
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in (LAKES / "dev" / output).glob("part-*.parquet"))
    return {"rows": rows, "seconds": seconds}


def as_peer(arguments: argparse.Namespace) -> None:
    """Run one peer (inside its own process) and print its report as one JSON line."""
    peer, source, batch_rows = arguments.as_peer, arguments.source, arguments.batch_rows
    output = f"bench-out/{peer}-{arguments.rows}"
    os.environ.setdefault("CONVEYOR_SPARK_MASTER", "local[*]")
    if peer == "limit":
        report = peer_limit(source, output, batch_rows)
    elif peer == "local":
        report = peer_conveyor("dev", "local", source, output, batch_rows)
    elif peer == "spark-local":
        report = peer_conveyor("dev", "spark", source, output, batch_rows)
    elif peer == "spark-cluster":
        report = peer_conveyor("cluster", "spark", source, output, batch_rows)
    elif peer == "spark-udf":
        report = peer_spark_udf("dev", source, output)
    elif peer == "spark-udf-cluster":
        report = peer_spark_udf("cluster", source, output)
    else:
        raise SystemExit(f"unknown peer {peer}")
    pids = [os.getpid()] + ([arguments.worker_pid] if arguments.worker_pid else [])
    rss = high_water_mib(pids)
    if arguments.worker_pid:
        rss -= high_water_mib_of(arguments.worker_pid)  # the worker daemon itself is not the job's
    print(json.dumps({**report, "rss_mib": rss}), flush=True)
    sys.stdout.flush()
    os._exit(0)  # leave the Spark session to die with the process; its shutdown is not the job's


def high_water_mib_of(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --- the table ---------------------------------------------------------------------------------------------


def table(results: list[Measured]) -> str:
    limits = {r.rows: r for r in results if r.peer == "limit" and r.seconds}
    lines = [
        f"{'rows':>11}  {'peer':<18} {'seconds':>8} {'rows/s':>11} {'peak RSS MiB':>12} {'vs limit':>8}  note",
        "-" * 88,
    ]
    for r in results:
        if not r.seconds:
            lines.append(f"{r.rows:>11,}  {r.peer:<18} {'-':>8} {'-':>11} {'-':>12} {'-':>8}  {r.note}")
            continue
        limit = limits.get(r.rows)
        versus = f"{r.rate / limit.rate:7.0%}" if limit else "-"
        note = r.note or (f"whole call {r.call_seconds:.2f} s" if r.call_seconds else "")
        lines.append(
            f"{r.rows:>11,}  {r.peer:<18} {r.seconds:>8.2f} {r.rate:>11,.0f} {r.rss_mib:>12,.0f} {versus:>8}  {note}"
        )
    return "\n".join(lines)


def goals(results: list[Measured]) -> list[str]:
    found = {(r.peer, r.rows): r for r in results if r.seconds}
    sizes = sorted({r.rows for r in results})
    lines = []
    for rows in sizes:
        local, limit = found.get(("local", rows)), found.get(("limit", rows))
        if local and limit:
            share = local.rate / limit.rate
            lines.append(f"{rows:,} rows: local engine at {share:.0%} of the limit (goal >= 50%): {_ok(share >= 0.5)}")
        for peer, udf_peer in (("spark-local", "spark-udf"), ("spark-cluster", "spark-udf-cluster")):
            ours, udf = found.get((peer, rows)), found.get((udf_peer, rows))
            if ours and udf:
                ratio = ours.rate / udf.rate
                lines.append(f"{rows:,} rows: {peer} x{ratio:.2f} {udf_peer}'s rows/s (goal >= x1): {_ok(ratio >= 1)}")
    if len(sizes) > 1:
        small, large = found.get(("local", sizes[0])), found.get(("local", sizes[-1]))
        if small and large:
            growth = large.rss_mib / small.rss_mib
            lines.append(
                f"local engine peak RSS {small.rss_mib:,.0f} MiB at {sizes[0]:,} rows, {large.rss_mib:,.0f} MiB at "
                f"{sizes[-1]:,} (x{growth:.2f} for x{sizes[-1] / sizes[0]:.0f} the rows; flat is <= x1.25): "
                f"{_ok(growth <= 1.25)}"
            )
    return lines


def _ok(passed: bool) -> str:
    return "met" if passed else "NOT met"


@contextlib.contextmanager
def cluster_running(wanted: bool) -> Iterator[Any]:
    """A standalone cluster on loopback (the tests' own starter), or None when not wanted or Java is missing."""
    if not wanted:
        yield None
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from spark_servers import java_missing, start_cluster

    if reason := java_missing():
        print(f"no cluster: {reason}", file=sys.stderr)
        yield None
        return
    with start_cluster(HOME / "cluster", cores=os.cpu_count() or 2, memory="3g") as cluster:
        yield cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k and 400k rows, for a smoke run")
    parser.add_argument("--rows", help="comma-separated sizes (default 1000000,10000000)")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, of: {', '.join(PEERS)}")
    parser.add_argument("--batch-rows", type=int, default=65_536)
    parser.add_argument("--repeat", type=int, default=1, help="runs per peer and size; the fastest is kept")
    parser.add_argument("--as-peer", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--worker-pid", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.as_peer:
        arguments.rows = int(arguments.rows)
        as_peer(arguments)
        return
    sizes = [
        int(n) for n in (arguments.rows or ("100000,400000" if arguments.quick else "1000000,10000000")).split(",")
    ]
    peers = [p.strip() for p in arguments.peers.split(",") if p.strip()]
    unknown = set(peers) - set(PEERS)
    if unknown:
        raise SystemExit(f"unknown peers: {', '.join(sorted(unknown))} (known: {', '.join(PEERS)})")
    os.environ.setdefault("CONVEYOR_USER", "bench")
    project()
    from conveyor.config import load_project
    from conveyor.registry import materialize

    materialize(MODEL, load_project(PROJECT).environment("dev"), PROJECT / ".conveyor" / "packages")
    sources = {rows: dataset(rows) for rows in sizes}
    results: list[Measured] = []
    with cluster_running(any(p.endswith("cluster") for p in peers)) as cluster:
        with_cluster_environment(cluster.url if cluster else None)
        for rows in sizes:
            for peer in peers:
                if peer.endswith("cluster") and cluster is None:
                    results.append(Measured(rows, peer, 0.0, 0.0, note="no cluster (Java missing)"))
                    continue
                print(f"{rows:,} rows: {peer} ...", file=sys.stderr, flush=True)
                runs = [run_peer(peer, rows, sources[rows], cluster) for _ in range(max(1, arguments.repeat))]
                finished = [r for r in runs if r.seconds]
                best = min(finished, key=lambda r: r.seconds) if finished else runs[-1]
                if len(finished) > 1:
                    best.rss_mib = max(r.rss_mib for r in finished)
                    best.note = best.note or f"best of {len(finished)}"
                results.append(best)
    with_cluster_environment(None)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\nbatch scoring, census model, Parquet in and out ({os.cpu_count()} cores, load average {load})\n")
    print(table(results))
    print()
    for line in goals(results):
        print(line)


if __name__ == "__main__":
    main()
