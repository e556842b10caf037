"""Ledger benchmark: what one more signed event and `releases list` cost as the ledger grows, on SQLite and
PostgreSQL, beside an unsigned SQL insert (the floor any ledger pays).

Run: .venv/bin/python benchmarks/ledger.py [--sizes 1000,10000] [--backends sqlite,postgres] [--runs 3]
     [--no-walk]  (without the whole-chain walk column: for 100,000 events, where one walk takes minutes)

The ledger is real: release requests signed by carol and rejections signed by alice, each appended through the
ledger's Writer (checked by the rules, signed, verified as its readers will). At each size:

- **append** is `Releases.reject` through the Python API with a new Ledger object (what a `conveyor reject`
  process pays after its start-up): it starts from the verified prefix a process of this checkout kept (at most
  100 events behind; `conveyor.release.prefix_file`), verifies what came since, then one event is signed and
  committed. The CLI column is the same as a whole `conveyor reject` process.
- **list** is `Releases.list(limit=50)` the same way, and `conveyor releases list --json` as a process.
- **walk** is that list through a new Ledger with no kept prefix: the whole chain verified (every signature, the
  rules, the releases table), as every command paid before the prefix was kept.
- **kept Ledger**: the same append and list through one Ledger object that verified the chain before (a
  long-lived process: `conveyor ui`, `rollout watch`, a script on the API), which verifies only what is new.
- **unsigned insert** is one INSERT + COMMIT of an event-sized row into a table of the same database.

PostgreSQL runs as a throwaway cluster started by scripts/install-release-services.sh.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tests" / "release"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import release_support  # noqa: E402  (the release tests' attested builds and keys)
from ui import PROJECT, _free_port  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

SERVICES = ROOT / "scripts" / "install-release-services.sh"


def _median_ms(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _postgres() -> tuple[str, Callable[[], None]]:
    """A throwaway PostgreSQL cluster and a new database in it: (URL, stop). Its folder is a top-level temporary
    one: the postgres user must be able to reach it."""
    folder = Path(tempfile.mkdtemp(prefix="conveyor-bench-pg-"))
    subprocess.run(["bash", str(SERVICES), "install"], check=True)
    server = subprocess.run(
        ["bash", str(SERVICES), "postgres", str(folder), str(_free_port())], check=True, capture_output=True, text=True
    ).stdout.strip()
    name = f"ledger_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    url = sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)

    def stop() -> None:
        subprocess.run(["bash", str(SERVICES), "stop", str(folder)], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)

    return url, stop


class Bench:
    """One project and its ledger, grown to each size in turn."""

    def __init__(self, folder: Path, keys: release_support.Keys, ledger_url: str | None) -> None:
        from conveyor.config import load_project
        from conveyor.release.ledger import Ledger
        from conveyor.release.releases import Releases

        self.root = folder / "census"
        self.root.mkdir(parents=True)
        text = PROJECT.format(root=self.root)
        if ledger_url:
            text += f'\n[ledger]\nurl = "{ledger_url}"\n'
        (self.root / "conveyor.toml").write_text(text)
        (self.root / "allowed_signers").write_text(keys.allowed_signers)
        self.keys = keys
        self.builds = [release_support.write_build(self.root, f"build-{i}", model_version=str(i + 1)) for i in range(3)]
        self.project = load_project(self.root)
        self.releases = Releases(self.project, Ledger.open(self.project))
        self.releases.create(self.builds[0], "prod", keys.carol)  # adopts the policy, as a first request does
        self.events = 2

    def grow(self, events: int) -> None:
        """Append requests (and a rejection of every third) until the chain holds `events` events."""
        from conveyor.package.record import BuildRecord
        from conveyor.release.attested import attested_shipment
        from conveyor.release.status import EventKind
        from conveyor.trust import AllowedSigners, identify

        allowed = AllowedSigners.parse(self.keys.allowed_signers)
        carol, alice = identify(allowed, self.keys.carol), identify(allowed, self.keys.alice)
        with self.releases.ledger.writing() as writer:
            policy = writer.state.in_force()
            stage = policy.stage("prod")
            attested = [attested_shipment(BuildRecord.load(p), policy) for p in self.builds]
            shipments = [shipment.to_json(model_env) for shipment, model_env in attested]
            while self.events < events:
                n = writer.state.next_release_id()
                data = {
                    "stage": "prod",
                    "kind": "release",
                    "source_release": None,
                    "target": stage.target,
                    "policy": stage.to_json(),
                    "policy_digest": stage.digest,
                    "policy_set": policy.digest,
                    "build": shipments[n % len(shipments)],
                    "break_glass": False,
                }
                writer.append(EventKind.RELEASE_REQUESTED, n, data, carol)
                self.events += 1
                if n % 3 == 0 and self.events < events:
                    writer.append(EventKind.RELEASE_REJECTED, n, {"comment": None}, alice)
                    self.events += 1

    def _fresh(self) -> object:
        from conveyor.release.ledger import Ledger
        from conveyor.release.releases import Releases

        return Releases(self.project, Ledger.open(self.project))

    def _pending(self, count: int) -> list[int]:
        return [r.id for r in self.releases.list(status="pending", limit=count)]

    def append_ms(self, runs: int) -> float:
        pending = self._pending(runs)

        def reject() -> None:
            desk = self._fresh()
            desk.reject(pending.pop(), self.keys.alice)  # type: ignore[attr-defined]
            self.events += 1

        return _median_ms(reject, runs)

    def append_kept_ms(self, runs: int) -> float:
        """The same, through one Ledger object that verified the chain before (a long-lived process)."""
        pending = self._pending(runs)
        self.releases.ledger.verified()
        return _median_ms(lambda: self.releases.reject(pending.pop(), self.keys.alice), runs)

    def list_kept_ms(self, runs: int) -> float:
        return _median_ms(lambda: self.releases.list(limit=50), runs)

    def list_ms(self, runs: int) -> float:
        return _median_ms(lambda: self._fresh().list(limit=50), runs)  # type: ignore[attr-defined]

    def walk_ms(self, runs: int) -> float:
        from conveyor.release.ledger import PREFIX_FILE

        def walk() -> None:
            (self.project.state_dir / PREFIX_FILE).unlink(missing_ok=True)
            self._fresh().list(limit=50)  # type: ignore[attr-defined]

        return _median_ms(walk, runs)

    def cli_ms(self, runs: int) -> tuple[float, float]:
        def run(*args: str) -> None:
            subprocess.run([str(BIN / "conveyor"), *args, "-p", str(self.root)], check=True, capture_output=True)

        pending = self._pending(runs)

        def reject() -> None:
            run("reject", str(pending.pop()), "--key", str(self.keys.path("alice")))
            self.events += 1

        return _median_ms(reject, runs), _median_ms(lambda: run("releases", "list", "--json"), runs)

    def unsigned_insert_ms(self, runs: int) -> float:
        engine = self.releases.ledger.engine
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE IF NOT EXISTS bench_rows (body TEXT)"))
        body = "x" * 1500

        def insert() -> None:
            with engine.begin() as connection:
                connection.execute(sa.text("INSERT INTO bench_rows (body) VALUES (:body)"), {"body": body})

        return _median_ms(insert, runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="event counts to measure at (e.g. 1000,10000,100000)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-walk", action="store_true", help="skip the whole-chain walk (large sizes)")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    os.environ.pop("CI", None)  # the benchmark's project is outside git: first use adopts it, as on a laptop
    rows = []
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-ledger-") as tmp:
        folder = Path(tmp)
        keys = release_support.make_keys(folder / "keys")
        release_support.KEYS[:] = [keys]
        for backend in args.backends.split(","):
            stop: Callable[[], None] = lambda: None  # noqa: E731
            url = None
            if backend == "postgres":
                url, stop = _postgres()
            try:
                bench = Bench(folder / backend, keys, url)
                for size in sizes:
                    start = time.perf_counter()
                    bench.grow(size)
                    grown = time.perf_counter() - start
                    walk = float("nan") if args.no_walk else bench.walk_ms(min(args.runs, 2))
                    api_append, api_list = bench.append_ms(args.runs), bench.list_ms(args.runs)
                    kept_append, kept_list = bench.append_kept_ms(args.runs), bench.list_kept_ms(args.runs)
                    cli_append, cli_list = bench.cli_ms(args.runs)
                    floor = bench.unsigned_insert_ms(max(args.runs, 10))
                    rows.append(
                        (
                            backend,
                            size,
                            grown,
                            api_append,
                            api_list,
                            kept_append,
                            kept_list,
                            cli_append,
                            cli_list,
                            walk,
                            floor,
                        )
                    )
                    print(f"{backend} {size:,}: done", file=sys.stderr)
            finally:
                stop()
    print(
        "| backend | events | grown in s | append, new Ledger ms | list, new Ledger ms | append, kept Ledger ms "
        "| list, kept Ledger ms | `conveyor reject` ms | `releases list --json` ms | walk ms | unsigned insert ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def ms(value: float, digits: int = 0) -> str:
        return "–" if value != value else f"{value:.{digits}f}"  # NaN: not measured (--no-walk)

    for backend, size, grown, api_append, api_list, kept_append, kept_list, cli_append, cli_list, walk, floor in rows:
        print(
            f"| {backend} | {size:,} | {grown:.1f} | {ms(api_append)} | {ms(api_list)} | {ms(kept_append, 1)} "
            f"| {ms(kept_list, 1)} | {ms(cli_append)} | {ms(cli_list)} | {ms(walk)} | {floor:.1f} |"
        )


if __name__ == "__main__":
    main()
